//! `cargo xtask`: the workshop's helper. The work is done in the library
//! (`src/lib.rs` and its modules); this file is the command line.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use xtask::classroom::Classroom;
use xtask::run::Step;
use xtask::{Source, from_workspace_root};

/// Chores for the container workshop: get a root filesystem, check this machine, run the steps,
/// and, for a class, hand the steps out as exercises and grade them.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Put the article's Alpine 3.20.3 root filesystem at ./rootfs (downloaded once, checksum-verified).
    Rootfs {
        /// Where to put it (a relative path is relative to the workspace root).
        #[arg(long, value_name = "DIR", default_value = "rootfs")]
        dest: PathBuf,
        /// Use this rootfs tarball (.tar or .tar.gz, e.g. from `docker container export`) instead of Alpine's.
        #[arg(long, value_name = "FILE")]
        from_tar: Option<PathBuf>,
        /// Extract even into a directory that is not empty or holds another rootfs (its files are replaced).
        #[arg(long)]
        force: bool,
    },
    /// Check whether this machine can run each step, and say what to do if not.
    Doctor,
    /// Build a step and run it as root (through sudo if you are not root), from the workspace root.
    Run {
        /// Which step to run.
        step: Step,
        #[command(flatten)]
        options: RunOptions,
    },
    /// Run step 04, the article's full container demo (the same as `run step04`).
    Demo {
        #[command(flatten)]
        options: RunOptions,
    },
    /// Turn a step into its exercise: each marked region becomes a todo!() with a hint (the solution is kept in .exercise/).
    #[command(group = clap::ArgGroup::new("steps").required(true).args(["step", "all", "book"]))]
    Exercise {
        #[command(flatten)]
        which: Which,
        /// Only write the book's exercise listings, book/src/exercises/*.rs, from the steps' sources.
        #[arg(long, conflicts_with_all = ["step", "all", "force"])]
        book: bool,
    },
    /// Put a step's reference solution back, from .exercise/ (a student's edited file is kept, with --force).
    #[command(group = clap::ArgGroup::new("steps").required(true).args(["step", "all"]))]
    Solution {
        #[command(flatten)]
        which: Which,
    },
    /// Run a step's tests (every step's without one) and sum up what passes and what is left to do.
    Grade {
        /// The step to grade.
        step: Option<Step>,
    },
}

/// Which steps `exercise` and `solution` work on.
#[derive(Debug, clap::Args)]
struct Which {
    /// The step.
    #[arg(conflicts_with = "all")]
    step: Option<Step>,
    /// Every step.
    #[arg(long)]
    all: bool,
    /// Replace a file that has a student's work in it; the work is kept in .exercise/student/.
    #[arg(long)]
    force: bool,
}

impl Which {
    fn steps(&self) -> Vec<Step> {
        match self.step {
            Some(step) => vec![step],
            // The steps whose exercises are in one file: their main.rs or one kit
            // module (not yet those in several, as step06's).
            None => Step::ALL.into_iter().filter(|step| step.exercise_source().is_some()).collect(),
        }
    }
}

#[derive(Debug, clap::Args)]
struct RunOptions {
    /// Run without sudo, as root of a new user namespace (like `unshare --user --map-root-user --mount`).
    #[arg(long)]
    rootless: bool,
    /// Arguments for the step, after `--` (without any, the article's are used).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<OsString>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            eprint!("{}", xtask::report(&err));
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; returns the exit code.
fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Rootfs { dest, from_tar, force } => {
            let source = match from_tar {
                Some(tarball) => Source::Tarball(from_workspace_root(&tarball)),
                None => Source::Alpine,
            };
            let prepared = xtask::prepare(&from_workspace_root(&dest), &source, force)?;
            print!("{prepared}");
            Ok(0)
        }
        Command::Doctor => xtask::doctor::doctor(),
        Command::Run { step, options } => xtask::run::run(step, options.rootless, &options.args),
        Command::Demo { options } => {
            xtask::run::run(Step::Step04FullDemo, options.rootless, &options.args)
        }
        Command::Exercise { book: true, .. } => {
            println!("{}", Classroom::here().write_book()?);
            Ok(0)
        }
        Command::Exercise { which, .. } => {
            for_each_step(&which, |classroom, step| classroom.exercise(step, which.force))
        }
        Command::Solution { which } => {
            for_each_step(&which, |classroom, step| classroom.solution(step, which.force))
        }
        Command::Grade { step } => xtask::grade::grade(step),
    }
}

/// Does `what` for each step `which` names, going on after a step that fails;
/// returns 1 if one did.
fn for_each_step(which: &Which, what: impl Fn(&Classroom, Step) -> Result<String>) -> Result<i32> {
    let classroom = Classroom::here();
    let mut code = 0;
    for step in which.steps() {
        match what(&classroom, step) {
            Ok(done) => println!("{done}"),
            Err(err) => {
                eprint!(
                    "{}",
                    xtask::report(&err.context(format!("{} was left as it is", step.short())))
                );
                code = 1;
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_a_step_and_trailing_arguments() {
        let cli = Cli::try_parse_from([
            "xtask",
            "run",
            "step02-unshare-cli",
            "--rootless",
            "--",
            "--root",
            "rootfs",
            "/bin/sh",
        ])
        .unwrap();
        let Command::Run { step, options } = cli.command else { panic!("not run: {cli:?}") };
        assert_eq!(step, Step::Step02UnshareCli);
        assert!(options.rootless);
        assert_eq!(options.args, ["--root", "rootfs", "/bin/sh"]);
        assert!(Cli::try_parse_from(["xtask", "run", "step9"]).is_err());
    }

    #[test]
    fn exercise_and_solution_take_a_step_or_all() {
        let cli = Cli::try_parse_from(["xtask", "exercise", "step04", "--force"]).unwrap();
        let Command::Exercise { which, book: false } = cli.command else { panic!("{cli:?}") };
        assert_eq!((which.steps(), which.force), (vec![Step::Step04FullDemo], true));
        let cli = Cli::try_parse_from(["xtask", "solution", "--all"]).unwrap();
        let Command::Solution { which } = cli.command else { panic!("{cli:?}") };
        // step06's regions are in two kit modules: exercise mode skips it for now.
        let one_file: Vec<Step> =
            Step::ALL.into_iter().filter(|step| *step != Step::Step06Init).collect();
        assert_eq!(which.steps(), one_file);
        assert!(Cli::try_parse_from(["xtask", "exercise", "--book"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "exercise"]).is_err(), "a step, --all or --book");
        assert!(Cli::try_parse_from(["xtask", "solution"]).is_err(), "a step or --all");
        assert!(Cli::try_parse_from(["xtask", "solution", "--book"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "exercise", "step04", "--all"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "exercise", "step04", "--book"]).is_err());
        let cli = Cli::try_parse_from(["xtask", "grade"]).unwrap();
        assert!(matches!(cli.command, Command::Grade { step: None }));
    }
}

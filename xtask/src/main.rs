//! `cargo xtask`: the workshop's helper. The work is done in the library
//! (`src/lib.rs` and its modules); this file is the command line.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use xtask::run::Step;
use xtask::{Source, from_workspace_root};

/// Chores for the container workshop: get a root filesystem, check this machine, run the steps.
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
        Command::Demo { options } => xtask::run::run(Step::Step04, options.rootless, &options.args),
    }
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
        assert_eq!(step, Step::Step02);
        assert!(options.rootless);
        assert_eq!(options.args, ["--root", "rootfs", "/bin/sh"]);
        assert!(Cli::try_parse_from(["xtask", "run", "step9"]).is_err());
    }
}

//! The workshop's steps, in one table that `cargo xtask` and the tests share.
//!
//! Adding a step is one place: a variant of [`Step`] (its doc comment is the
//! help of `cargo xtask run`), its row in [`Step::info`], and its crate in the
//! workspace and in `tests/Cargo.toml`. Everything that lists the steps (`run`,
//! `doctor`, `exercise`, `grade`, the tests' harness and their book checks)
//! reads them from here.

use std::path::Path;

/// One of the workshop's steps: the article's four, then those beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Step {
    /// chroot into ./rootfs and run a shell
    #[value(name = "step01", alias = "step01-chroot")]
    Step01Chroot,
    /// a small unshare(1), run with the article's flags
    #[value(name = "step02", alias = "step02-unshare-cli")]
    Step02UnshareCli,
    /// a PID namespace in code, where the command is PID 1
    #[value(name = "step03", alias = "step03-pid-ns")]
    Step03PidNs,
    /// the article's full container demo
    #[value(name = "step04", alias = "step04-full-demo")]
    Step04FullDemo,
    /// step04 sealed with pivot_root, and a /dev of its own
    #[value(name = "step05", alias = "step05-pivot-root")]
    Step05PivotRoot,
    /// a real PID 1 (reaps zombies, forwards signals), and `enter PID` a running container
    #[value(name = "step06", alias = "step06-init")]
    Step06Init,
    /// the rootfs as a read-only image under an overlay; --keep-layer shows the container's layer
    #[value(name = "step07", alias = "step07-overlay")]
    Step07Overlay,
    /// step07 with limits the kernel enforces: --memory, --pids, --cpus in a cgroup per container
    #[value(name = "step08", alias = "step08-cgroups")]
    Step08Cgroups,
}

/// How a step takes its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Args {
    /// `ROOTFS [COMMAND [ARG]...]`, as chroot(1) and the article's step04.
    RootfsThenCommand,
    /// unshare(1)'s flags: `--root ROOTFS --mount-proc --pid --fork COMMAND`.
    UnshareFlags,
    /// Only `[COMMAND [ARG]...]`: the step runs on the host's files.
    CommandOnHost,
}

/// What the table says about a step.
#[derive(Debug, Clone, Copy)]
pub struct Info {
    /// The crate, its directory and its binary: `step04-full-demo`.
    pub crate_name: &'static str,
    pub args: Args,
    /// The modules of the kit (`kit/src/<module>.rs`) that hold this step's new
    /// ideas. Their exercise regions are the step's, as are those of its `main.rs`.
    pub kit_modules: &'static [&'static str],
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 8] = [
        Step::Step01Chroot,
        Step::Step02UnshareCli,
        Step::Step03PidNs,
        Step::Step04FullDemo,
        Step::Step05PivotRoot,
        Step::Step06Init,
        Step::Step07Overlay,
        Step::Step08Cgroups,
    ];

    /// The table: one row per step.
    pub fn info(self) -> Info {
        use Args::*;
        let (crate_name, args, kit_modules): (_, _, &[&str]) = match self {
            Step::Step01Chroot => ("step01-chroot", RootfsThenCommand, &[]),
            Step::Step02UnshareCli => ("step02-unshare-cli", UnshareFlags, &[]),
            Step::Step03PidNs => ("step03-pid-ns", CommandOnHost, &[]),
            Step::Step04FullDemo => ("step04-full-demo", RootfsThenCommand, &[]),
            Step::Step05PivotRoot => {
                ("step05-pivot-root", RootfsThenCommand, &["pivot_root", "dev"])
            }
            Step::Step06Init => ("step06-init", RootfsThenCommand, &["init", "enter"]),
            Step::Step07Overlay => ("step07-overlay", RootfsThenCommand, &["overlay"]),
            Step::Step08Cgroups => ("step08-cgroups", RootfsThenCommand, &["cgroup"]),
        };
        Info { crate_name, args, kit_modules }
    }

    /// The crate (and binary) name, e.g. `step04-full-demo`.
    pub fn name(self) -> &'static str {
        self.info().crate_name
    }

    /// The short name, e.g. `step04`: for `cargo xtask run`, test names and messages.
    pub fn short(self) -> &'static str {
        &self.name()[..6]
    }

    /// Whether the step comes after the article, in the book's "Beyond the article".
    pub fn is_beyond_the_article(self) -> bool {
        self > Step::Step04FullDemo
    }

    /// The files with the step's code a student writes, from the workspace
    /// root: its `src/main.rs`, then its kit modules.
    pub fn sources(self) -> Vec<String> {
        let main = format!("{}/src/main.rs", self.name());
        let modules = self.info().kit_modules.iter().map(|module| format!("kit/src/{module}.rs"));
        std::iter::once(main).chain(modules).collect()
    }

    /// Where the book explains this step, for messages.
    pub fn chapter(self) -> String {
        format!("book chapter '{}' (book/src/{}.md)", self.short(), self.name())
    }

    /// The arguments that run `command` in `rootfs` the way the book runs this
    /// step: ROOTFS then the command; step02 the article's flags (`--root
    /// ROOTFS --mount-proc --pid --fork`, and `/bin/sh` when no command is
    /// given, as the article types it); step03 runs on the host's files. An
    /// empty `command` leaves the step's default.
    pub fn args_for(self, rootfs: &Path, command: &[&str]) -> Vec<String> {
        let rootfs = rootfs.display().to_string();
        let mut args: Vec<String> = match self.info().args {
            Args::RootfsThenCommand => vec![rootfs],
            Args::UnshareFlags => {
                let mut flags: Vec<String> = ["--root", &rootfs, "--mount-proc", "--pid", "--fork"]
                    .map(String::from)
                    .to_vec();
                if command.is_empty() {
                    flags.push("/bin/sh".into());
                }
                flags
            }
            Args::CommandOnHost => Vec::new(),
        };
        args.extend(command.iter().map(|word| word.to_string()));
        args
    }

    /// The arguments `cargo xtask run` uses when none are given: the article's.
    pub fn article_args(self) -> &'static [&'static str] {
        match self.info().args {
            Args::UnshareFlags => {
                &["--root", "rootfs", "--mount-proc", "--pid", "--fork", "/bin/sh"]
            }
            Args::RootfsThenCommand | Args::CommandOnHost => &[],
        }
    }

    /// Whether the step runs something inside `./rootfs` (step03 uses the host's `/`).
    pub fn needs_rootfs(self) -> bool {
        self.info().args != Args::CommandOnHost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn steps_accept_short_and_crate_names() {
        for step in Step::ALL {
            assert_eq!(Step::from_str(step.short(), false), Ok(step));
            assert_eq!(Step::from_str(step.name(), false), Ok(step));
            assert!(step.name().starts_with(step.short()) && step.short().len() == 6);
        }
        assert!(Step::from_str("step99", false).is_err());
    }

    #[test]
    fn steps_are_in_order_and_each_kit_module_is_one_step_s() {
        let shorts: Vec<&str> = Step::ALL.iter().map(|s| s.short()).collect();
        let mut sorted = shorts.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(shorts, sorted);
        let mut modules: Vec<&str> =
            Step::ALL.iter().flat_map(|s| s.info().kit_modules).copied().collect();
        let count = modules.len();
        modules.sort();
        modules.dedup();
        assert_eq!(modules.len(), count, "a kit module belongs to the step that introduces it");
    }

    #[test]
    fn article_arguments() {
        assert_eq!(
            Step::Step02UnshareCli.article_args().join(" "),
            "--root rootfs --mount-proc --pid --fork /bin/sh"
        );
        assert!(Step::Step04FullDemo.article_args().is_empty());
        assert!(!Step::Step03PidNs.needs_rootfs());
        assert!(Step::Step05PivotRoot.needs_rootfs());
    }

    #[test]
    fn the_book_s_arguments() {
        let rootfs = Path::new("/r");
        assert_eq!(Step::Step04FullDemo.args_for(rootfs, &["/bin/true"]), ["/r", "/bin/true"]);
        assert_eq!(Step::Step03PidNs.args_for(rootfs, &[]), Vec::<String>::new());
        assert_eq!(
            Step::Step02UnshareCli.args_for(rootfs, &[]).join(" "),
            "--root /r --mount-proc --pid --fork /bin/sh"
        );
    }

    #[test]
    fn sources_are_main_then_kit_modules() {
        assert_eq!(Step::Step04FullDemo.sources(), ["step04-full-demo/src/main.rs"]);
        assert_eq!(
            Step::Step05PivotRoot.sources(),
            ["step05-pivot-root/src/main.rs", "kit/src/pivot_root.rs", "kit/src/dev.rs"]
        );
        assert!(Step::Step05PivotRoot.is_beyond_the_article());
        assert!(!Step::Step04FullDemo.is_beyond_the_article());
        assert!(!Step::Step04FullDemo.is_beyond_the_article());
    }
}

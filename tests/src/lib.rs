//! The workshop's test harness, written once and shared by every test file.
//!
//! It builds the four step binaries, prepares the Alpine rootfs once per run
//! (with the same code as `cargo xtask rootfs`), runs a step as a child
//! process — as root, or as "root" inside a user namespace when the tests run
//! without sudo — and checks after every run that the host is as it was: the
//! same mounts, and no process left behind.
//!
//! Failure messages are written for students: they say what the step did,
//! what it should have done, and which section of the book explains it.

pub mod cgroups;
pub mod host;
pub mod privilege;
pub mod rootfs;
pub mod run;
pub mod transcript;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use privilege::{Privilege, privilege, require_privilege};
pub use rootfs::{ROOTFS, RootfsCopy, alpine_rootfs, manifest, manifest_changes, with_rootfs};
pub use run::{Output, Runner, Running};
pub use transcript::Transcript;

/// The steps of the workshop: the article's four, then those beyond it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Step01Chroot,
    Step02UnshareCli,
    Step03PidNs,
    Step04FullDemo,
    Step07Overlay,
    Step08Cgroups,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Step01Chroot,
        Step::Step02UnshareCli,
        Step::Step03PidNs,
        Step::Step04FullDemo,
        Step::Step07Overlay,
        Step::Step08Cgroups,
    ];

    /// The crate and binary name, e.g. `step04-full-demo`.
    pub fn name(self) -> &'static str {
        match self {
            Step::Step01Chroot => "step01-chroot",
            Step::Step02UnshareCli => "step02-unshare-cli",
            Step::Step03PidNs => "step03-pid-ns",
            Step::Step04FullDemo => "step04-full-demo",
            Step::Step07Overlay => "step07-overlay",
            Step::Step08Cgroups => "step08-cgroups",
        }
    }

    /// The file that holds the step's exercise regions, from the workspace
    /// root: its `src/main.rs`, or, from step05 on, the `kit` module of its new idea.
    pub fn exercise_source(self) -> &'static str {
        match self {
            Step::Step07Overlay => "kit/src/overlay.rs",
            Step::Step08Cgroups => "kit/src/cgroup.rs",
            Step::Step01Chroot => "step01-chroot/src/main.rs",
            Step::Step02UnshareCli => "step02-unshare-cli/src/main.rs",
            Step::Step03PidNs => "step03-pid-ns/src/main.rs",
            Step::Step04FullDemo => "step04-full-demo/src/main.rs",
        }
    }

    /// The short name used in test names and messages, e.g. `step04`.
    pub fn short(self) -> &'static str {
        &self.name()[..6]
    }

    /// Where the book explains this step, for failure messages.
    pub fn chapter(self) -> String {
        format!("book chapter '{}' (book/src/{}.md)", self.short(), self.name())
    }

    /// The arguments that run `command` in `rootfs` the way the book runs this
    /// step: steps 01, 04 and later take ROOTFS then the command; step02 the
    /// article's flags (`--root ROOTFS --mount-proc --pid --fork`, and
    /// `/bin/sh` when no command is given, as the article types it); step03
    /// runs on the host's files. An empty `command` leaves the step's default.
    pub fn args_for(self, rootfs: &Path, command: &[&str]) -> Vec<String> {
        let rootfs = rootfs.display().to_string();
        let mut args: Vec<String> = match self {
            Step::Step01Chroot
            | Step::Step04FullDemo
            | Step::Step07Overlay
            | Step::Step08Cgroups => vec![rootfs],
            Step::Step02UnshareCli => {
                let mut flags: Vec<String> = ["--root", &rootfs, "--mount-proc", "--pid", "--fork"]
                    .map(String::from)
                    .to_vec();
                if command.is_empty() {
                    flags.push("/bin/sh".into());
                }
                flags
            }
            Step::Step03PidNs => Vec::new(),
        };
        args.extend(command.iter().map(|word| word.to_string()));
        args
    }

    /// The step's binary, built by cargo from the step's own source before the
    /// tests run (see the `[[bin]]` targets in tests/Cargo.toml).
    pub fn binary(self) -> PathBuf {
        let path = profile_dir().join(self.short());
        assert!(path.exists(), "{} is missing: run the tests with `cargo test`", path.display());
        path
    }
}

/// The workspace root (the directory with the top-level Cargo.toml).
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace")
}

/// The cargo profile directory the tests were built into, e.g. `target/debug`.
/// The step binaries are built next to them.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    // target/<profile>/deps/<test binary>
    exe.parent().and_then(Path::parent).expect("test binaries live in target/<profile>/deps").into()
}

/// A scratch directory for this user's test runs: `target/workshop-tests`, or,
/// when the tests run as another user than the owner of `target/` (root via
/// sudo), one in the temp dir, so that no root-owned file lands in `target/`.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        let target = profile_dir().parent().expect("target dir").to_path_buf();
        let euid = nix::unistd::geteuid().as_raw();
        let dir = match std::fs::metadata(&target) {
            Ok(meta) if meta.uid() == euid => target.join("workshop-tests"),
            _ => std::env::temp_dir().join(format!("workshop-tests-uid{euid}")),
        };
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        dir
    })
}

/// Names this test run: all test binaries of one `cargo test` (they share
/// the parent, cargo), or one `cargo nextest run` (it says which).
pub fn run_id() -> String {
    match std::env::var("NEXTEST_RUN_ID") {
        Ok(id) => format!("nextest-{id}"),
        Err(_) => format!("cargo-{}", nix::unistd::getppid()),
    }
}

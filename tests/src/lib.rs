//! The workshop's test harness, written once and shared by every test file.
//!
//! It builds the step binaries (and, with `cc`, the article's program in C,
//! see [`c_demo`], and step05's escape probe, see [`escape`]), prepares the
//! Alpine rootfs once per run
//! (with the same code as `cargo xtask rootfs`), runs a step as a child
//! process — as root, or as "root" inside a user namespace when the tests run
//! without sudo — and checks after every run that the host is as it was: the
//! same mounts, and no process left behind.
//!
//! Failure messages are written for students: they say what the step did,
//! what it should have done, and which section of the book explains it.

pub mod c_demo;
pub mod cgroups;
pub mod escape;
pub mod host;
pub mod privilege;
pub mod rootfs;
pub mod run;
pub mod transcript;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

// `#[template]` (see `every_step`) makes a macro that calls rstest_reuse's
// own, so the crate that exports a template names rstest_reuse at its root.
// The template is tokens: its `#[rstest]` and `Step` are the test file's.
pub use rstest_reuse;
use rstest_reuse::template;

pub use privilege::{Privilege, privilege, require_privilege};
pub use rootfs::{ROOTFS, RootfsCopy, alpine_rootfs, manifest, manifest_changes, with_rootfs};
pub use run::{Output, Runner, Running};
pub use transcript::Transcript;

/// The workshop's steps, from the table that `cargo xtask` uses too
/// (xtask/src/steps.rs): their names, arguments, sources and chapters.
pub use xtask::steps::Step;

/// Every step, one rstest case each: a test that holds on every step says
/// `#[apply(every_step)]` (with `use rstest_reuse::apply;` and
/// `use workshop_tests::every_step;`) and takes `#[case] step: Step`.
/// The cases are named after the steps, so `cargo xtask grade step04` picks
/// `case_4_step04_full_demo` of each such test; a new step is added here, once.
/// Tests that take more per-step arguments, or hold on some steps only, list
/// their cases themselves.
#[template]
#[export]
#[rstest]
#[case::step01_chroot(Step::Step01Chroot)]
#[case::step02_unshare_cli(Step::Step02UnshareCli)]
#[case::step03_pid_ns(Step::Step03PidNs)]
#[case::step04_full_demo(Step::Step04FullDemo)]
#[case::step05_pivot_root(Step::Step05PivotRoot)]
#[case::step06_init(Step::Step06Init)]
#[case::step07_overlay(Step::Step07Overlay)]
#[case::step08_cgroups(Step::Step08Cgroups)]
fn every_step(#[case] step: Step) {}

/// The step's binary, built by cargo from the step's own source before the
/// tests run (see the `[[bin]]` targets in tests/Cargo.toml), under its short
/// name: `target/debug/step04`.
pub fn binary(step: Step) -> PathBuf {
    let path = profile_dir().join(step.short());
    assert!(path.exists(), "{} is missing: run the tests with `cargo test`", path.display());
    path
}

/// A shell command that starts `command` (e.g. `sleep 30`) in the background
/// in the container, holding no output pipe (`>&- 2>&-`: a leftover process
/// must not keep the harness waiting for the end of the output), on every
/// step. Why not just `command &`: busybox's sh gives a background job
/// /dev/null as its stdin and fails without one ("can't open '/dev/null'"),
/// and the article's steps give the container no /dev. It does so only for
/// the first process of a background pipeline: so the command comes second,
/// after `:`, whose complaint `2>&-` silences.
pub fn in_background(command: &str) -> String {
    format!("{{ : | {command} >&- 2>&- & }} 2>&-")
}

/// The workspace root (the directory with the top-level Cargo.toml), found
/// when the tests run, as xtask finds it: a checkout copied with its target/
/// tests its own files, not those of the checkout the tests were built in.
pub fn workspace() -> &'static Path {
    xtask::workspace_root()
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

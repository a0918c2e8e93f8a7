//! The launcher as `cargo xtask` runs it, with a stand-in for cargo: the
//! first build is announced, later runs print nothing of cargo's, and the
//! helper gets the arguments and gives its exit status.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const LAUNCHER: &str = env!("CARGO_BIN_EXE_xtask-launcher");

/// A stand-in for cargo: `build` prints `build_stderr` on stderr; `run`
/// prints its arguments and exits 7.
fn fake_cargo(dir: &Path, build_stderr: &str) -> PathBuf {
    let path = dir.join("cargo");
    let script = format!(
        "#!/bin/sh\n\
         case \"$1\" in\n\
         build) printf '%s' '{build_stderr}' >&2; exit 0 ;;\n\
         run) echo \"ran: $*\"; exit 7 ;;\n\
         esac\n\
         exit 99\n"
    );
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn launch(cargo: &Path) -> std::process::Output {
    Command::new(LAUNCHER).args(["demo", "--rootless"]).env("CARGO", cargo).output().unwrap()
}

/// Issue 9 §3: the first `cargo xtask demo` printed nothing for 40 s.
#[test]
fn the_first_build_is_announced_and_later_ones_are_silent() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().to_path_buf();
    let first = launch(&fake_cargo(
        &dir,
        "   Compiling ring v0.17.14\n   Compiling xtask v0.1.0\n    Finished `dev` profile in 41s\n",
    ));
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.starts_with(
            "cargo xtask: building the workshop's helper first (the first time takes a minute or two"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("   Compiling xtask v0.1.0"), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        "ran: run --quiet --package xtask -- demo --rootless\n"
    );
    assert_eq!(first.status.code(), Some(7), "the helper's exit status");

    let later = launch(&fake_cargo(&dir, "    Finished `dev` profile in 0.09s\n"));
    assert_eq!(String::from_utf8_lossy(&later.stderr), "", "nothing of cargo's on later runs");
    assert_eq!(later.status.code(), Some(7));
}

/// The alias runs the launcher, still with `--quiet` (the launcher shows the build).
#[test]
fn the_alias_runs_the_launcher() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cargo/config.toml");
    let text = fs::read_to_string(&config).unwrap();
    let alias = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("xtask = "))
        .unwrap_or_else(|| panic!("no xtask alias in {}", config.display()));
    assert_eq!(alias, "\"run --quiet --package xtask-launcher --\"");
}

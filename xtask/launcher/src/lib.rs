//! What the launcher and xtask share: how they start cargo.

use std::ffi::OsStr;
use std::process::Command;

/// `cargo` without the variables cargo sets for the program it runs (the
/// launcher, xtask, a test): they describe that package, and some build
/// scripts watch them (ring's does), so passed on they would make cargo
/// rebuild those crates now, and again at the next `cargo xtask` or `cargo test`.
pub fn cargo_command(cargo: &OsStr) -> Command {
    let mut cmd = Command::new(cargo);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let ours = [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_MANIFEST_LINKS",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "OUT_DIR",
        ]
        .contains(&key.as_ref())
            || key.starts_with("CARGO_PKG_");
        if ours {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

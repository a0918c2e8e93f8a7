//! # xtask: the workshop's helper
//!
//! `cargo xtask ...` is an alias (see `.cargo/config.toml`) for running this
//! crate's binary. It does the chores around the steps, so that the steps
//! themselves can stay about namespaces:
//!
//! - [`rootfs`]: put the article's Alpine 3.20.3 root filesystem at `./rootfs`
//!   ([`download`] fetches and checks the tarball, [`mod@extract`] unpacks it safely);
//! - [`doctor`]: tell whether this machine can run each step, and what to do if not;
//! - [`mod@run`]: build one step and run it as root, through `sudo` or in a user
//!   namespace ([`mod@rootless`]);
//! - exercise mode, for a class: [`classroom`] turns a step into its exercise
//!   and back (`cargo xtask exercise | solution`), with the pure transformation
//!   in [`exercise`]; [`grade`] runs a step's tests and sums them up.
//!
//! The tests crate uses the library too. What it needs is re-exported here:
//! [`alpine_tarball`], [`extract()`], [`prepare`] and [`rootless()`].
//!
//! Relative paths (`--dest`, `--from-tar`, `ALPINE_MINIROOTFS`) are relative to
//! the workspace root, wherever cargo was started from.

pub mod classroom;
pub mod doctor;
pub mod download;
pub mod exercise;
pub mod extract;
pub mod grade;
pub mod mounts;
pub mod rootfs;
pub mod rootless;
pub mod run;
pub mod steps;

use std::path::{Path, PathBuf};

pub use download::alpine_tarball;
pub use extract::{Summary, extract};
pub use rootfs::{Prepared, Source, prepare};
#[cfg(target_os = "linux")]
pub use rootless::rootless;

/// The workspace root: the directory holding the top `Cargo.toml`, `rootfs/` and `target/`.
pub fn workspace_root() -> &'static Path {
    // This crate lives in `<workspace>/xtask`; cargo tells us where at compile time.
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir)
}

/// `path` made absolute: relative paths are taken from the workspace root.
pub fn from_workspace_root(path: &Path) -> PathBuf {
    workspace_root().join(path)
}

/// `path` shown relative to the workspace root when it is inside it (`rootfs`
/// rather than `/home/you/container-workshop/rootfs`), as a learner would type it.
pub fn display_path(path: &Path) -> String {
    match path.strip_prefix(workspace_root()) {
        Ok(relative) if relative.as_os_str().is_empty() => ".".to_owned(),
        Ok(relative) => relative.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// Formats an error for the terminal: `xtask: what went wrong: why`, then the
/// `hint: ...` lines found anywhere in the error chain, each on its own line.
///
/// Errors in this crate put advice on lines of their own starting with
/// `hint: `; this gathers them at the end, after the whole story.
pub fn report(err: &anyhow::Error) -> String {
    let mut story: Vec<String> = Vec::new();
    let mut hints: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let mut message = Vec::new();
        for line in text.lines() {
            match line.strip_prefix("hint: ") {
                Some(hint) if !hints.iter().any(|h| h == hint) => hints.push(hint.to_owned()),
                Some(_) => {}
                None if !line.trim().is_empty() => message.push(line),
                None => {}
            }
        }
        let message = message.join("\n");
        // io errors often repeat their cause in their own message: say it once.
        if !message.is_empty() && !story.last().is_some_and(|last| last.ends_with(&message)) {
            story.push(message);
        }
    }
    let mut out = format!("xtask: {}\n", story.join(": "));
    for hint in hints {
        out.push_str(&format!("hint: {hint}\n"));
    }
    out
}

/// Quotes `word` for a POSIX shell when it needs it, so that printed command
/// lines can be copied and pasted.
pub fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Whether we run with effective uid 0 (root, or root inside a user namespace).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Looks for an executable called `name` in `$PATH`, as a shell would.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| {
        candidate
            .metadata()
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{Context, anyhow};

    #[test]
    fn report_puts_hints_last() {
        let err = Err::<(), _>(anyhow!("no such file\nhint: run `cargo xtask rootfs`"))
            .context("cannot open rootfs")
            .unwrap_err();
        assert_eq!(
            report(&err),
            "xtask: cannot open rootfs: no such file\nhint: run `cargo xtask rootfs`\n"
        );
    }

    #[test]
    fn shell_quote_quotes_only_when_needed() {
        assert_eq!(shell_quote("target/debug/step04-full-demo"), "target/debug/step04-full-demo");
        assert_eq!(shell_quote("my dir"), "'my dir'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn display_path_is_relative_to_the_workspace() {
        assert_eq!(display_path(&workspace_root().join("rootfs")), "rootfs");
        assert_eq!(display_path(Path::new("/tmp/x")), "/tmp/x");
    }
}

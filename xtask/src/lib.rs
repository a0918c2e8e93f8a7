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
//!   in [`exercise`] (the `workshop-exercise` crate, which the book's
//!   preprocessor uses too); [`grade`] runs a step's tests and sums them up.
//!
//! The tests crate uses the library too. What it needs is re-exported here:
//! [`alpine_tarball`], [`extract()`], [`prepare`] and [`rootless()`].
//!
//! Relative paths (`--dest`, `--from-tar`, `ALPINE_MINIROOTFS`) are relative to
//! the workspace root, wherever cargo was started from. The workspace is the one
//! cargo ran us in, found at run time ([`workspace_root`]).
//!
//! Output goes through [`say!`] and [`show!`], never `eprintln!`/`println!`:
//! those panic when stderr or stdout is a closed pipe, and a helper that
//! panics while reporting an error exits 101 instead of its documented status.

pub mod bench;
pub mod classroom;
pub mod doctor;
pub mod download;
pub mod extract;
#[doc(hidden)]
pub mod fixtures;
pub mod grade;
pub mod mounts;
pub mod rootfs;
pub mod rootless;
pub mod run;
pub mod steps;

use std::path::{Path, PathBuf};

pub use ::exercise;
pub use download::alpine_tarball;
pub use extract::{Summary, extract};
pub use rootfs::{Prepared, Source, prepare};
#[cfg(target_os = "linux")]
pub use rootless::rootless;

/// The workspace root: the directory holding the top `Cargo.toml`, `rootfs/` and `target/`.
///
/// Found at run time, never compiled in: a checkout copied with its `target/`
/// (`cp -a workshop student1`, which keeps the times, so cargo rebuilds
/// nothing) must act on the copy, not on the checkout the binary was first
/// built in. See [`locate_workspace`] for how, and [`check_workspace`] for when
/// we refuse to go on.
pub fn workspace_root() -> &'static Path {
    &located().root
}

/// How [`workspace_root`] was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundBy {
    /// From `CARGO_MANIFEST_DIR`, which cargo sets for the programs it runs
    /// (`cargo run`, so `cargo xtask`, and `cargo test`): cargo has just
    /// built, or checked, this binary from that workspace's sources.
    Cargo,
    /// From the current directory: the binary was run by hand.
    CurrentDir,
    /// Neither led to a workspace: the one the binary was compiled in.
    Compiled,
}

/// Where the workspace is, and how we know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The workspace root.
    pub root: PathBuf,
    /// How it was found.
    pub found_by: FoundBy,
}

fn located() -> &'static Located {
    static LOCATED: std::sync::OnceLock<Located> = std::sync::OnceLock::new();
    LOCATED.get_or_init(|| {
        locate_workspace(
            std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).as_deref(),
            std::env::current_dir().ok().as_deref(),
        )
    })
}

/// The workspace this crate was compiled in (`env!` is fixed at build time).
pub fn compiled_workspace() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir)
}

/// Finds the workspace: the nearest directory at or above `manifest_dir` (the
/// `CARGO_MANIFEST_DIR` cargo gave us, if any), else above `current_dir`, whose
/// `Cargo.toml` has a `[workspace]` table; else the one we were compiled in.
pub fn locate_workspace(manifest_dir: Option<&Path>, current_dir: Option<&Path>) -> Located {
    let found = |start: Option<&Path>| start.and_then(workspace_containing);
    if let Some(root) = found(manifest_dir) {
        return Located { root, found_by: FoundBy::Cargo };
    }
    if let Some(root) = found(current_dir) {
        return Located { root, found_by: FoundBy::CurrentDir };
    }
    Located { root: compiled_workspace().to_path_buf(), found_by: FoundBy::Compiled }
}

/// The nearest directory at or above `dir` with a workspace `Cargo.toml`.
fn workspace_containing(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().find_map(|candidate| {
        let manifest = std::fs::read_to_string(candidate.join("Cargo.toml")).ok()?;
        manifest
            .lines()
            .any(|line| line.trim() == "[workspace]")
            .then(|| candidate.canonicalize().unwrap_or_else(|_| candidate.to_path_buf()))
    })
}

/// Refuses to go on when this binary and the workspace we are in disagree:
/// an xtask run by hand from another checkout's `target/` (it would act on
/// one checkout with the other's code), or from outside any workspace.
///
/// Run by cargo (`cargo xtask`), they always agree: cargo has built or
/// checked this binary from the very workspace it names.
pub fn check_workspace() -> anyhow::Result<()> {
    let exe = std::env::current_exe().ok().and_then(|exe| exe.canonicalize().ok());
    check_workspace_of(located(), exe.as_deref(), compiled_workspace())
}

/// [`check_workspace`] for a given workspace, binary and compile-time workspace.
pub fn check_workspace_of(
    located: &Located,
    exe: Option<&Path>,
    compiled: &Path,
) -> anyhow::Result<()> {
    let exe_shown = exe.map_or_else(|| "this program".to_owned(), |e| e.display().to_string());
    match located.found_by {
        FoundBy::Cargo => Ok(()),
        FoundBy::CurrentDir
            if exe.is_some_and(|exe| exe.starts_with(&located.root))
                || located.root == compiled =>
        {
            Ok(())
        }
        FoundBy::CurrentDir => anyhow::bail!(
            "{exe_shown} belongs to the workspace {}, but the current directory is in another one, {}: \
             run by hand here, it would act on one checkout with the other's code\n\
             hint: run `cargo xtask ...` in {}: cargo builds and runs that checkout's own xtask",
            compiled.display(),
            located.root.display(),
            located.root.display(),
        ),
        FoundBy::Compiled => anyhow::bail!(
            "the current directory is not inside the workshop, so {exe_shown} cannot tell which checkout to act on\n\
             hint: cd into the workshop and run `cargo xtask ...` there"
        ),
    }
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

/// Writes `text` to stderr. Unlike `eprint!`, this never panics: when stderr
/// is closed or a pipe nobody reads, the message is lost, and the program goes
/// on to exit with its documented status instead of 101.
pub fn write_stderr(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_fmt(text);
}

/// Writes `text` to stdout; like [`write_stderr`], never panics (`cargo xtask doctor | head -1`).
pub fn write_stdout(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(text).and_then(|()| out.flush());
}

/// `eprintln!` that never panics (see [`write_stderr`]).
#[macro_export]
macro_rules! say {
    () => { $crate::write_stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::write_stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!` that never panics (see [`write_stderr`]).
#[macro_export]
macro_rules! say_raw {
    ($($arg:tt)*) => { $crate::write_stderr(format_args!($($arg)*)) };
}

/// `println!` that never panics (see [`write_stdout`]).
#[macro_export]
macro_rules! show {
    () => { $crate::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` that never panics (see [`write_stdout`]).
#[macro_export]
macro_rules! show_raw {
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*)) };
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

/// The cargo that runs us (`$CARGO`, else `cargo` on PATH), as a command
/// ready to take arguments, without the variables that describe our package
/// (see [`xtask_launcher::cargo_command`]), and the name to show in messages.
pub fn cargo() -> (std::process::Command, String) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    (xtask_launcher::cargo_command(&cargo), cargo.to_string_lossy().into_owned())
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
    fn cargo_started_by_xtask_does_not_see_our_package() {
        // cargo runs tests, as it runs xtask, with our package's variables set.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some(), "run me with cargo test");
        let (cmd, _) = cargo();
        let removed: Vec<_> =
            cmd.get_envs().filter(|(_, value)| value.is_none()).map(|(key, _)| key).collect();
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if name.starts_with("CARGO_PKG_") || name == "CARGO_MANIFEST_DIR" {
                assert!(removed.contains(&key.as_os_str()), "{name} is passed on");
            }
        }
        assert!(std::env::var_os("PATH").is_none_or(|_| !removed.contains(&"PATH".as_ref())));
    }

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

    /// Issue 8 §1: the workspace is found at run time, from what cargo says,
    /// else from the current directory; a binary from elsewhere is refused.
    #[test]
    fn the_workspace_is_found_at_run_time() {
        let scratch = tempfile::tempdir().unwrap();
        let ws = scratch.path().join("student1");
        std::fs::create_dir_all(ws.join("tests")).unwrap();
        std::fs::create_dir_all(ws.join("book/src")).unwrap();
        std::fs::write(ws.join("Cargo.toml"), "[workspace]\n").unwrap();
        std::fs::write(ws.join("tests/Cargo.toml"), "[package]\n").unwrap();
        let ws = ws.canonicalize().unwrap();
        let compiled = Path::new("/elsewhere/workshop");
        let found = locate_workspace(Some(&ws.join("tests")), Some(Path::new("/")));
        assert_eq!(found, Located { root: ws.clone(), found_by: FoundBy::Cargo });
        assert!(check_workspace_of(&found, Some(Path::new("/x/xtask")), compiled).is_ok());

        let found = locate_workspace(None, Some(&ws.join("book/src")));
        assert_eq!(found, Located { root: ws.clone(), found_by: FoundBy::CurrentDir });
        assert!(check_workspace_of(&found, Some(&ws.join("target/debug/xtask")), compiled).is_ok());
        assert!(check_workspace_of(&found, Some(Path::new("/x/xtask")), &ws).is_ok());
        let text = report(
            &check_workspace_of(
                &found,
                Some(Path::new("/elsewhere/workshop/target/debug/xtask")),
                compiled,
            )
            .unwrap_err(),
        );
        assert!(text.contains("belongs to the workspace /elsewhere/workshop"), "{text}");

        let found = locate_workspace(None, Some(scratch.path()));
        assert_eq!(found.found_by, FoundBy::Compiled);
        assert!(check_workspace_of(&found, None, compiled).is_err());
    }

    #[test]
    fn display_path_is_relative_to_the_workspace() {
        assert_eq!(display_path(&workspace_root().join("rootfs")), "rootfs");
        assert_eq!(display_path(Path::new("/tmp/x")), "/tmp/x");
    }
}

//! `cargo xtask` starts here: a tiny program that builds the workshop's
//! helper, xtask, then runs it.
//!
//! Why not run xtask directly? The alias in `.cargo/config.toml` passes
//! `--quiet` to cargo, so that a run prints only what xtask says, not cargo's
//! "Finished … Running …" lines. But the first build of xtask takes about a
//! minute (TLS for the download, gzip, tar, …), and `--quiet` hides it too: a
//! newcomer typing `cargo xtask demo` saw nothing at all for 40 seconds.
//!
//! So this launcher, which has no dependencies and builds in a second, runs
//! `cargo build --package xtask` with cargo's messages piped to it. When cargo
//! compiles something, it says what is going on and passes cargo's lines on;
//! when xtask is up to date, which is every run after the first, it shows
//! nothing. Then it hands over to `cargo run --quiet --package xtask`, which
//! replaces it (exec), so xtask gets the terminal, the signals and the exit
//! status as if it had been started directly.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::process::CommandExt;
use std::process::{ExitCode, Stdio};

use xtask_launcher::cargo_command;

/// What is said once, before cargo's first "Compiling" line.
pub const BANNER: &str = "cargo xtask: building the workshop's helper first \
     (the first time takes a minute or two; later runs start at once)";

fn main() -> ExitCode {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if let Err(code) = build(&cargo) {
        return code;
    }
    let err = cargo_command(&cargo)
        .args(["run", "--quiet", "--package", "xtask", "--"])
        .args(&args)
        .exec();
    let _ =
        writeln!(std::io::stderr(), "cargo xtask: cannot run {}: {err}", cargo.to_string_lossy());
    ExitCode::FAILURE
}

/// `cargo build --package xtask`, shown only when it builds something.
/// On failure, the exit status to leave with.
fn build(cargo: &OsString) -> Result<(), ExitCode> {
    let color = if std::io::stderr().is_terminal() { "always" } else { "never" };
    let spawned = cargo_command(cargo)
        .args(["build", "--package", "xtask", "--bin", "xtask", "--color", color])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            let _ = writeln!(
                std::io::stderr(),
                "cargo xtask: cannot run {}: {err}",
                cargo.to_string_lossy()
            );
            return Err(ExitCode::FAILURE);
        }
    };
    let mut progress = Progress::default();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            for shown in progress.line(&line) {
                let _ = writeln!(std::io::stderr(), "{shown}");
            }
        }
    }
    match child.wait() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => {
            Err(ExitCode::from(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1)))
        }
        Err(_) => Err(ExitCode::FAILURE),
    }
}

/// Decides what to show of cargo's stderr during the build.
#[derive(Debug, Default)]
pub struct Progress {
    /// Whether anything was shown yet (then the rest is shown too).
    showing: bool,
}

impl Progress {
    /// The lines to show for one line of cargo's stderr: nothing while cargo
    /// only says the build is up to date; else the line, preceded the first
    /// time by [`BANNER`] when cargo starts compiling or downloading.
    pub fn line(&mut self, line: &str) -> Vec<String> {
        let words = strip_ansi(line);
        let first = words.split_whitespace().next().unwrap_or("");
        let working = ["Compiling", "Downloading", "Downloaded", "Updating", "Locking"];
        if !self.showing && (first == "Finished" || first.is_empty()) {
            return Vec::new();
        }
        let mut shown = Vec::new();
        if !self.showing && working.contains(&first) {
            shown.push(BANNER.to_owned());
        }
        self.showing = true;
        shown.push(line.to_owned());
        shown
    }
}

/// `line` without terminal color codes (`ESC [ ... m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(lines: &[&str]) -> Vec<String> {
        let mut progress = Progress::default();
        lines.iter().flat_map(|line| progress.line(line)).collect()
    }

    #[test]
    fn an_up_to_date_build_shows_nothing() {
        assert!(
            shown(&["    Finished `dev` profile [unoptimized + debuginfo] target(s) in 0.09s"])
                .is_empty()
        );
        assert!(shown(&[]).is_empty());
    }

    #[test]
    fn a_real_build_says_so_first() {
        let lines = [
            "   Compiling libc v0.2.180",
            "\u{1b}[1m\u{1b}[32m   Compiling\u{1b}[0m xtask v0.1.0 (/w/xtask)",
            "    Finished `dev` profile [unoptimized + debuginfo] target(s) in 41.20s",
        ];
        let out = shown(&lines);
        assert_eq!(out[0], BANNER);
        assert_eq!(out[1..], lines.map(String::from));
    }

    #[test]
    fn errors_are_shown_as_they_are() {
        let lines = ["error: could not compile `xtask` (bin \"xtask\") due to 1 previous error"];
        assert_eq!(shown(&lines), lines.map(String::from));
    }
}

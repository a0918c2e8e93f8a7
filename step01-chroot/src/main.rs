//! # Step 01: `chroot` — a new `/`, and nothing else
//!
//! The article begins with `sudo chroot rootfs/ sh`. This is that command in
//! Rust: (1) change the root directory, (2) become the command. Inside, `cat
//! /etc/os-release` says Alpine. But mount proc (`mount -t proc proc /proc`)
//! and `ps` lists every process of the host: chroot isolates files, not
//! processes. Step 02 brings namespaces.

#[cfg(not(target_os = "linux"))]
compile_error!("containers are made of Linux system calls: use Linux or a Linux VM");

use std::io::Write;
use std::{ffi::CString, os::unix::ffi::OsStrExt, path::Path, path::PathBuf, process::ExitCode};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use nix::errno::Errno;
use nix::sys::signal::{SigHandler, SigSet, Signal, signal};
use nix::unistd::{chdir, chroot, execvp};

/// Run COMMAND with its root directory set to ROOTFS, like chroot(1).
#[derive(Debug, Parser)]
#[command(name = "step01-chroot", version)]
struct Cli {
    /// The directory that becomes `/` for the command.
    #[arg(default_value = "./rootfs")]
    rootfs: PathBuf,
    /// The command to run inside ROOTFS, and its arguments.
    #[arg(default_value = "/bin/sh", trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<std::ffi::OsString>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage(err),
    };
    match run(&cli) {
        Ok(status) => status,
        Err(err) => {
            report(format_args!("{err:#}"));
            ExitCode::from(125) // chroot(1)'s status when it cannot set up
        }
    }
}

/// A usage error exits with 125, as chroot(1) does (clap's own is 2); --help
/// and --version print and exit with 0.
fn usage(err: clap::Error) -> ExitCode {
    let _ = err.print(); // a closed stderr must not change the status
    ExitCode::from(if err.use_stderr() { 125 } else { 0 })
}

/// Writes `step01-chroot: MESSAGE` to stderr. If stderr is a closed pipe, the
/// message is lost, but not our exit status (eprintln! would panic).
fn report(message: impl std::fmt::Display) {
    // After a failed exec, SIGPIPE is at its default (reset_signals): ignore it
    // again, or the write to a closed stderr would kill us instead.
    // SAFETY: ignoring a signal installs no handler.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    let _ = writeln!(std::io::stderr(), "step01-chroot: {message}");
}

// ANCHOR: run
fn run(cli: &Cli) -> Result<ExitCode> {
    check_rootfs(&cli.rootfs)?;
    let command: Vec<CString> =
        cli.command.iter().map(|arg| CString::new(arg.as_bytes())).collect::<Result<_, _>>()?;
    change_root(&cli.rootfs)?;
    Ok(exec(&command))
}
// ANCHOR_END: run

/// Fail early, with a hint, on the mistakes a learner is most likely to make.
fn check_rootfs(rootfs: &Path) -> Result<()> {
    let root = rootfs.display();
    if !rootfs.exists() {
        bail!("there is no rootfs at {root}\nhint: `cargo xtask rootfs` puts one in ./rootfs");
    } else if !rootfs.is_dir() {
        bail!("{root} is not a directory\nhint: give the directory of an unpacked root filesystem");
    }
    Ok(())
}

// ANCHOR: chroot
/// (1) ROOTFS becomes `/`: from now on every path this process opens is
/// looked up inside it. chroot(2) does not move the working directory, which
/// is still outside the new root, so we step into it with chdir("/").
/// <https://man7.org/linux/man-pages/man2/chroot.2.html>
fn change_root(rootfs: &Path) -> Result<()> {
    // ANCHOR: exercise_chroot (1) change the root: chroot(2) into ROOTFS, then chdir("/")
    chroot(rootfs)
        .map_err(|err| match err {
            Errno::EPERM => anyhow!(
                "{err}\nhint: this needs CAP_SYS_CHROOT: \
                 run with sudo (or see `cargo xtask doctor`)"
            ),
            _ => err.into(),
        })
        .with_context(|| format!("failed to chroot into {}", rootfs.display()))?;
    chdir("/").context("failed to chdir into the new root")
    // ANCHOR_END: exercise_chroot
}
// ANCHOR_END: chroot

// ANCHOR: exec
/// (2) Become the command. execvp(3) searches $PATH (inside the new root now)
/// and returns only if it failed. Exit statuses follow chroot(1): 127 when the
/// command is not found, 126 when it cannot be run.
/// <https://man7.org/linux/man-pages/man3/exec.3.html>
fn exec(command: &[CString]) -> ExitCode {
    reset_signals();
    // ANCHOR: exercise_exec (2) become the command: execvp(3); else exit 127 or 126
    let Err(err) = execvp(&command[0], command);
    let cmd = command[0].to_string_lossy();
    report(format_args!("failed to run {cmd} in the new root: {}", err.desc()));
    ExitCode::from(if err == Errno::ENOENT { 127 } else { 126 })
    // ANCHOR_END: exercise_exec
}
// ANCHOR_END: exec

// ANCHOR: reset_signals
/// The command inherits our signal mask and every signal we ignore, and the
/// Rust runtime ignores SIGPIPE before `main`: left so, `yes | head -1` would
/// never end. So SIGPIPE goes back to its default, and nothing stays blocked,
/// as std::process::Command does. Step 04's chapter tells what else is inherited.
fn reset_signals() {
    // SAFETY: the default action is no handler of ours.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    let _ = SigSet::empty().thread_set_mask();
}
// ANCHOR_END: reset_signals

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}

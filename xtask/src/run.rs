//! `cargo xtask run <step>` and `cargo xtask demo`: build a step and run it.
//!
//! Namespaces, chroot and mounts need root, so a step runs through `sudo`
//! (and the exact command is printed first, so you see what happens), or
//! `--rootless`: as root in a user namespace of its own, no sudo needed.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{display_path, shell_quote, workspace_root};

pub use crate::steps::Step;

/// Builds `step`, makes `./rootfs` if it is missing, and runs the step from
/// the workspace root with `args` (the article's when empty): directly as
/// root, else through `sudo`, or in a user namespace with `rootless`.
/// Returns the step's exit status (128+N if signal N killed it).
pub fn run(step: Step, rootless: bool, args: &[OsString]) -> Result<i32> {
    if !cfg!(target_os = "linux") {
        bail!(
            "the steps use Linux system calls and cannot run on {}\nhint: `cargo xtask doctor` explains how to get a Linux VM",
            std::env::consts::OS
        );
    }
    build(step)?;
    // Make ./rootfs only when the step is going to use it: with the article's
    // arguments, or arguments that name it.
    let names_rootfs = args
        .iter()
        .any(|a| ["rootfs", "./rootfs", "rootfs/", "./rootfs/"].contains(&&*a.to_string_lossy()));
    if step.needs_rootfs() && (args.is_empty() || names_rootfs) {
        let rootfs = workspace_root().join("rootfs");
        if !crate::rootfs::is_ready(&rootfs) {
            crate::say!("no rootfs at ./rootfs yet: making it (as `cargo xtask rootfs` does)");
            let prepared = crate::prepare(&rootfs, &crate::Source::Alpine, false)?;
            crate::say_raw!("{prepared}");
        }
        warn_about_leftover_mounts(&rootfs);
    }

    let binary = target_dir().join("debug").join(step.name());
    let args: Vec<OsString> = if args.is_empty() {
        step.article_args().iter().map(OsString::from).collect()
    } else {
        args.to_vec()
    };
    let (mut cmd, prefix) = command_for(&binary, rootless)?;
    cmd.args(&args).current_dir(workspace_root());
    // Show the command as you could type it yourself, from the workspace root.
    let mut line = format!("+ {prefix}{}", shell_quote(&display_path(&binary)));
    for arg in &args {
        line += &format!(" {}", shell_quote(&arg.to_string_lossy()));
    }
    if rootless {
        line += "    # in a new user namespace, as `unshare --user --map-root-user --mount` does";
    }
    crate::say!("{line}");
    let code = spawn_and_wait(cmd, rootless, step.name())?;
    if code == 101 {
        // What a panic exits with, and so a todo!() of exercise mode.
        crate::say!(
            "note: {} panicked (status 101). If it stopped at a todo!(), that part of the \
             exercise is not written yet: `cargo xtask grade {}` lists what is left",
            step.name(),
            step.short()
        );
    }
    Ok(code)
}

/// `cargo build --quiet -p <crate>`, with the cargo that runs us.
fn build(step: Step) -> Result<()> {
    let (mut cmd, cargo) = crate::cargo();
    let status = cmd
        .args(["build", "--quiet", "-p", step.name()])
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot run {cargo}\nhint: is cargo installed and on PATH?"))?;
    if !status.success() {
        bail!("building {} failed (cargo's messages are above)", step.name());
    }
    Ok(())
}

/// Where cargo puts what it builds: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => crate::from_workspace_root(&PathBuf::from(dir)),
        None => workspace_root().join("target"),
    }
}

/// The command that runs `binary`, and what to show in front of it: `sudo `
/// when we are not root, nothing with `--rootless` or as root.
fn command_for(binary: &std::path::Path, rootless: bool) -> Result<(Command, &'static str)> {
    if rootless {
        #[cfg(target_os = "linux")]
        {
            let mut cmd = Command::new(binary);
            crate::rootless(&mut cmd);
            return Ok((cmd, ""));
        }
        #[cfg(not(target_os = "linux"))]
        bail!("--rootless needs Linux user namespaces");
    }
    if crate::is_root() {
        return Ok((Command::new(binary), ""));
    }
    if crate::find_in_path("sudo").is_none() {
        bail!(
            "this step needs root, and sudo is not installed\n\
             hint: run it rootless instead: add --rootless (`cargo xtask doctor` says whether this machine allows it)\n\
             hint: or run it as root"
        );
    }
    let mut cmd = Command::new("sudo");
    cmd.arg(binary.strip_prefix(workspace_root()).unwrap_or(binary));
    Ok((cmd, "sudo "))
}

/// Runs `cmd` to the end, the way system(3) does: while it runs, Ctrl-C and
/// Ctrl-\ are for it (the container's shell), not for us.
fn spawn_and_wait(mut cmd: Command, rootless: bool, program: &str) -> Result<i32> {
    use nix::sys::signal::{SigHandler, Signal, signal};
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    // The child must not inherit "ignore": put the defaults back before exec.
    let restore = || {
        for sig in [Signal::SIGINT, Signal::SIGQUIT] {
            // SAFETY: signal(2) is async-signal-safe; SIG_DFL runs no Rust code.
            unsafe { signal(sig, SigHandler::SigDfl) }.map_err(std::io::Error::from)?;
        }
        Ok(())
    };
    // SAFETY: the hook only calls signal(2).
    unsafe { cmd.pre_exec(restore) };

    // SAFETY: SIG_IGN runs no code in our process.
    let previous = [Signal::SIGINT, Signal::SIGQUIT]
        .map(|sig| (sig, unsafe { signal(sig, SigHandler::SigIgn) }));
    let status = match cmd.spawn() {
        Ok(mut child) => child.wait().context("cannot wait for the step"),
        #[cfg(target_os = "linux")]
        Err(err) if rootless => Err(crate::rootless::explain(err, program)),
        Err(err) => Err(anyhow::Error::new(err).context(format!("cannot run {program}"))),
    };
    for (sig, old) in previous {
        if let Ok(old) = old {
            // SAFETY: puts back the handler that was there before.
            let _ = unsafe { signal(sig, old) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = rootless;
    let status = status?;
    Ok(status.code().or_else(|| status.signal().map(|n| 128 + n)).unwrap_or(1))
}

/// A `proc` left mounted in the rootfs by step 01 does not stop the steps,
/// but it is mounted on the host: say how to remove it.
fn warn_about_leftover_mounts(rootfs: &std::path::Path) {
    #[cfg(target_os = "linux")]
    if let (Ok(mounts), Ok(rootfs)) = (crate::mounts::current(), rootfs.canonicalize()) {
        let found = crate::mounts::mounted_at_or_under(&mounts, &rootfs);
        if !found.is_empty() {
            crate::say!(
                "note: still mounted on the host, probably from step 01 (harmless here, but unmount it when done):"
            );
            for command in crate::mounts::umount_commands(&found) {
                crate::say!("  {command}");
            }
        }
    }
    let _ = rootfs;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_status_is_the_steps() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "exit 7"]);
        assert_eq!(spawn_and_wait(cmd, false, "sh").unwrap(), 7);
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "kill -TERM $$"]);
        assert_eq!(spawn_and_wait(cmd, false, "sh").unwrap(), 128 + 15);
    }

    #[test]
    fn the_step_gets_ctrl_c_back() {
        // We ignore SIGINT while the step runs; the step itself must not.
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "kill -INT $$; exit 0"]);
        assert_eq!(spawn_and_wait(cmd, false, "sh").unwrap(), 128 + libc::SIGINT);
    }
}

//! # Entering a running container: what `docker exec` and `nsenter` do (step06)
//!
//! A container is a set of namespaces and a root directory, held by its
//! processes. To run a second command in it, a process joins them: setns(2)
//! moves the caller into a namespace, given a file that names it. Here the
//! file is a pidfd, which names one process and all its namespaces at once.
//!
//! Step06 enters the mount and PID namespaces of a process of the container
//! (and its user namespace, when it has one of its own: the rootless case),
//! (6) joins them and takes the container's root as its own, then (7) forks,
//! because a process never changes PID namespace: setns(CLONE_NEWPID) only
//! decides where its *children* are born. The child starts clean, as every
//! command of the workshop does, and its status becomes ours.

use std::ffi::{CString, OsString};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sched::{CloneFlags, setns};
use nix::sys::stat::Mode;
use nix::unistd::{chroot, fchdir};

use crate::init::run_command;
use crate::pivot_root::fork_and_wait;

/// `enter PID [COMMAND]...`: the options of entering a running container.
#[derive(Debug, clap::Args)]
pub struct Enter {
    /// The host PID of a process of the running container, such as its PID 1
    /// (the runtime's child: `pgrep -P <runtime's PID>`).
    #[arg(value_parser = clap::value_parser!(i32).range(1..))]
    pub pid: i32,
    /// The command to run in the container, and its arguments.
    #[arg(default_value = "/bin/sh", trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

/// A process of a running container, held open: what we join.
#[derive(Debug)]
pub struct Target {
    /// Its PID on the host, for messages.
    pub pid: i32,
    /// The process itself (pidfd_open(2)): it names this process and no
    /// other, even after it ends and its PID is given to a newcomer.
    pub pidfd: OwnedFd,
    /// Its root directory, opened through /proc before we leave the host's
    /// mount namespace: the container's `/`.
    pub root: OwnedFd,
    /// The namespaces to join: mount and PID, and user when it differs from ours.
    pub namespaces: CloneFlags,
}

// ANCHOR: enter
/// Runs `args.command` inside the running container that process `args.pid`
/// belongs to, and returns its status, as `docker exec` and `nsenter` do.
pub fn enter(args: &Enter) -> Result<ExitCode> {
    let command = crate::article::c_strings(&args.command)?;
    let target = open_target(args.pid)?;
    join(&target)?; // (6)
    fork_in(&command) // (7)
}
// ANCHOR_END: enter

// ANCHOR: open_target
/// Opens what we need of process `pid` while we still see the host: the
/// process (a pidfd) and its root directory; and checks that it is in a
/// container, a PID namespace other than ours.
pub fn open_target(pid: i32) -> Result<Target> {
    let pidfd = pidfd_open(pid).map_err(|err| match err {
        Errno::ESRCH => anyhow!(
            "there is no process {pid}\nhint: give the host PID of a process of the container, \
             such as its PID 1: the runtime's child (`pgrep -P <runtime's PID>`)"
        ),
        _ => anyhow!("cannot open process {pid}: {err}"),
    })?;
    let proc = format!("/proc/{pid}");
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let root = open(format!("{proc}/root").as_str(), flags, Mode::empty()).map_err(|err| {
        let hint = match err {
            Errno::EACCES | Errno::EPERM => {
                "\nhint: entering a container takes the privileges that made it: use sudo, as \
                 for the runtime"
            }
            _ => "",
        };
        anyhow!("cannot open the root directory of process {pid}: {err}{hint}")
    })?;
    let same = |ns: &str| -> Result<bool> {
        let ours = std::fs::metadata(format!("/proc/self/ns/{ns}"))?;
        let theirs = std::fs::metadata(format!("{proc}/ns/{ns}"))
            .with_context(|| format!("cannot read the namespaces of process {pid}"))?;
        Ok((ours.dev(), ours.ino()) == (theirs.dev(), theirs.ino()))
    };
    if same("pid")? {
        bail!(
            "process {pid} is not in a container: it is in this PID namespace (a runtime is; \
             its container is not)\nhint: give the host PID of a process of the container, such \
             as its PID 1: the runtime's child (`pgrep -P {pid}` if {pid} is the runtime)"
        );
    }
    let mut namespaces = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID;
    if !same("user")? {
        // A rootless container: its namespaces belong to its user namespace,
        // and only there do we have the privileges to join them.
        namespaces |= CloneFlags::CLONE_NEWUSER;
    }
    // Still there? Then /proc/{pid} was this process, not a newcomer with its PID.
    if let Err(err) = pidfd_send_signal(&pidfd, 0) {
        bail!("process {pid} is gone: {err}");
    }
    Ok(Target { pid, pidfd, root, namespaces })
}
// ANCHOR_END: open_target

// ANCHOR: join
/// (6) Join the container's namespaces, all at once through the pidfd (Linux
/// 5.8), then take its root: chroot(2) into the directory we opened, which
/// also makes it our working directory. Joining the mount namespace alone
/// would leave us at that namespace's root mount, which is the container's
/// `/` only if the runtime moved it there with pivot_root(2).
/// <https://man7.org/linux/man-pages/man2/setns.2.html>
pub fn join(target: &Target) -> Result<()> {
    let pid = target.pid;
    // ANCHOR: exercise_join (6) join the container: setns(2) with the pidfd, then fchdir(2) to the root and chroot(2) into "."
    setns(&target.pidfd, target.namespaces).map_err(|err| match err {
        Errno::EPERM => anyhow!(
            "setns: {err}\nhint: entering a container takes the privileges that made it: use \
             sudo, as for the runtime"
        ),
        _ => anyhow!("failed to join the namespaces of process {pid}: {err}"),
    })?;
    fchdir(&target.root).context("failed to go to the container's root")?;
    chroot(".").context("failed to chroot into the container's root")
    // ANCHOR_END: exercise_join
}
// ANCHOR_END: join

/// pidfd_open(2), which nix does not wrap: a file descriptor for process `pid`.
/// <https://man7.org/linux/man-pages/man2/pidfd_open.2.html>
fn pidfd_open(pid: i32) -> nix::Result<OwnedFd> {
    // SAFETY: a plain system call; the descriptor it returns is ours to own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// pidfd_send_signal(2); signal 0 only checks that the process is still there.
/// <https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html>
fn pidfd_send_signal(pidfd: &OwnedFd, signal: i32) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let null = std::ptr::null::<libc::siginfo_t>();
    // SAFETY: a plain system call on a descriptor we own; no siginfo is passed.
    let res =
        unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal, null, 0) };
    Errno::result(res).map(drop)
}

// ANCHOR: fork_in
/// (7) setns(CLONE_NEWPID) did not move us: a process keeps its PID, and so
/// its PID namespace, for life. It set where our *children* are born. So we
/// fork, and the child, born in the container's PID namespace with a PID of
/// its own there, becomes the command; we wait, and its status becomes ours.
/// (The mount namespace and the root, by contrast, were ours at once, and the
/// child inherits them.)
pub fn fork_in(command: &[CString]) -> Result<ExitCode> {
    // ANCHOR: exercise_fork_in (7) fork into the PID namespace: fork(2) with step05's fork_and_wait(command, run_command)
    fork_and_wait(command, run_command)
    // ANCHOR_END: exercise_fork_in
}
// ANCHOR_END: fork_in

//! # Step 04: the article's `container_demo.c`, in Rust
//!
//! Numbered as in the article: (1) new mount and PID namespaces, (2) make all
//! mounts private, (3) chroot into the rootfs, (4) fork, (5) the child mounts a
//! fresh /proc, (6) the child becomes the command while the parent waits.
//!
//! What the C program leaves out and we add: the container's exit status becomes
//! ours (128+N when signal N killed it), the container dies with us, and none of
//! our open files leak into it.
//!
//! Later steps build on this one: they compile this file as a module and call
//! its functions, which is why those are `pub`.

#[cfg(not(target_os = "linux"))]
compile_error!("containers are made of Linux system calls: use Linux or a Linux VM");

use std::ffi::{CStr, CString};
use std::io::Write;
use std::{os::unix::ffi::OsStrExt, path::Path, path::PathBuf, process::ExitCode};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigHandler, SigSet, Signal, signal};
use nix::sys::{prctl::set_pdeathsig, wait::WaitStatus, wait::waitpid};
use nix::unistd::{ForkResult, Pid, chdir, chroot, fork};
use nix::{errno::Errno, mount::MsFlags, mount::mount};

/// Run COMMAND in a tiny container: own mount and PID namespaces, ROOTFS as `/`.
#[derive(Debug, Parser)]
#[command(name = "step04-full-demo", version)]
struct Cli {
    /// The directory that becomes `/` inside the container.
    #[arg(default_value = "./rootfs")]
    rootfs: PathBuf,
    /// The command to run as PID 1 inside the container, and its arguments.
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
            ExitCode::from(125) // as chroot(1): the runtime itself failed
        }
    }
}

/// A usage error exits with 125, as chroot(1) does (clap's own is 2); --help
/// and --version print and exit with 0.
pub fn usage(err: clap::Error) -> ExitCode {
    let _ = err.print(); // a closed stderr must not change the status
    ExitCode::from(if err.use_stderr() { 125 } else { 0 })
}

// ANCHOR: run
fn run(cli: &Cli) -> Result<ExitCode> {
    check_rootfs(&cli.rootfs)?;
    let command = c_strings(&cli.command)?;
    new_namespaces()?;
    make_mounts_private()?;
    change_root(&cli.rootfs)?;
    fork_container(&command)
}
// ANCHOR_END: run

/// The command as execvp(3) takes it: C strings, each ending in a NUL byte.
/// Made here, before the fork, because the child must not allocate (see (4)).
pub fn c_strings(args: &[std::ffi::OsString]) -> Result<Vec<CString>> {
    let strings = args.iter().map(|arg| CString::new(arg.as_bytes()));
    Ok(strings.collect::<Result<_, _>>()?)
}

/// Fail early, with a hint, on the mistakes a learner is most likely to make.
pub fn check_rootfs(rootfs: &Path) -> Result<()> {
    let (root, proc) = (rootfs.display(), rootfs.join("proc"));
    if !rootfs.exists() {
        bail!("there is no rootfs at {root}\nhint: `cargo xtask rootfs` puts one in ./rootfs");
    } else if !rootfs.is_dir() {
        bail!("{root} is not a directory\nhint: give the directory of an unpacked root filesystem");
    } else if !proc.symlink_metadata().is_ok_and(|meta| meta.is_dir()) {
        // mount(2) follows symlinks: a /proc symlink could send (5) elsewhere.
        bail!(
            "{root}/proc must be a directory (not missing, not a symlink): (5) mounts proc there"
        );
    }
    Ok(())
}

// ANCHOR: unshare
/// (1) New mount and PID namespaces. We enter the new mount namespace at once;
/// the new PID namespace is only for the children we create from now on.
/// <https://man7.org/linux/man-pages/man2/unshare.2.html>
pub fn new_namespaces() -> Result<()> {
    // ANCHOR: exercise_unshare (1) new mount and PID namespaces: unshare(2)
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID).map_err(|err| match err {
        Errno::EPERM => anyhow!(
            "unshare: {err}\nhint: this needs CAP_SYS_ADMIN: \
             run with sudo (or see `cargo xtask doctor`)"
        ),
        _ => anyhow!("failed to unshare the mount and PID namespaces: {err}"),
    })
    // ANCHOR_END: exercise_unshare
}
// ANCHOR_END: unshare

// ANCHOR: private
/// (2) Make every mount private. The new mount namespace starts as a copy of
/// the host's, and where `/` is *shared* (systemd's default) new mounts would
/// propagate to the host: private, ours stay ours.
/// <https://man7.org/linux/man-pages/man7/mount_namespaces.7.html>
pub fn make_mounts_private() -> Result<()> {
    // ANCHOR: exercise_private (2) make every mount private: mount(2) "/" with MS_REC | MS_PRIVATE
    let flags = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    mount(Some("none"), "/", None::<&str>, flags, None::<&str>).context("failed to make / private")
    // ANCHOR_END: exercise_private
}
// ANCHOR_END: private

// ANCHOR: chroot
/// (3) ROOTFS becomes `/`. chroot(2) leaves the working directory outside the
/// new root, so we step into it with chdir("/").
/// <https://man7.org/linux/man-pages/man2/chroot.2.html>
pub fn change_root(rootfs: &Path) -> Result<()> {
    // ANCHOR: exercise_chroot (3) change the root: chroot(2) into ROOTFS, then chdir("/")
    chroot(rootfs).with_context(|| format!("failed to chroot into {}", rootfs.display()))?;
    chdir("/").context("failed to chdir into the new root")
    // ANCHOR_END: exercise_chroot
}
// ANCHOR_END: chroot

// ANCHOR: fork
/// (4) Fork. The child is the first process in the new PID namespace: its PID 1.
///
/// fork copies all our memory but only the thread that calls it. In a program
/// with threads, a lock that another thread held at that moment (malloc's,
/// say) stays locked in the child for ever: so until it execs, the child makes
/// only async-signal-safe calls (signal-safety(7)), and does not allocate. We
/// have one thread, but keep the rule, as std::process::Command does.
/// <https://man7.org/linux/man-pages/man2/fork.2.html>
pub fn fork_container(command: &[CString]) -> Result<ExitCode> {
    // So exec's argv is built now, before the fork.
    let argv: Vec<_> = command.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
    // Ctrl-C goes to every process on the terminal. The container's shell handles
    // it; we must not die of it (that would kill the container), so we block it.
    SigSet::from_iter([Signal::SIGINT, Signal::SIGQUIT]).thread_block()?;
    // ANCHOR: exercise_fork (4) fork: fork(2); the child runs container(&argv)
    // SAFETY: we are single-threaded, and the child only makes async-signal-safe calls.
    match unsafe { fork() }.context("failed to fork")? {
        ForkResult::Child => container(&argv),
        ForkResult::Parent { child } => wait_for(child),
    }
    // ANCHOR_END: exercise_fork
}
// ANCHOR_END: fork

// ANCHOR: container
/// The child, from the fork to the exec: start clean, (5) mount proc, (6)
/// become the command. Async-signal-safe calls only: see `fork_container`.
pub fn container(argv: &[*const libc::c_char]) -> ! {
    start_clean();
    if let Err(err) = mount_proc() {
        die(125, &[b"failed to mount proc on /proc: ", err.desc().as_bytes()]);
    }
    let err = exec(argv);
    // SAFETY: argv[0] points into a live CString.
    exec_failed(unsafe { CStr::from_ptr(argv[0]) }, err)
}
// ANCHOR_END: container

// ANCHOR: start_clean
/// What the child inherited from the runtime and the container must not have:
/// it dies with the runtime, its signals are as a command expects them, and it
/// sees none of our files. fork(2) and execve(2) list what is inherited.
pub fn start_clean() {
    let _ = set_pdeathsig(Signal::SIGKILL); // if the runtime dies, the kernel kills us
    // An ignored signal stays ignored across exec, and the Rust runtime ignores
    // SIGPIPE before `main`: set it back, or `yes | head -1` never ends inside.
    // SAFETY: the default action is no handler of ours.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    // The mask survives exec too: unblock Ctrl-C, which (4) blocked, and all else.
    let _ = SigSet::empty().thread_set_mask();
    // Files the runtime inherited stay outside: close all but stdin, stdout, stderr.
    // SAFETY: close_range(2) only closes descriptors; nothing of ours uses them.
    if unsafe { libc::syscall(libc::SYS_close_range, 3, u32::MAX, 0) } != 0 {
        die(
            125,
            &[b"close_range failed (Linux 5.9 or later needed): ", Errno::last().desc().as_bytes()],
        );
    }
}
// ANCHOR_END: start_clean

// ANCHOR: mount_proc
/// (5) A fresh proc on /proc. proc shows the PID namespace of whoever mounts
/// it, so the child mounts it, and `ps` sees only the container.
/// <https://man7.org/linux/man-pages/man5/proc.5.html>
pub fn mount_proc() -> nix::Result<()> {
    // ANCHOR: exercise_mount_proc (5) mount proc: mount(2) a "proc" filesystem on /proc
    mount(Some("proc"), "/proc", Some("proc"), MsFlags::empty(), None::<&str>)
    // ANCHOR_END: exercise_mount_proc
}
// ANCHOR_END: mount_proc

// ANCHOR: exec
/// (6) Become the command. execvp(3) returns only if it failed. We call libc
/// because nix's wrapper allocates the pointer array, and the child does not
/// allocate (see (4)): ours was built before the fork.
/// <https://man7.org/linux/man-pages/man3/exec.3.html>
pub fn exec(argv: &[*const libc::c_char]) -> Errno {
    // ANCHOR: exercise_exec (6) become the command: execvp(3), return Errno::last()
    // SAFETY: argv is a NULL-terminated array of pointers to live C strings.
    unsafe { libc::execvp(argv[0], argv.as_ptr()) };
    Errno::last()
    // ANCHOR_END: exercise_exec
}
// ANCHOR_END: exec

/// When (6) failed: 127 if the command does not exist, 126 if it cannot be
/// run, as chroot(1) and the shell report them.
pub fn exec_failed(command: &CStr, err: Errno) -> ! {
    let code = if err == Errno::ENOENT { 127 } else { 126 };
    let why = err.desc().as_bytes();
    die(code, &[b"failed to run ", command.to_bytes(), b" in the container: ", why])
}

// ANCHOR: wait
/// The parent waits, and the container's status becomes ours: exit code N
/// stays N; death by signal N becomes 128+N, as a shell reports it.
/// <https://man7.org/linux/man-pages/man2/waitpid.2.html>
pub fn wait_for(child: Pid) -> Result<ExitCode> {
    match waitpid(child, None).context("failed to wait for the container")? {
        WaitStatus::Exited(_, code) => Ok(ExitCode::from(code as u8)),
        WaitStatus::Signaled(_, signal, _) => Ok(ExitCode::from(128 + signal as u8)),
        status => bail!("unexpected wait status {status:?}"),
    }
}
// ANCHOR_END: wait

/// Writes `step04-full-demo: MESSAGE` (or a later step's name) to stderr. If
/// stderr is a closed pipe, the message is lost, but not our exit status
/// (eprintln! would panic).
pub fn report(message: impl std::fmt::Display) {
    let name = program_name().to_string_lossy();
    let _ = writeln!(std::io::stderr(), "{name}: {message}");
}

/// Report a failure in the child without allocating, then exit at once.
pub fn die(code: i32, message: &[&[u8]]) -> ! {
    // start_clean set SIGPIPE back to its default: ignore it again, so that a
    // closed stderr loses the message, not our exit status.
    // SAFETY: ignoring a signal installs no handler.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    let prefix: [&[u8]; 2] = [program_name().to_bytes(), b": "];
    for part in prefix.iter().chain(message).chain(&[&b"\n"[..]]) {
        let _ = nix::unistd::write(std::io::stderr(), part);
    }
    unsafe { libc::_exit(code) } // SAFETY: async-signal-safe; skips the parent's at-exit work
}

/// The name this program was started as, without its directory: usually
/// `step04-full-demo`, or a later step's that reuses this code. The C library
/// keeps it from argv[0] for its own messages (err(3)); reading it allocates
/// nothing, so the child may call this too.
pub fn program_name() -> &'static CStr {
    unsafe extern "C" {
        /// glibc and musl set it before `main`; it lives as long as the process.
        static program_invocation_short_name: *const libc::c_char;
    }
    // SAFETY: a NUL-terminated string that the C library set up and never frees.
    unsafe { CStr::from_ptr(program_invocation_short_name) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}

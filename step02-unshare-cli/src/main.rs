//! # Step 02: `unshare(1)`, rebuilt
//!
//! The article's second command is `sudo unshare --root rootfs --mount-proc
//! --pid --fork sh`. This program takes the same flags and does what
//! util-linux's unshare does with them: (1) pick the namespaces, (2)
//! unshare(2), (3) map our user to root, (4) set mount propagation, (5)
//! chroot, (6) fork and wait, (7) mount proc, (8) exec.
//!
//! One thing is in another order. unshare(1) forks right after unshare(2), and
//! its child does (3), (4) and (5); we do them before the fork, so that the
//! child has only (7) and (8) to do, as in the article's C program (step 04).
//! The command sees no difference: the maps of (3) belong to the user
//! namespace and the propagation of (4) to the mounts of the mount namespace,
//! which parent and child share, and the child inherits the root of (5). Only
//! the waiting parent differs: its own root is the new one too.

#[cfg(not(target_os = "linux"))]
compile_error!("containers are made of Linux system calls: use Linux or a Linux VM");

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io::Write;
use std::{os::unix::ffi::OsStrExt, path::Path, path::PathBuf, process::ExitCode};

use anyhow::{Context, Result, anyhow};
use clap::{Parser, ValueEnum};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigHandler, SigSet, Signal, raise, signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, chdir, chroot, fork, getegid, geteuid};
use nix::{errno::Errno, mount::MsFlags, mount::mount};

// ANCHOR: cli
/// Run a program in new namespaces, like unshare(1) from util-linux.
#[derive(Debug, Parser)]
#[command(name = "step02-unshare-cli", version)]
struct Cli {
    /// New mount namespace: mounts made inside stay inside.
    #[arg(short = 'm', long)]
    mount: bool,
    /// New UTS namespace: a hostname of its own.
    #[arg(short = 'u', long)]
    uts: bool,
    /// New IPC namespace: its own message queues and shared memory.
    #[arg(short = 'i', long)]
    ipc: bool,
    /// New network namespace: no network but a loopback device, which is down.
    #[arg(short = 'n', long)]
    net: bool,
    /// New PID namespace for our children: the first one is PID 1 (see --fork).
    #[arg(short = 'p', long)]
    pid: bool,
    /// New user namespace: user and group IDs of its own (see --map-root-user).
    #[arg(short = 'U', long)]
    user: bool,
    /// Run COMMAND as our child, so that it enters the new PID namespace.
    #[arg(short = 'f', long)]
    fork: bool,
    /// Mount a fresh proc on DIR (default /proc) before running COMMAND; implies --mount.
    #[arg(long, value_name = "DIR", num_args = 0..=1, require_equals = true)]
    #[arg(default_missing_value = "/proc")]
    mount_proc: Option<PathBuf>,
    /// Be root inside a new user namespace, and only there; implies --user.
    #[arg(short = 'r', long)]
    map_root_user: bool,
    /// Whether mounts propagate between the new mount namespace and the host's.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = Propagation::Private)]
    propagation: Propagation,
    /// Change the root directory to DIR before running COMMAND, like chroot.
    #[arg(short = 'R', long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// The command to run and its arguments, after the options (default: $SHELL, else /bin/sh).
    #[arg(trailing_var_arg = true)]
    command: Vec<OsString>,
}

/// Mount propagation: <https://man7.org/linux/man-pages/man7/mount_namespaces.7.html>
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Propagation {
    /// Nothing propagates either way.
    Private,
    /// Mounts propagate both ways.
    Shared,
    /// Mounts propagate from the host into the namespace only.
    Slave,
    /// Leave propagation as it is (on systemd hosts: shared).
    Unchanged,
}
// ANCHOR_END: cli

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage(err),
    };
    match run(&cli) {
        Ok(status) => status,
        Err(err) => {
            report(format_args!("{err:#}"));
            ExitCode::from(125) // as chroot(1): we failed before COMMAND ran
        }
    }
}

/// A usage error exits with 1, as unshare(1) does (clap's own is 2); --help
/// and --version print and exit with 0.
fn usage(err: clap::Error) -> ExitCode {
    let _ = err.print(); // a closed stderr must not change the status
    ExitCode::from(if err.use_stderr() { 1 } else { 0 })
}

/// Writes `step02-unshare-cli: MESSAGE` to stderr. If stderr is a closed pipe,
/// the message is lost, but not our exit status (eprintln! would panic).
fn report(message: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "step02-unshare-cli: {message}");
}

// ANCHOR: run
fn run(cli: &Cli) -> Result<ExitCode> {
    // What (7) and (8) need, made now: from the fork in (6) to the exec, the
    // child makes only async-signal-safe calls, and allocating is not one.
    let (file, args) = command_line(cli)?;
    let argv: Vec<_> = args.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
    let hint = hint_if_exec_fails(cli);
    let exec = Exec { file: &file, argv: &argv, hint: hint.as_bytes() };
    let proc_dir =
        cli.mount_proc.as_ref().map(|dir| CString::new(dir.as_os_str().as_bytes())).transpose()?;
    let (uid, gid) = (geteuid().as_raw(), getegid().as_raw()); // who we are before (3)

    let flags = namespaces(cli);
    new_namespaces(flags)?;
    if cli.map_root_user {
        map_root_user(uid, gid)?;
    }
    if flags.contains(CloneFlags::CLONE_NEWNS) {
        let proc_on_host_tree = if cli.root.is_none() { cli.mount_proc.as_ref() } else { None };
        set_propagation(cli.propagation, proc_on_host_tree)?;
    }
    if let Some(root) = &cli.root {
        change_root(root)?;
    }
    if cli.fork {
        return fork_and_wait(&exec, proc_dir.as_deref());
    }
    enter(&exec, proc_dir.as_deref())
}
// ANCHOR_END: run

/// COMMAND, made ready for execvp(3) before the fork.
struct Exec<'a> {
    /// The program to run.
    file: &'a CStr,
    /// Its arguments, argv[0] first, then a NULL pointer.
    argv: &'a [*const libc::c_char],
    /// What to say after the error if it cannot be run: the likely mistake.
    hint: &'a [u8],
}

/// The file to run and its arguments. Without COMMAND: $SHELL (else /bin/sh)
/// as a login shell, argv[0] `-sh`, as unshare(1) starts it.
fn command_line(cli: &Cli) -> Result<(CString, Vec<CString>)> {
    let c_string = |word: &OsStr| CString::new(word.as_bytes());
    if let Some(first) = cli.command.first() {
        let args = cli.command.iter().map(|word| c_string(word)).collect::<Result<_, _>>()?;
        return Ok((c_string(first)?, args));
    }
    let shell = shell();
    let mut arg0 = OsString::from("-");
    arg0.push(Path::new(&shell).file_name().unwrap_or(&shell));
    Ok((c_string(&shell)?, vec![c_string(&arg0)?]))
}

/// The shell to run when no COMMAND is given.
fn shell() -> OsString {
    std::env::var_os("SHELL").filter(|shell| !shell.is_empty()).unwrap_or_else(|| "/bin/sh".into())
}

/// If exec fails, what the learner most likely meant, after a newline.
fn hint_if_exec_fails(cli: &Cli) -> String {
    let place = if cli.root.is_some() { "in the new root" } else { "here" };
    match cli.command.first().map(Path::new) {
        None => format!(
            "\nhint: with no COMMAND, step02-unshare-cli runs $SHELL, here {}.\n\
             Name a command that exists {place} instead, e.g. /bin/sh",
            shell().display()
        ),
        Some(word) if cli.root.is_none() && word.is_dir() => format!(
            "\nhint: {0} is a directory; to make it the root directory, give it with --root:\n\
             step02-unshare-cli --root {0} --mount-proc --pid --fork /bin/sh",
            word.display()
        ),
        Some(_) => String::new(),
    }
}

// ANCHOR: namespaces
/// (1) One CLONE_NEW* flag per namespace asked for. --mount-proc needs a mount
/// namespace of its own, and --map-root-user a user namespace.
/// <https://man7.org/linux/man-pages/man7/namespaces.7.html>
fn namespaces(cli: &Cli) -> CloneFlags {
    // ANCHOR: exercise_namespaces (1) pick the namespaces: a CLONE_NEW* flag each, namespaces(7)
    let mut flags = CloneFlags::empty();
    for (wanted, flag) in [
        (cli.mount || cli.mount_proc.is_some(), CloneFlags::CLONE_NEWNS),
        (cli.uts, CloneFlags::CLONE_NEWUTS),
        (cli.ipc, CloneFlags::CLONE_NEWIPC),
        (cli.net, CloneFlags::CLONE_NEWNET),
        (cli.pid, CloneFlags::CLONE_NEWPID),
        (cli.user || cli.map_root_user, CloneFlags::CLONE_NEWUSER),
    ] {
        flags.set(flag, wanted);
    }
    flags
    // ANCHOR_END: exercise_namespaces
}
// ANCHOR_END: namespaces

// ANCHOR: unshare
/// (2) Leave the namespaces in `flags` for new ones: at once for all but the
/// PID namespace, which only the children we create from now on will be in.
/// <https://man7.org/linux/man-pages/man2/unshare.2.html>
fn new_namespaces(flags: CloneFlags) -> Result<()> {
    // ANCHOR: exercise_unshare (2) enter new namespaces: unshare(2) with those flags
    unshare(flags).map_err(|err| match err {
        Errno::EPERM => anyhow!(
            "unshare: {err}\nhint: this needs CAP_SYS_ADMIN: \
             run with sudo, or add --map-root-user (see `cargo xtask doctor`)"
        ),
        _ => anyhow!("unshare failed: {err}"),
    })
    // ANCHOR_END: exercise_unshare
}
// ANCHOR_END: unshare

// ANCHOR: map_root_user
/// (3) In a new user namespace nobody is mapped yet. Map our own uid and gid
/// to 0 there, so the command is root inside and still us outside. The kernel
/// wants setgroups denied before an unprivileged process writes gid_map.
/// <https://man7.org/linux/man-pages/man7/user_namespaces.7.html>
fn map_root_user(uid: u32, gid: u32) -> Result<()> {
    // ANCHOR: exercise_map_root_user (3) map our user to root: see user_namespaces(7)
    for (file, line) in [
        ("setgroups", "deny".to_string()),
        ("uid_map", format!("0 {uid} 1")),
        ("gid_map", format!("0 {gid} 1")),
    ] {
        std::fs::write(format!("/proc/self/{file}"), line)
            .with_context(|| format!("cannot write /proc/self/{file}"))?;
    }
    Ok(())
    // ANCHOR_END: exercise_map_root_user
}
// ANCHOR_END: map_root_user

// ANCHOR: propagation
/// (4) Set the propagation of every mount, recursively. The default, private,
/// is why a proc mounted inside does not appear on the host. Without a new
/// root, a proc mount at `proc_dir` is made private first, as unshare(1) does.
/// <https://man7.org/linux/man-pages/man7/mount_namespaces.7.html>
fn set_propagation(mode: Propagation, proc_dir: Option<&PathBuf>) -> Result<()> {
    // ANCHOR: exercise_propagation (4) set the propagation: mount(2) "/" with MS_REC
    let flags = match mode {
        Propagation::Private => MsFlags::MS_PRIVATE,
        Propagation::Shared => MsFlags::MS_SHARED,
        Propagation::Slave => MsFlags::MS_SLAVE,
        Propagation::Unchanged => return Ok(()),
    };
    mount(Some("none"), "/", None::<&str>, flags | MsFlags::MS_REC, None::<&str>)
        .context("cannot change / propagation")?;
    match proc_dir {
        Some(dir) if mode != Propagation::Private => {
            let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
            match mount(Some("none"), dir, None::<&str>, private, None::<&str>) {
                Ok(()) | Err(Errno::EINVAL) => Ok(()), // EINVAL: nothing mounted there yet
                Err(err) => Err(err).context("cannot make the proc mount point private"),
            }
        }
        _ => Ok(()),
    }
    // ANCHOR_END: exercise_propagation
}
// ANCHOR_END: propagation

// ANCHOR: chroot
/// (5) DIR becomes `/`, and we step into it, as chroot(1) does.
/// <https://man7.org/linux/man-pages/man2/chroot.2.html>
fn change_root(root: &std::path::Path) -> Result<()> {
    // ANCHOR: exercise_chroot (5) change the root: chroot(2) into DIR, then chdir("/")
    chroot(root)
        .map_err(|err| match err {
            Errno::ENOENT => anyhow!("{err}\nhint: `cargo xtask rootfs` puts a rootfs in ./rootfs"),
            Errno::EPERM => anyhow!(
                "{err}\nhint: this needs CAP_SYS_CHROOT: run with sudo, or add \
                 --map-root-user (see `cargo xtask doctor`)"
            ),
            _ => err.into(),
        })
        .with_context(|| format!("cannot change root directory to {}", root.display()))?;
    chdir("/").context("cannot chdir into the new root")
    // ANCHOR_END: exercise_chroot
}
// ANCHOR_END: chroot

// ANCHOR: fork
/// (6) With --fork, the child goes on to (7) and (8) while we wait. We block
/// SIGINT and SIGTERM, as unshare(1) does (Ctrl-C reaches the child from the
/// terminal anyway), and end the way the child ended: with its exit code, or
/// killed by the same signal.
///
/// fork copies all our memory but only the thread that calls it. In a program
/// with threads, a lock that another thread held at that moment (malloc's,
/// say) stays locked in the child for ever: so until it execs, the child makes
/// only async-signal-safe calls (signal-safety(7)), and does not allocate. We
/// have one thread, but keep the rule, as std::process::Command does.
/// <https://man7.org/linux/man-pages/man2/fork.2.html>
fn fork_and_wait(exec: &Exec, proc_dir: Option<&CStr>) -> Result<ExitCode> {
    // ANCHOR: exercise_fork (6) fork and wait: fork(2), then waitpid(2) in the parent
    SigSet::from_iter([Signal::SIGINT, Signal::SIGTERM]).thread_block()?;
    // SAFETY: we are single-threaded, and the child only makes async-signal-safe calls.
    let child = match unsafe { fork() }.context("fork failed")? {
        ForkResult::Child => enter(exec, proc_dir), // which unblocks them
        ForkResult::Parent { child } => child,
    };
    match waitpid(child, None).context("waitpid failed")? {
        WaitStatus::Exited(_, code) => Ok(ExitCode::from(code as u8)),
        WaitStatus::Signaled(_, sig, _) => {
            // SAFETY: restoring the default action installs no handler.
            let _ = unsafe { signal(sig, SigHandler::SigDfl) };
            let _ = SigSet::from_iter([sig]).thread_unblock();
            let _ = raise(sig);
            Ok(ExitCode::from(128 + sig as u8)) // only if the signal did not end us
        }
        status => Err(anyhow!("unexpected wait status {status:?}")),
    }
    // ANCHOR_END: exercise_fork
}
// ANCHOR_END: fork

// ANCHOR: enter
/// (7) Mount a fresh proc (from inside the new PID namespace, when we forked),
/// then (8) become the command. Async-signal-safe only: no allocation (see (6)).
/// <https://man7.org/linux/man-pages/man3/exec.3.html>
fn enter(exec: &Exec, proc_dir: Option<&CStr>) -> ! {
    reset_signals();
    // ANCHOR: mount_proc
    // ANCHOR: exercise_mount_proc (7) mount a fresh proc: mount(2) "proc" on proc_dir
    if let Some(dir) = proc_dir {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
        if let Err(err) = mount(Some("proc"), dir, Some("proc"), flags, None::<&str>) {
            die(125, &[b"mount ", dir.to_bytes(), b" failed: ", err.desc().as_bytes()]);
        }
    }
    // ANCHOR_END: exercise_mount_proc
    // ANCHOR_END: mount_proc
    // ANCHOR: exec
    // ANCHOR: exercise_exec (8) become the command: execvp(3), else exec_failed()
    // SAFETY: argv is a NULL-terminated array of pointers to live C strings.
    unsafe { libc::execvp(exec.file.as_ptr(), exec.argv.as_ptr()) };
    exec_failed(exec, Errno::last())
    // ANCHOR_END: exercise_exec
    // ANCHOR_END: exec
}
// ANCHOR_END: enter

/// When (8) failed: 127 if the command does not exist, 126 if it cannot be
/// run, as unshare(1); then the hint made before the fork, if any.
fn exec_failed(exec: &Exec, err: Errno) -> ! {
    let code = if err == Errno::ENOENT { 127 } else { 126 };
    let why = err.desc().as_bytes();
    die(code, &[b"failed to execute ", exec.file.to_bytes(), b": ", why, exec.hint])
}

// ANCHOR: reset_signals
/// The command inherits our signal mask and every signal we ignore, and the
/// Rust runtime ignores SIGPIPE before `main`: left so, `yes | head -1` would
/// never end. So SIGPIPE goes back to its default, and nothing stays blocked
/// (with --fork, we blocked Ctrl-C), as std::process::Command does.
fn reset_signals() {
    // SAFETY: the default action is no handler of ours.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    let _ = SigSet::empty().thread_set_mask();
}
// ANCHOR_END: reset_signals

/// Report a failure without allocating, then exit at once.
fn die(code: i32, message: &[&[u8]]) -> ! {
    // reset_signals may have set SIGPIPE back to its default: ignore it again, so
    // that a closed stderr loses the message, not our exit status.
    // SAFETY: ignoring a signal installs no handler.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    for part in [&b"step02-unshare-cli: "[..]].iter().chain(message).chain(&[&b"\n"[..]]) {
        let _ = nix::unistd::write(std::io::stderr(), part);
    }
    unsafe { libc::_exit(code) } // SAFETY: async-signal-safe; skips the parent's at-exit work
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}

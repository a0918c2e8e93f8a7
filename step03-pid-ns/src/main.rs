//! # Step 03: a PID namespace, in code
//!
//! `unshare --pid --fork --mount-proc` as a program, on the host's own files:
//! no chroot here, because hiding processes and hiding files are separate.
//! (1) new PID and mount namespaces, (2) make all mounts private, (3) fork: the
//! child is PID 1, (4) the child mounts a fresh /proc in its own mount
//! namespace (the host's /proc is untouched), (5) the child becomes the command.
//! `--no-fork` skips (3) and (4) to show why `unshare --pid` needs `--fork`.

#[cfg(not(target_os = "linux"))]
compile_error!("containers are made of Linux system calls: use Linux or a Linux VM");

use std::ffi::{CStr, CString};
use std::io::Write;
use std::{os::unix::ffi::OsStrExt, path::Path, process::ExitCode};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigHandler, SigSet, Signal, signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid};
use nix::{errno::Errno, mount::MsFlags, mount::mount};

/// Run COMMAND as PID 1 of a new PID namespace, with a /proc that shows only it.
#[derive(Debug, Parser)]
#[command(name = "step03-pid-ns", version)]
struct Cli {
    /// Skip the fork, to see the classic mistake: COMMAND keeps its host PID,
    /// and once its first child exits, every fork fails with ENOMEM.
    #[arg(long)]
    no_fork: bool,
    /// The command to run and its arguments, after the options.
    #[arg(default_value = "/bin/sh", trailing_var_arg = true)]
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
fn usage(err: clap::Error) -> ExitCode {
    let _ = err.print(); // a closed stderr must not change the status
    ExitCode::from(if err.use_stderr() { 125 } else { 0 })
}

/// Writes `step03-pid-ns: MESSAGE` to stderr. If stderr is a closed pipe, the
/// message is lost, but not our exit status (eprintln! would panic).
fn report(message: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "step03-pid-ns: {message}");
}

// ANCHOR: run
fn run(cli: &Cli) -> Result<ExitCode> {
    // What the child needs, made now: it does not allocate (see (3)).
    let command: Vec<CString> =
        cli.command.iter().map(|arg| CString::new(arg.as_bytes())).collect::<Result<_, _>>()?;
    let argv: Vec<_> = command.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
    let hint = hint_if_exec_fails(&cli.command[0]);
    new_namespaces()?;
    make_mounts_private()?;
    if cli.no_fork {
        explain_no_fork(&command[0]);
        // We are not PID 1, and neither will the command be.
        exec_failed(&command[0], exec(&argv), hint.as_bytes());
    }
    fork_container(&argv, hint.as_bytes())
}
// ANCHOR_END: run

/// If exec fails on a directory, the learner most likely gave a rootfs, as
/// step04 takes one: say so, after a newline.
fn hint_if_exec_fails(word: &std::ffi::OsStr) -> String {
    if !Path::new(word).is_dir() {
        return String::new();
    }
    format!(
        "\nhint: {0} is a directory, and step03 takes no rootfs: it runs COMMAND on the host's \
         files.\nTo run a command in {0}, use step04: step04-full-demo {0} /bin/ps",
        word.display()
    )
}

// ANCHOR: unshare
/// (1) New PID and mount namespaces. We enter the mount namespace at once; the
/// PID namespace is only for the children we create from now on.
/// <https://man7.org/linux/man-pages/man7/pid_namespaces.7.html>
fn new_namespaces() -> Result<()> {
    // ANCHOR: exercise_unshare (1) new PID and mount namespaces: unshare(2)
    unshare(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS).map_err(|err| match err {
        Errno::EPERM => anyhow!(
            "unshare: {err}\nhint: this needs CAP_SYS_ADMIN: \
             run with sudo (or see `cargo xtask doctor`)"
        ),
        _ => anyhow!("failed to unshare the PID and mount namespaces: {err}"),
    })
    // ANCHOR_END: exercise_unshare
}
// ANCHOR_END: unshare

// ANCHOR: private
/// (2) Make every mount private, so the proc we mount in (4) stays in our
/// mount namespace instead of propagating to the host's /proc.
/// <https://man7.org/linux/man-pages/man7/mount_namespaces.7.html>
fn make_mounts_private() -> Result<()> {
    // ANCHOR: exercise_private (2) make every mount private: mount(2) "/" with MS_REC | MS_PRIVATE
    let flags = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    mount(Some("none"), "/", None::<&str>, flags, None::<&str>).context("failed to make / private")
    // ANCHOR_END: exercise_private
}
// ANCHOR_END: private

// ANCHOR: fork
/// (3) Fork. The child is the first process in the new PID namespace: its PID 1.
///
/// fork copies all our memory but only the thread that calls it. In a program
/// with threads, a lock that another thread held at that moment (malloc's,
/// say) stays locked in the child for ever: so until it execs, the child makes
/// only async-signal-safe calls (signal-safety(7)), and does not allocate. We
/// have one thread, but keep the rule, as std::process::Command does.
/// <https://man7.org/linux/man-pages/man2/fork.2.html>
fn fork_container(argv: &[*const libc::c_char], hint: &[u8]) -> Result<ExitCode> {
    // Ctrl-C goes to every process on the terminal. The shell handles it; we must
    // not die of it and leave the shell behind, so we block it while we wait.
    SigSet::from_iter([Signal::SIGINT, Signal::SIGQUIT]).thread_block()?;
    // ANCHOR: exercise_fork (3) fork: fork(2); the child runs container(argv, hint)
    // SAFETY: we are single-threaded, and the child only makes async-signal-safe calls.
    match unsafe { fork() }.context("failed to fork")? {
        ForkResult::Child => container(argv, hint),
        ForkResult::Parent { child } => wait_for(child),
    }
    // ANCHOR_END: exercise_fork
}
// ANCHOR_END: fork

// ANCHOR: container
/// (4) In the child: a fresh proc on /proc. proc shows the PID namespace of
/// whoever mounts it, here PID 1's. From here on, only async-signal-safe calls,
/// no allocation: see (3).
/// <https://man7.org/linux/man-pages/man5/proc.5.html>
fn container(argv: &[*const libc::c_char], hint: &[u8]) -> ! {
    // ANCHOR: exercise_container (4) mount a fresh proc: mount(2) "proc" on /proc
    if let Err(err) = mount(Some("proc"), "/proc", Some("proc"), MsFlags::empty(), None::<&str>) {
        die(125, &[b"failed to mount proc on /proc: ", err.desc().as_bytes()]);
    }
    // ANCHOR_END: exercise_container
    // SAFETY: argv[0] points into a live CString.
    exec_failed(unsafe { CStr::from_ptr(argv[0]) }, exec(argv), hint)
}
// ANCHOR_END: container

// ANCHOR: exec
/// (5) Become the command; execvp(3) returns only if it failed.
/// <https://man7.org/linux/man-pages/man3/exec.3.html>
fn exec(argv: &[*const libc::c_char]) -> Errno {
    reset_signals();
    // ANCHOR: exercise_exec (5) become the command: execvp(3), return Errno::last()
    // SAFETY: argv is a NULL-terminated array of pointers to live C strings.
    unsafe { libc::execvp(argv[0], argv.as_ptr()) };
    Errno::last()
    // ANCHOR_END: exercise_exec
}
// ANCHOR_END: exec

/// When (5) failed: 127 if the command does not exist, 126 if it cannot be
/// run, as chroot(1); then the hint made before the fork, if any.
fn exec_failed(command: &CStr, err: Errno, hint: &[u8]) -> ! {
    let code = if err == Errno::ENOENT { 127 } else { 126 };
    let why = err.desc().as_bytes();
    die(code, &[b"failed to run ", command.to_bytes(), b": ", why, hint])
}

// ANCHOR: reset_signals
/// The command inherits our signal mask and every signal we ignore, and the
/// Rust runtime ignores SIGPIPE before `main`: left so, `yes | head -1` would
/// never end. So SIGPIPE goes back to its default, and nothing stays blocked
/// (the parent blocked Ctrl-C before the fork), as std::process::Command does.
fn reset_signals() {
    // SAFETY: the default action is no handler of ours.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    let _ = SigSet::empty().thread_set_mask();
}
// ANCHOR_END: reset_signals

// ANCHOR: no_fork
/// What `--no-fork` is about to show, said before the command replaces us.
fn explain_no_fork(command: &CStr) {
    let (cmd, pid) = (command.to_string_lossy(), getpid());
    // Ignore a failed write: on a closed stderr, the command must run all the same.
    let _ = writeln!(
        std::io::stderr(),
        "step03-pid-ns: --no-fork: {cmd} runs as PID {pid}, in the host's PID namespace: \
         unshare(CLONE_NEWPID) moves only the children created after it.\n\
         step03-pid-ns: {cmd}'s first child becomes PID 1 of the new namespace; once it exits, \
         the namespace is dead and every later fork fails with ENOMEM \
         (\"Cannot allocate memory\").\n\
         step03-pid-ns: /proc is still the host's: proc shows the PID namespace of whoever \
         mounted it. Without --no-fork we fork first, as `unshare --fork` does."
    );
}
// ANCHOR_END: no_fork

// ANCHOR: wait
/// The parent waits, and the container's status becomes ours (128+N for signal N).
fn wait_for(child: Pid) -> Result<ExitCode> {
    match waitpid(child, None).context("failed to wait for the container")? {
        WaitStatus::Exited(_, code) => Ok(ExitCode::from(code as u8)),
        WaitStatus::Signaled(_, signal, _) => Ok(ExitCode::from(128 + signal as u8)),
        status => bail!("unexpected wait status {status:?}"),
    }
}
// ANCHOR_END: wait

/// Report a failure in the child without allocating, then exit at once.
fn die(code: i32, message: &[&[u8]]) -> ! {
    // reset_signals may have set SIGPIPE back to its default: ignore it again, so
    // that a closed stderr loses the message, not our exit status.
    // SAFETY: ignoring a signal installs no handler.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    for part in [&b"step03-pid-ns: "[..]].iter().chain(message).chain(&[&b"\n"[..]]) {
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

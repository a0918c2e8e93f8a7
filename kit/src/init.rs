//! # A real PID 1: the init that step06 adds
//!
//! Up to step05 the command *is* the container's PID 1, and PID 1 has two
//! duties that ordinary programs never expect to have:
//!
//! - **It reaps orphans.** A process whose parent exits is re-parented to
//!   PID 1 of its PID namespace, and when it exits, only PID 1 can collect its
//!   status. A `sleep` or a web server never calls wait(2) for children it does
//!   not know, so the dead orphans stay zombies (`ps` shows `Z`).
//! - **It gets no signal it has no handler for.** The kernel protects a
//!   namespace's init from the default actions of signals: `kill -TERM` to a
//!   container's PID 1 is dropped unless PID 1 set up a handler for SIGTERM
//!   (pid_namespaces(7)). Most programs rely on the default action.
//!
//! So step06 keeps the runtime's child as a tiny init, written here: it (1) is
//! the runtime's child, which starts as step05's does (clean, its own proc,
//! the host's tree detached), then (2) blocks the signals it must take, (3)
//! forks the command, which starts as clean as under step05, and loops: (4) it
//! passes SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 on to the
//! command, and (5) it reaps every child that ends and, when the command ends,
//! exits with its status. It never changes its credentials and holds
//! PR_SET_PDEATHSIG, so the container always dies with the runtime: when the
//! init dies, the kernel kills its whole PID namespace.
//!
//! What it calls of step04's (`crate::article`): `start_clean`, `exec`,
//! `exec_failed`, `die`; and of step05's (`crate::pivot_root`): the fork,
//! `fork_and_wait`, and the child's start, `start_sealed`.

use std::ffi::{CStr, CString};
use std::process::ExitCode;

use anyhow::Result;
use nix::sys::signal::{SigHandler, SigSet, Signal, kill, signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, setpgid};

use crate::article::{die, exec, exec_failed, start_clean};
use crate::pivot_root::{fork_and_wait, start_sealed};

/// The signals the init passes on to the command: those that ask a program to
/// stop (TERM, INT, QUIT, HUP) or to do something of its own (USR1, USR2).
/// `docker stop` sends SIGTERM to PID 1; `docker kill -s HUP` any of them.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

// ANCHOR: fork_init
/// (1) The runtime forks as step05's does (`fork_and_wait`: Ctrl-C blocked,
/// fork, wait, the child's status becomes ours), and its child, PID 1 of the
/// new PID namespace, becomes the init instead of the command.
pub fn fork_init(command: &[CString]) -> Result<ExitCode> {
    // ANCHOR: exercise_fork_init (1) the init is the runtime's child: fork(2) with step05's fork_and_wait(command, init)
    fork_and_wait(command, init)
    // ANCHOR_END: exercise_fork_init
}
// ANCHOR_END: fork_init

// ANCHOR: init
/// The init, from the fork to its end. It starts as step05's child does;
/// then, instead of becoming the command, it starts it and looks after it.
/// Async-signal-safe calls only, as in step04's child: the init is a copy of
/// the runtime that never execs.
pub fn init(argv: &[*const libc::c_char]) -> ! {
    start_sealed(); // as step05's child: start clean (PR_SET_PDEATHSIG), proc, step05's (7)
    block_signals(); // (2)
    let command = spawn_command(argv); // (3)
    loop {
        match waited_for().wait() {
            Ok(Signal::SIGCHLD) => {
                // (5) a child ended: reap it, and every other that did
                if let Some(status) = reap(command) {
                    // SAFETY: async-signal-safe; the kernel then kills the rest of the namespace.
                    unsafe { libc::_exit(status) }
                }
            }
            Ok(signal) => forward(signal, command), // (4)
            Err(_) => {}                            // interrupted: wait again
        }
    }
}
// ANCHOR_END: init

/// The signals the init's loop waits for: those it forwards, and SIGCHLD,
/// which says that a child has ended.
pub fn waited_for() -> SigSet {
    let mut set = SigSet::from_iter(FORWARDED);
    set.add(Signal::SIGCHLD);
    set
}

// ANCHOR: block_signals
/// (2) PID 1 gets only the signals it has a handler for; every other is
/// dropped when it is sent. A *blocked* signal is never dropped, whatever its
/// handler: the kernel keeps it pending, and sigwait(3) takes it. So the init
/// blocks what it waits for, and needs no handler at all (no code that runs
/// at any moment, in the middle of another call).
/// <https://man7.org/linux/man-pages/man7/pid_namespaces.7.html>
pub fn block_signals() {
    // A runtime started with SIGCHLD ignored would pass that on, and the kernel
    // would reap our children itself: the command's status would be lost.
    // SAFETY: the default action is no handler of ours.
    let _ = unsafe { signal(Signal::SIGCHLD, SigHandler::SigDfl) };
    // ANCHOR: exercise_block_signals (2) block the signals PID 1 must take: sigprocmask(2) with waited_for(), and SIGTTIN, SIGTTOU
    let mut blocked = waited_for();
    // The init leaves the terminal's job in (3): if it ever wrote to the
    // terminal from there, the kernel would send it SIGTTOU, dropped for PID 1
    // and sent again at once, forever. Blocked, the write just happens.
    blocked.add(Signal::SIGTTIN);
    blocked.add(Signal::SIGTTOU);
    if let Err(err) = blocked.thread_block() {
        die(125, &[b"failed to block the init's signals: ", err.desc().as_bytes()]);
    }
    // ANCHOR_END: exercise_block_signals
}
// ANCHOR_END: block_signals

// ANCHOR: spawn_command
/// (3) The command is the init's child, PID 2, and starts as clean as step05's
/// PID 1: PR_SET_PDEATHSIG, no signal blocked (not the init's, nor the
/// runtime's Ctrl-C), no leaked files. Then the init leaves the terminal's
/// process group, so that Ctrl-C, which the terminal sends to every process
/// of its foreground job, reaches the command once, directly, and not a
/// second time through the init.
/// <https://man7.org/linux/man-pages/man2/setpgid.2.html>
pub fn spawn_command(argv: &[*const libc::c_char]) -> Pid {
    // ANCHOR: exercise_spawn_command (3) fork the command: fork(2); the child starts clean and execs, the init leaves the job with setpgid(0, 0)
    // SAFETY: the init is single-threaded, and the child only makes async-signal-safe calls.
    let command = match unsafe { fork() } {
        Ok(ForkResult::Child) => run_command(argv),
        Ok(ForkResult::Parent { child }) => child,
        Err(err) => die(125, &[b"failed to fork the command: ", err.desc().as_bytes()]),
    };
    // The command stays in the terminal's job; the init takes a group of its own.
    let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
    command
    // ANCHOR_END: exercise_spawn_command
}
// ANCHOR_END: spawn_command

// ANCHOR: run_command
/// A command's start in the container, after the fork: as clean as step04's
/// PID 1 (step04's `start_clean`: PR_SET_PDEATHSIG, SIGPIPE at its default,
/// no signal blocked, none of our open files), then step04's (6), exec.
pub fn run_command(argv: &[*const libc::c_char]) -> ! {
    start_clean();
    let err = exec(argv);
    // SAFETY: argv[0] points into a live CString.
    exec_failed(unsafe { CStr::from_ptr(argv[0]) }, err)
}
// ANCHOR_END: run_command

// ANCHOR: forward
/// (4) A signal sent to the container's PID 1 is meant for the container: the
/// init sends it on to the command, its child, by PID, as tini does.
/// <https://man7.org/linux/man-pages/man2/kill.2.html>
pub fn forward(signal: Signal, command: Pid) {
    // ANCHOR: exercise_forward (4) forward signals: kill(2) the command with the signal
    // ESRCH: the command has just ended; its SIGCHLD is on its way.
    let _ = kill(command, signal);
    // ANCHOR_END: exercise_forward
}
// ANCHOR_END: forward

// ANCHOR: reap
/// (5) Collect every child that has ended: the command, and any orphan the
/// kernel re-parented to us. waitpid(2) on -1 takes any child; WNOHANG
/// returns at once when none is left to collect (one SIGCHLD may stand for
/// several ends). Returns the command's status, once it has ended: its exit
/// code, or 128+N when signal N killed it, as a shell and step04 report it.
/// <https://man7.org/linux/man-pages/man2/waitpid.2.html>
pub fn reap(command: Pid) -> Option<i32> {
    // ANCHOR: exercise_reap (5) reap every zombie, and pass the status on: waitpid(2) on any child with WNOHANG, until none is left
    let mut status = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == command => status = Some(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == command => {
                status = Some(128 + signal as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return status, // Err: ECHILD, no child at all
            Ok(_) => {} // an orphan, reaped: no zombie is left of it
        }
    }
    // ANCHOR_END: exercise_reap
}
// ANCHOR_END: reap

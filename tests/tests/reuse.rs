//! Later steps build on step04 without copying it: a library compiles
//! `step04-full-demo/src/main.rs` a second time, as a module, and calls its
//! functions in an order of its own. This file does the same, so that a change
//! to step04 that would break them (a function made private, a signature
//! changed) fails here, at compile time, and not in a later step.

#[allow(dead_code)] // step04's `main`, `Cli` and `run` are for its own binary
#[path = "../../step04-full-demo/src/main.rs"]
mod article;

use std::ffi::{CStr, CString};
use std::path::Path;
use std::process::ExitCode;

use nix::{errno::Errno, unistd::Pid};
use rstest::rstest;
use workshop_tests::{ROOTFS, Runner, Step, with_rootfs};

/// The functions later steps call, with the signatures they rely on: the
/// parent's (1) to (4), the child's pieces, and the helpers around them.
#[test]
fn step04_functions_are_there_for_later_steps() {
    type Argv<'a> = &'a [*const libc::c_char];
    let _: fn(&Path) -> anyhow::Result<()> = article::check_rootfs;
    let _: fn(&[std::ffi::OsString]) -> anyhow::Result<Vec<CString>> = article::c_strings;
    let _: fn() -> anyhow::Result<()> = article::new_namespaces;
    let _: fn() -> anyhow::Result<()> = article::make_mounts_private;
    let _: fn(&Path) -> anyhow::Result<()> = article::change_root;
    let _: fn(&[CString]) -> anyhow::Result<ExitCode> = article::fork_container;
    let _: fn(Argv) -> ! = article::container;
    let _: fn() = article::start_clean;
    let _: fn() -> nix::Result<()> = article::mount_proc;
    let _: fn(Argv) -> Errno = article::exec;
    let _: fn(&CStr, Errno) -> ! = article::exec_failed;
    let _: fn(Pid) -> anyhow::Result<ExitCode> = article::wait_for;
    let _: fn(i32, &[&[u8]]) -> ! = article::die;
    let _: fn() -> &'static CStr = article::program_name;
    let _: fn(clap::Error) -> ExitCode = article::usage;
    let _: fn(&'static str) = article::report;
}

/// Compiled into another program, step04's code names that program in its
/// messages, not step04: here the name of this test binary.
#[test]
fn step04_messages_name_the_program_that_runs() {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let name = exe.file_name().expect("a file name").to_string_lossy().into_owned();
    assert_eq!(
        article::program_name().to_string_lossy(),
        name,
        "step04's `program_name`, compiled into this test binary, should be this binary's \
         name (argv[0] without its directory), so that a later step reusing `die` says its \
         own name"
    );
}

/// step04 started under another name, as a later step that reuses its code:
/// the runtime's messages and the child's (written without allocating,
/// after the fork) both begin with that name.
#[rstest]
#[case::step04_parent(&["/no/such/rootfs"], "there is no rootfs at /no/such/rootfs", 125)]
#[case::step04_child(&[ROOTFS, "/no/such/command"], "failed to run /no/such/command", 127)]
fn step04_reused_says_its_own_name(
    #[case] args: &[&str],
    #[case] message: &str,
    #[case] code: i32,
) {
    let step = Step::Step04FullDemo;
    let output = Runner::step(step, with_rootfs(args)).arg0("step06-init").run();
    output.expect_no_panic().expect_code(code, "the same failure as under step04's own name");
    let expected = format!("step06-init: {message}");
    assert!(
        output.stderr.starts_with(&expected),
        "step04 started as `step06-init` should say so: its message should begin with \
         {expected:?}, the name the program was started as (the C library's \
         program_invocation_short_name), not a name written into step04's code. See `die` \
         and `program_name` in step04-full-demo/src/main.rs.\n{output}"
    );
}

/// A later step runs its command in a process that is not PID 1 (step04's
/// child always is, and PID 1 is immune to the kernel's SIGPIPE). There,
/// after `start_clean` set SIGPIPE back to its default, `die` with stderr a
/// pipe nobody reads must still exit with its status, not die of SIGPIPE.
#[test]
fn die_keeps_its_status_with_stderr_closed_after_start_clean() {
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};
    use std::os::fd::AsRawFd;
    let (reader, writer) = std::io::pipe().expect("make a pipe");
    drop(reader); // nobody reads it
    // SAFETY: the child makes only async-signal-safe calls (dup2, then step04's
    // start_clean and die, which are written for a child) before _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            unsafe { libc::dup2(writer.as_raw_fd(), 2) };
            article::start_clean();
            article::die(42, &[b"this message is lost"])
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).expect("wait for the child");
            assert_eq!(
                status,
                WaitStatus::Exited(child, 42),
                "step04's `die(42, …)`, after `start_clean` and with stderr a pipe nobody reads, \
                 should exit with 42; killed by SIGPIPE, it would lose the status. `die` should \
                 ignore SIGPIPE again before it writes. See step04-full-demo/src/main.rs."
            );
        }
    }
}

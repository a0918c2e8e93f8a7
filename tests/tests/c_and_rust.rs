//! The article's C program and its Rust port, where they differ on purpose.
//!
//! `step04-full-demo/container_demo.c` (built with `cc`, see
//! `workshop_tests::c_demo`) makes the same container as step04: the `ps`
//! transcripts show it (`transcripts::ps_inside_the_c_original`). step04 adds
//! four things, and each test here runs both programs to show one of them:
//!
//! - the exit status: the C program exits with 0 whatever its shell did;
//!   step04 exits with its container's status;
//! - PR_SET_PDEATHSIG: killed with SIGKILL, the C program leaves its container
//!   running; step04's dies with it;
//! - open files: the C program's open descriptors are open in its container;
//!   step04 closes all but 0, 1 and 2;
//! - SIGPIPE: the C program passes on the disposition it was started with;
//!   step04 (Rust ignores SIGPIPE in every program it starts) sets it back
//!   to the default before the exec, so the container starts as from a shell.
//!
//! Both get their shell's commands on stdin, the C program having no
//! arguments, so one test drives both the same way.

use nix::sys::signal::Signal;
use rstest::rstest;
use workshop_tests::{Output, Runner, Running, Step, c_demo, host};

/// The two programs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Program {
    /// The article's, in C.
    C,
    /// Its Rust port.
    Step04,
}

impl Program {
    /// A run of the program whose shell reads `script`.
    fn runner(self, script: &str) -> Runner {
        let runner = match self {
            Program::C => c_demo::runner(),
            Program::Step04 => Runner::in_container(Step::Step04FullDemo, &[]),
        };
        runner.stdin(format!("{script}\n"))
    }

    fn name(self) -> &'static str {
        match self {
            Program::C => "container_demo.c",
            Program::Step04 => "step04",
        }
    }
}

/// Where the book explains the differences.
fn chapter() -> String {
    format!("{}, \"What we add to the C program\"", Step::Step04FullDemo.chapter())
}

/// The shell exits with 42: the C program does not look at how its child
/// ended (`waitpid(child, NULL, 0)`) and returns 0; step04 hands 42 on.
#[rstest]
#[case::container_demo_c(Program::C, 0)]
#[case::step04_full_demo(Program::Step04, 42)]
fn exit_status(#[case] program: Program, #[case] expected: i32) {
    let output = program.runner("exit 42").run();
    output.expect_code(
        expected,
        &format!(
            "the container's shell exited with 42. The C program ignores its child's status and \
             returns 0; step04 makes it its own, so that scripts can tell. See {}.",
            chapter()
        ),
    );
}

/// The runtime is killed with SIGKILL while its container runs: the C
/// program's container carries on, orphaned; step04's dies with it.
#[rstest]
#[case::container_demo_c(Program::C, true)]
#[case::step04_full_demo(Program::Step04, false)]
fn killed_runtime(#[case] program: Program, #[case] container_survives: bool) {
    let mut running = program.runner("echo ready; sleep 30").spawn();
    running.wait_for_line("ready");
    let (running, init) = running.container_init(Step::Step04FullDemo);
    let runtime = running.pid();
    running.signal(Signal::SIGKILL);
    let runtime_gone = host::eventually(3.0, || !host::alive(runtime));
    // A second is plenty for the kernel to deliver a PDEATHSIG.
    let vanished = runtime_gone && host::eventually(1.0, || !host::alive(init));
    host::kill_all(&host::process_tree(init)); // ours, started by this run
    let output: Output = Running::allow_leftovers(running).wait();
    assert!(runtime_gone, "the runtime (host PID {runtime}) outlived SIGKILL\n{output}");
    assert_eq!(
        !vanished,
        container_survives,
        "{}: killed with SIGKILL, the runtime (host PID {runtime}) could not clean up. The C \
         program's container (PID 1: host PID {init}) should carry on, orphaned; step04's \
         should be killed by the kernel, as its child asked with prctl(PR_SET_PDEATHSIG). See \
         {}.\n{output}",
        program.name(),
        chapter()
    );
}

/// The runtime is started with /dev/null open on descriptor 9: it is open in
/// the C program's container (with whatever else the test process was given
/// without close-on-exec), and not in step04's.
#[rstest]
#[case::container_demo_c(Program::C, true)]
#[case::step04_full_demo(Program::Step04, false)]
fn inherited_descriptors(#[case] program: Program, #[case] leaks: bool) {
    let output = program.runner("ls /proc/1/fd").extra_fd(9).run();
    output.expect_success();
    let listing = output.lines();
    let leaked = listing.contains(&"9");
    let only_standard = listing == ["0", "1", "2"];
    assert!(
        if leaks { leaked } else { only_standard },
        "{}: `ls /proc/1/fd` lists the open descriptors of the container's PID 1. The runtime \
         was started with descriptor 9 open. A descriptor without close-on-exec survives fork \
         and exec: the C program lets it through (9 should be listed); step04 closes all but 0, \
         1 and 2 before the exec (only they should be listed). See {}.\n{output}",
        program.name(),
        chapter()
    );
}

/// What SIGPIPE does to a writer in the container: `yes` writes into `head
/// -n 1`, which exits after one line. Killed by SIGPIPE (the default), `yes`
/// ends with 141 (128 + 13); with SIGPIPE ignored, its write fails with EPIPE
/// instead, and it exits with 1.
///
/// The C program passes on what it was given: the default from a shell, or
/// SIGPIPE ignored from a parent that ignores it. step04 is a Rust program, and
/// Rust ignores SIGPIPE before `main`; an ignored signal stays ignored across
/// fork and exec, so step04 sets SIGPIPE back to the default in the child
/// before the exec, whatever it was given.
#[rstest]
#[case::container_demo_c(Program::C, false, 141)]
#[case::container_demo_c_sigpipe_ignored(Program::C, true, 1)]
#[case::step04_full_demo(Program::Step04, false, 141)]
#[case::step04_full_demo_sigpipe_ignored(Program::Step04, true, 141)]
fn sigpipe(#[case] program: Program, #[case] ignored: bool, #[case] expected: i32) {
    // The status goes to stderr: stdout is the pipe to `head`, gone by then.
    let script = "{ yes; echo \"yes exited with $?\" >&2; } | head -n 1";
    let mut runner = program.runner(script);
    if ignored {
        runner = runner.sigpipe_ignored();
    }
    let output = runner.run();
    output.expect_success();
    let status = output
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("yes exited with "))
        .and_then(|s| s.parse::<i32>().ok());
    assert_eq!(
        status,
        Some(expected),
        "{}, started with SIGPIPE {}: `yes | head -n 1` in the container should end `yes` with \
         {expected} ({}). A disposition set to ignore survives fork and exec: a runtime passes \
         on whatever it was started with, unless it resets it before the exec, as step04 does \
         (its child sets SIGPIPE back to SIG_DFL, because Rust ignores it in every program). \
         See {}.\n{output}",
        program.name(),
        if ignored { "ignored" } else { "at its default" },
        if expected == 141 { "killed by SIGPIPE: 128 + 13" } else { "EPIPE, with SIGPIPE ignored" },
        chapter()
    );
}

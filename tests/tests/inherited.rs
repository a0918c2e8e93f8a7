//! What the container inherits from the runtime across fork and exec, and
//! what a runtime must reset before its command runs.
//!
//! The Rust runtime sets SIGPIPE to "ignore" before `main`, and an ignored
//! signal stays ignored across fork and exec. A runtime that passes that on
//! breaks every pipeline in the container: `yes | head -1` never ends, since
//! `yes` gets EPIPE instead of dying of SIGPIPE. The steps reset SIGPIPE and
//! empty the signal mask between fork and exec, as `std::process::Command`
//! does (the open files are `lifecycle::no_runtime_descriptor_leaks_into_the_container`).

use nix::sys::signal::Signal;
use rstest::rstest;
use rstest_reuse::apply;
use workshop_tests::{ROOTFS, Runner, Step, Transcript, every_step, with_rootfs};

/// Stands for a `sleep` duration no other run uses, to find the process on the host.
const SECONDS: &str = "SECONDS";

/// SIGPIPE is signal 13: bit 12 of the SigIgn mask in /proc/PID/status.
const SIGPIPE_BIT: u64 = 1 << (libc::SIGPIPE - 1);

/// A pipeline whose writer only ends when SIGPIPE kills it: once `head` has
/// its line and exits, the next `echo` writes to a pipe nobody reads.
const PIPELINE: &str = "while :; do echo line; done | head -1";

/// A `SigIgn:` or `SigBlk:` mask of /proc/PID/status (hexadecimal).
fn signal_mask(status: &str, key: &str) -> u64 {
    let value = status.lines().find_map(|line| line.strip_prefix(key)).unwrap_or_else(|| {
        panic!("no {key} line in a /proc/PID/status:\n{status}");
    });
    u64::from_str_radix(value.trim(), 16)
        .unwrap_or_else(|err| panic!("{key} {value:?} is not a hexadecimal mask: {err}"))
}

/// The command a step execs starts with no signal blocked, and none ignored
/// but those the step was started with ignored: the step is started as
/// nohup(1) starts a command, SIGHUP ignored, and with SIGUSR1 blocked. The
/// host reads the command's /proc/PID/status: that works in step01 too, which
/// has no /proc inside. Each way a step reaches exec is a case.
#[rstest]
#[case::step01_chroot(Step::Step01Chroot, &[ROOTFS, "/bin/sleep", SECONDS])]
#[case::step02_unshare_cli(
    Step::Step02UnshareCli,
    &["--root", ROOTFS, "--mount-proc", "--pid", "--fork", "/bin/sleep", SECONDS]
)]
#[case::step02_unshare_cli_without_fork(
    Step::Step02UnshareCli,
    &["--root", ROOTFS, "/bin/sleep", SECONDS]
)]
#[case::step03_pid_ns(Step::Step03PidNs, &["/bin/sleep", SECONDS])]
#[case::step03_pid_ns_no_fork(Step::Step03PidNs, &["--no-fork", "/bin/sleep", SECONDS])]
#[case::step04_full_demo(Step::Step04FullDemo, &[ROOTFS, "/bin/sleep", SECONDS])]
#[case::step05_pivot_root(Step::Step05PivotRoot, &[ROOTFS, "/bin/sleep", SECONDS])]
#[case::step06_init(Step::Step06Init, &[ROOTFS, "/bin/sleep", SECONDS])]
#[case::step07_overlay(Step::Step07Overlay, &[ROOTFS, "/bin/sleep", SECONDS])]
#[case::step08_cgroups(Step::Step08Cgroups, &[ROOTFS, "/bin/sleep", SECONDS])]
fn signals_start_clean(#[case] step: Step, #[case] args: &[&str]) {
    // 7, this test process's PID, a case number: a duration no other run uses.
    static CASE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let case = CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10;
    let seconds = format!("7{:07}{case}", std::process::id());
    let args: Vec<String> =
        with_rootfs(args).into_iter().map(|a| a.replace(SECONDS, &seconds)).collect();
    let runner = Runner::step(step, args).with_signals(&[Signal::SIGHUP], &[Signal::SIGUSR1]);
    let mut running = runner.spawn();
    let command = running.wait_for_process(&format!("/bin/sleep {seconds}"));
    let status = std::fs::read_to_string(format!("/proc/{command}/status")).unwrap_or_default();
    workshop_tests::host::kill(command, Signal::SIGKILL); // seen: end it
    let output = running.wait();
    let (ignored, blocked) = (signal_mask(&status, "SigIgn:"), signal_mask(&status, "SigBlk:"));
    let (short, chapter) = (step.short(), step.chapter());
    let sighup = 1 << (Signal::SIGHUP as i32 - 1);
    assert!(
        ignored == sighup && blocked == 0,
        "{short}: the step was started as nohup(1) starts a command, with SIGHUP ignored (and \
         SIGUSR1 blocked). The command it execs, `/bin/sleep` (host PID {command}), should \
         start with SIGHUP still ignored, as the one wish of whoever started us, and no other \
         signal ignored or blocked: SigIgn {sighup:016x} and SigBlk 0000000000000000 in its \
         /proc/PID/status. It has SigIgn {ignored:016x} and SigBlk {blocked:016x}{}. Ignored \
         signals and the mask survive fork and exec, and the Rust runtime ignores SIGPIPE \
         before `main`: between fork and exec, set SIGPIPE back to SIG_DFL and empty the \
         mask, as std::process::Command does. See {chapter}, and step04's chapter, \"What a \
         process inherits\".\n{output}",
        if ignored & SIGPIPE_BIT != 0 { " (its 1000 is SIGPIPE, signal 13)" } else { "" },
    );
}

/// `while :; do echo line; done | head -1` prints one line and ends: the
/// loop's shell dies of SIGPIPE once `head` is gone. With SIGPIPE ignored it
/// would print "Broken pipe" errors for ever, and the harness would stop it
/// after its timeout and fail.
#[apply(every_step)]
fn a_pipeline_ends_when_its_reader_does(#[case] step: Step) {
    let output = Runner::in_container(step, &["/bin/sh", "-c", PIPELINE]).run();
    output.expect_success();
    assert_eq!(
        (output.lines(), output.stderr.as_str()),
        (vec!["line"], ""),
        "{}: `sh -c '{PIPELINE}'` in the container should print one line and nothing on \
         stderr: when `head` exits, the next `echo` gets SIGPIPE and its shell dies of it. See \
         step04's chapter, \"What a process inherits\".\n{output}",
        step.short()
    );
}

/// The book's transcript: a command in the container ignores and blocks no
/// signal (grep reads its own status; the shell, PID 1, ignores SIGQUIT for
/// itself, as shells do), and the pipeline ends at once.
#[test]
fn step04_inherited() {
    let step = Step::Step04FullDemo;
    let commands = ["grep -E '^Sig(Ign|Blk)' /proc/self/status", PIPELINE];
    let runner = Runner::step(step, with_rootfs(&[ROOTFS])).with_signals(&[], &[]);
    let (transcript, output) = Transcript::shell(runner, "/ # ", &commands);
    output.expect_success();
    assert!(
        output.stdout.contains("SigIgn:\t0000000000000000")
            && output.stdout.contains("SigBlk:\t0000000000000000"),
        "step04: a command in the container should start with no signal ignored or blocked. See \
         {}, \"What a process inherits\".\n{output}",
        step.chapter()
    );
    transcript.assert_matches("step04_inherited");
}

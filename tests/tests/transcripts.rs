//! The console transcripts the book shows, each recorded from a real run.
//!
//! If one of these fails, a step's output changed. If you meant it to, run
//! `cargo insta review`: it shows the change and updates the snapshot, which is
//! also what the book includes.

use rstest::rstest;
use workshop_tests::transcript::procps_columns;
use workshop_tests::{ROOTFS, Runner, Step, Transcript, with_rootfs};

/// Busybox ash's prompt for root in `/`, as in the article.
const ALPINE_PROMPT: &str = "/ # ";

/// `ps` inside each step, in the article's busybox format. Steps 02 to 04
/// show their shell as PID 1 and `ps` itself; step01 has no /proc yet, so
/// busybox's ps finds nothing to list.
#[rstest]
#[case::step01_chroot("step01_ps_without_proc", Step::Step01Chroot, &[ROOTFS])]
#[case::step02_unshare_cli(
    "step02_ps",
    Step::Step02UnshareCli,
    &["--root", ROOTFS, "--mount-proc", "--pid", "--fork", "/bin/sh"]
)]
#[case::step04_full_demo("step04_ps", Step::Step04FullDemo, &[ROOTFS])]
fn ps_inside(#[case] name: &str, #[case] step: Step, #[case] step_args: &[&str]) {
    let (transcript, output) =
        Transcript::shell(Runner::step(step, with_rootfs(step_args)), ALPINE_PROMPT, &["ps"]);
    output.expect_success();
    let table: Vec<&str> = output.lines().into_iter().skip(1).collect(); // skip the `ps` mark line
    if step == Step::Step01Chroot {
        assert_eq!(
            table,
            ["PID   USER     TIME  COMMAND"],
            "{}: with no proc mounted in the new root, busybox's ps has nothing to read and \
             lists no process. See {}, section (1).\n{output}",
            step.short(),
            step.chapter()
        );
    } else {
        let commands: Vec<(&str, &str)> = table[1..]
            .iter()
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields[0], fields[fields.len() - 1])
            })
            .collect();
        assert_eq!(
            commands,
            [("1", "/bin/sh"), ("2", "ps")],
            "{}: ps inside should list exactly two processes, the shell as PID 1 and ps as \
             PID 2: the container's own PID namespace, seen through its own /proc. See {}.\n{output}",
            step.short(),
            step.chapter()
        );
    }
    transcript.assert_matches(name);
}

/// step03 runs on the host's files, so `ps` is the host's (procps), not busybox.
#[rstest]
#[case::step03_pid_ns("step03_ps")]
fn ps_inside_on_host_files(#[case] name: &str) {
    let step = Step::Step03PidNs;
    let (transcript, output) = Transcript::shell(Runner::step(step, ["/bin/sh"]), "# ", &["ps"]);
    output.expect_success();
    let pids: Vec<&str> =
        output.lines().into_iter().skip(2).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(
        pids,
        ["1", "2"],
        "{}: ps should list only the shell (PID 1) and itself: the new PID namespace, seen \
         through the proc the child mounted. See {}, sections (3) and (4).\n{output}",
        step.short(),
        step.chapter()
    );
    Transcript(procps_columns(&transcript.0)).assert_matches(name);
}

/// `cat /etc/os-release` says Alpine 3.20.3 in every step that changes root.
#[rstest]
#[case::step01_chroot("step01_os_release", Step::Step01Chroot, &[ROOTFS])]
#[case::step02_unshare_cli("step02_os_release", Step::Step02UnshareCli, &["--root", ROOTFS, "/bin/sh"])]
#[case::step04_full_demo("step04_os_release", Step::Step04FullDemo, &[ROOTFS])]
fn os_release(#[case] name: &str, #[case] step: Step, #[case] step_args: &[&str]) {
    let runner = Runner::step(step, with_rootfs(step_args));
    let (transcript, output) = Transcript::shell(runner, ALPINE_PROMPT, &["cat /etc/os-release"]);
    output.expect_success();
    assert!(
        output.stdout.contains("VERSION_ID=3.20.3"),
        "{}: inside the new root, /etc/os-release should be Alpine's (VERSION_ID=3.20.3), \
         not the host's: the step should chroot into the rootfs. See {}.\n{output}",
        step.short(),
        step.chapter()
    );
    transcript.assert_matches(name);
}

/// The article's experiment: mount proc inside a plain chroot, and `ps`
/// shows processes outside the chroot; `umount /proc` cleans up. Run on a
/// small simulated host, so that "the host's processes" are the same on
/// every machine: its PID 1 is the host shell that started step01.
#[test]
fn step01_mount_proc() {
    let step = Step::Step01Chroot;
    let runner = Runner::step(step, with_rootfs(&[ROOTFS])).on_simulated_host();
    let commands = ["mount -t proc proc /proc", "ps", "umount /proc"];
    let (transcript, output) = Transcript::shell(runner, ALPINE_PROMPT, &commands);
    output.expect_success();
    let host_shell = output.lines().into_iter().find(|l| l.starts_with("1 "));
    assert!(
        host_shell.is_some_and(|l| l.contains("-c ")),
        "step01: after `mount -t proc proc /proc`, ps inside the chroot should list PID 1, the \
         host's shell outside the chroot: chroot hides files, not processes. See {}, \
         section (1).\n{output}",
        step.chapter()
    );
    transcript.assert_matches("step01_mount_proc");
}

/// step02's `--help` explains every flag in one line.
#[test]
fn step02_help() {
    let (transcript, output) =
        Transcript::command(Runner::step(Step::Step02UnshareCli, ["--help"]));
    output.expect_success();
    transcript.assert_matches("step02_help");
}

/// The container's exit status is the runtime's.
#[test]
fn step04_exit_status() {
    let runner =
        Runner::step(Step::Step04FullDemo, with_rootfs(&[ROOTFS, "/bin/sh", "-c", "exit 42"]));
    let (transcript, output) = Transcript::command(runner);
    output.expect_code(42, "the container's exit status becomes step04's (section \"wait\")");
    transcript.assert_matches("step04_exit_status");
}

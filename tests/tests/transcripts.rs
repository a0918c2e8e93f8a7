//! The console transcripts the book shows, each recorded from a real run.
//!
//! If one of these fails, a step's output changed. If you meant it to, run
//! `cargo insta review`: it shows the change and updates the snapshot, which is
//! also what the book includes.

use rstest::rstest;
use workshop_tests::transcript::procps_columns;
use workshop_tests::{Output, ROOTFS, Runner, Step, Transcript, c_demo, with_rootfs};

/// Busybox ash's prompt for root in `/`, as in the article.
const ALPINE_PROMPT: &str = "/ # ";

/// `ps` inside each step, in the article's busybox format. Steps 02 to 05
/// show their shell as PID 1 and `ps` itself; from step06 on, PID 1 is the
/// init, and the shell is PID 2; step01 has no /proc yet, so busybox's ps
/// finds nothing to list.
#[rstest]
#[case::step01_chroot(Some("step01_ps_without_proc"), Step::Step01Chroot, &[ROOTFS])]
#[case::step02_unshare_cli(
    Some("step02_ps"),
    Step::Step02UnshareCli,
    &["--root", ROOTFS, "--mount-proc", "--pid", "--fork", "/bin/sh"]
)]
#[case::step04_full_demo(Some("step04_ps"), Step::Step04FullDemo, &[ROOTFS])]
#[case::step05_pivot_root(Some("step05_ps"), Step::Step05PivotRoot, &[ROOTFS])]
#[case::step06_init(Some("step06_ps"), Step::Step06Init, &[ROOTFS])]
#[case::step07_overlay(None, Step::Step07Overlay, &[ROOTFS])]
#[case::step08_cgroups(None, Step::Step08Cgroups, &[ROOTFS])]
fn ps_inside(#[case] name: Option<&str>, #[case] step: Step, #[case] step_args: &[&str]) {
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
    } else if step >= Step::Step06Init {
        let rows: Vec<(&str, String)> =
            table[1..].iter().map(|line| pid_and_command(line)).collect();
        // The runtime's command line, as the harness started it (rootless,
        // step08's has `--no-cgroup`).
        let init = output.label.clone();
        assert!(
            rows.len() == 3
                && rows[0] == ("1", init.clone())
                && rows[1..] == [("2", "/bin/sh".to_string()), ("3", "ps".to_string())],
            "{}: ps inside should list exactly three processes: the init as PID 1 (the \
             runtime's child, so its command line is the runtime's, `{init}`), the shell it \
             started as PID 2, and ps as PID 3. See {}.\n{output}",
            step.short(),
            step.chapter()
        );
    } else {
        expect_ps_table(&output, &table[1..], step.short(), &step.chapter());
    }
    if let Some(name) = name {
        transcript.assert_matches(name);
    }
}

/// A row of busybox's `ps`: its PID, and its command with its arguments
/// (after PID, USER and TIME).
fn pid_and_command(line: &str) -> (&str, String) {
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[0], fields.get(3..).unwrap_or_default().join(" "))
}

/// The check of `ps_inside`: busybox's `ps` lists exactly the shell as PID 1
/// and itself as PID 2.
fn expect_ps_table(output: &Output, rows: &[&str], who: &str, chapter: &str) {
    let commands: Vec<(&str, &str)> = rows
        .iter()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields[0], fields[fields.len() - 1])
        })
        .collect();
    assert_eq!(
        commands,
        [("1", "/bin/sh"), ("2", "ps")],
        "{who}: ps inside should list exactly two processes, the shell as PID 1 and ps as \
         PID 2: the container's own PID namespace, seen through its own /proc. See {chapter}.\n\
         {output}"
    );
}

/// The article's C program passes the same `ps` check as its Rust port:
/// compiled with `cc` from step04-full-demo/container_demo.c, run beside a
/// `rootfs`, as the article runs it.
#[rstest]
#[case::container_demo_c("container_demo_ps")]
fn ps_inside_the_c_original(#[case] name: &str) {
    let (transcript, output) = Transcript::shell(c_demo::runner(), ALPINE_PROMPT, &["ps"]);
    output.expect_success();
    let table: Vec<&str> = output.lines().into_iter().skip(2).collect(); // the mark, the header
    let chapter = Step::Step04FullDemo.chapter();
    expect_ps_table(&output, &table, "container_demo.c", &chapter);
    transcript.assert_matches(name);
}

/// The article's own session with its C program: `cat /etc/os-release`,
/// then `ps`, which is PID 3 because `cat` was PID 2 (PIDs are not reused
/// until the counter wraps).
#[rstest]
#[case::container_demo_c("container_demo_article")]
fn the_article_s_session(#[case] name: &str) {
    let commands = ["cat /etc/os-release", "ps"];
    let (transcript, output) = Transcript::shell(c_demo::runner(), ALPINE_PROMPT, &commands);
    output.expect_success();
    let ps = output.lines().into_iter().rev().find(|l| l.ends_with(" ps")).unwrap_or_default();
    assert!(
        output.stdout.contains("VERSION_ID=3.20.3") && ps.starts_with("3 "),
        "container_demo.c: `cat /etc/os-release` should print Alpine's, and the `ps` after it \
         should be PID 3, since `cat` was PID 2 in the new PID namespace.\n{output}"
    );
    transcript.assert_matches(name);
}

/// PID 1 of a PID namespace gets only the signals it has a handler for: from
/// inside, even SIGKILL. Another shell dies of SIGTERM; with a trap, PID 1
/// gets it too.
#[rstest]
#[case::step04_full_demo("step04_pid1_signals", Step::Step04FullDemo)]
fn pid1_ignores_signals_without_a_handler(#[case] name: &str, #[case] step: Step) {
    let commands = [
        "kill 1",
        "kill -KILL 1",
        "echo \"PID $$ is still here\"",
        "sh -c 'kill $$'; echo $?",
        "trap 'echo SIGTERM handled' TERM",
        "kill 1",
    ];
    let runner = Runner::in_container(step, &[]);
    let (transcript, output) = Transcript::shell(runner, ALPINE_PROMPT, &commands);
    output.expect_success();
    let lines = output.lines();
    let expected = ["PID 1 is still here", "Terminated", "143", "SIGTERM handled"];
    assert!(
        expected.iter().all(|line| lines.contains(line)),
        "{}: inside the container, `kill 1` and `kill -KILL 1` should do nothing to the shell, \
         PID 1, which has no handler for them (pid_namespaces(7)); a shell that is not PID 1 \
         should die of SIGTERM (143); and once PID 1 traps SIGTERM, `kill 1` should reach it. \
         Expected the lines {expected:?}. See {}.\n{output}",
        step.short(),
        step.chapter()
    );
    transcript.assert_matches(name);
}

/// Without sudo, step01 runs as root of a user namespace, and `id -u` says 0:
/// yet mounting proc is refused, since the PID namespace it would show, the
/// host's, belongs to the host's user namespace, not ours.
#[test]
fn step01_mount_proc_rootless() {
    let step = Step::Step01Chroot;
    let runner = Runner::step(step, with_rootfs(&[ROOTFS])).rootless();
    let commands = ["id -u", "mount -t proc proc /proc"];
    let (transcript, output) = Transcript::shell(runner, ALPINE_PROMPT, &commands);
    let lines = output.lines();
    assert!(
        lines.contains(&"0") && output.stdout.contains("permission denied"),
        "step01, rootless: `id -u` should say 0 (root of the user namespace), and `mount -t proc` \
         should still be refused (permission denied): proc may be mounted only by a process with \
         CAP_SYS_ADMIN in the user namespace that owns its PID namespace. See {}.\n{output}",
        step.chapter()
    );
    transcript.assert_matches("step01_mount_proc_rootless");
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

/// step02's `--help` explains every flag in one line. It needs no root, and
/// is shown without sudo.
#[test]
fn step02_help() {
    let (transcript, output) =
        Transcript::command(Runner::step(Step::Step02UnshareCli, ["--help"]).unprivileged());
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

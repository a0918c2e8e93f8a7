//! A /dev of the container's own (step05, kit/src/dev.rs): up to step04 the
//! rootfs's /dev is an empty directory, and the first program that needs
//! /dev/null fails. step05 mounts a tmpfs there with the host's six harmless
//! devices bound in, a devpts of its own, /dev/shm, and the usual links.

use rstest::rstest;
use workshop_tests::{Runner, Step, Transcript, host};

/// Busybox ash's prompt for root in `/`, as in the article.
const ALPINE_PROMPT: &str = "/ # ";

/// What `ls /dev` lists in step05's container.
const STEP05_DEV: [&str; 13] = [
    "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
    "urandom", "zero",
];

/// busybox's sh gives a background job /dev/null as its stdin (when it is not
/// interactive, as here, reading commands from a pipe). Without a /dev/null,
/// the job fails before it starts: `can't open '/dev/null'`. (`wait` keeps
/// the shell, PID 1, alive until then: were it to exit first, the kernel
/// would kill the job before it could complain.)
#[rstest]
#[case::step04_full_demo(Step::Step04FullDemo, Some("step04_background_job"))]
#[case::step05_pivot_root(Step::Step05PivotRoot, Some("step05_background_job"))]
#[case::step06_init(Step::Step06Init, None)]
#[case::step07_overlay(Step::Step07Overlay, None)]
#[case::step08_cgroups(Step::Step08Cgroups, None)]
fn a_background_job_gets_dev_null(#[case] step: Step, #[case] transcript: Option<&str>) {
    let runner = Runner::in_container(step, &[]);
    let (recorded, output) = Transcript::shell(runner, ALPINE_PROMPT, &["sleep 1 & wait"]);
    output.expect_success();
    let complaint = output.stdout.contains("can't open '/dev/null'");
    if step == Step::Step04FullDemo {
        assert!(
            complaint,
            "step04: the container's /dev is the rootfs's empty directory, so busybox's sh \
             should fail to give its background job /dev/null (\"can't open '/dev/null'\"). If \
             it did not, step04 now mounts a /dev, and this lesson moved. See {}.\n{output}",
            step.chapter()
        );
    } else {
        assert!(
            !complaint,
            "{}: `sleep 1 & wait` should run without a word: the container's /dev/null should \
             be the host's, bound in by step05's (3). See {}, sections (2) and (3).\n{output}",
            step.short(),
            Step::Step05PivotRoot.chapter()
        );
    }
    if let Some(name) = transcript {
        recorded.assert_matches(name);
    }
}

/// step05's /dev, and each part of it at work: the devices (3) (a write to
/// /dev/null, zeros from /dev/zero), the links (5), /dev/shm (5), and the
/// devpts (4): opening /dev/ptmx makes a terminal pair whose other end,
/// numbered from 0 in this new instance, appears in /dev/pts.
#[test]
fn step05_dev() {
    let step = Step::Step05PivotRoot;
    let commands = [
        "ls /dev",
        "echo gone > /dev/null && head -c 4 /dev/zero | od -An -tx1",
        "for link in fd stdin ptmx; do readlink /dev/$link; done",
        "echo hello > /dev/shm/note && cat /dev/shm/note",
        "exec 3<> /dev/ptmx && ls /dev/pts",
    ];
    let (recorded, output) =
        Transcript::shell(Runner::in_container(step, &[]), ALPINE_PROMPT, &commands);
    output.expect_success();
    let lines = output.lines();
    let after = |command: &str| -> Vec<&str> {
        let start = lines.iter().position(|l| l.ends_with(command)).map_or(lines.len(), |i| i + 1);
        lines[start..]
            .iter()
            .take_while(|l| !commands.iter().any(|c| l.ends_with(c)))
            .copied()
            .collect()
    };
    let expected: [(&str, Vec<&str>, &str); 5] = [
        (commands[0], STEP05_DEV.to_vec(), "(2) to (5)"),
        (commands[1], vec!["00 00 00 00"], "(3)"),
        (commands[2], vec!["/proc/self/fd", "/proc/self/fd/0", "pts/ptmx"], "(4) and (5)"),
        (commands[3], vec!["hello"], "(5)"),
        (commands[4], vec!["0", "ptmx"], "(4)"),
    ];
    for (command, want, section) in expected {
        assert_eq!(
            after(command),
            want,
            "step05: `{command}` in the container's shell should print {want:?}. See {}, \
             section {section}.\n{output}",
            step.chapter()
        );
    }
    recorded.assert_matches("step05_dev");
}

/// The container's /dev/pts is a devpts of its own (`newinstance`), not the
/// host's: its device number differs from the host's /dev/pts. A shared one
/// would let the container open the host's terminals.
#[test]
fn step05_devpts_is_a_new_instance() {
    let step = Step::Step05PivotRoot;
    let probe = "awk '$5 == \"/dev/pts\" { print $3, $(NF-2) }' /proc/self/mountinfo";
    let output = Runner::in_container(step, &["/bin/sh", "-c", probe]).run();
    output.expect_success();
    let host_mounts = host::mountinfo();
    let host_pts = host_mounts
        .lines()
        .map(|line| line.split(' ').collect::<Vec<_>>())
        .find(|fields| fields.get(4) == Some(&"/dev/pts"))
        .map(|fields| fields[2].to_string());
    let inside = output.lines();
    assert!(
        inside.len() == 1 && inside[0].ends_with(" devpts"),
        "step05: the container's /proc/self/mountinfo should list one devpts on /dev/pts. See \
         {}, section (4).\n{output}",
        step.chapter()
    );
    if let Some(host_pts) = host_pts {
        let device = inside[0].split(' ').next().unwrap_or_default();
        assert_ne!(
            device,
            host_pts,
            "step05: the container's devpts has the host's device number {host_pts}: it is the \
             host's instance, with the host's terminals in it. Mount it with `newinstance`. \
             See {}, section (4).\n{output}",
            step.chapter()
        );
    }
}

//! What each step isolates, seen from inside and from the host.
//!
//! chroot (step01) changes what `/` is; PID namespaces (steps 02–04) change
//! which processes exist; mount namespaces keep mounts inside. Each test
//! checks one of these claims against a real run.

use rstest::rstest;
use workshop_tests::{ROOTFS, Runner, Step, alpine_rootfs, host, with_rootfs};

/// Inside, the shell is PID 1 and /proc lists only the container's processes.
/// The probe uses only shell builtins, so it starts no process of its own.
#[rstest]
#[case::step01_chroot(Step::Step01Chroot)]
#[case::step02_unshare_cli(Step::Step02UnshareCli)]
#[case::step03_pid_ns(Step::Step03PidNs)]
#[case::step04_full_demo(Step::Step04FullDemo)]
fn pid_view(#[case] step: Step) {
    let probe = "echo \"pid $$\"; for p in /proc/[0-9]*; do echo \"proc ${p#/proc/}\"; done";
    let output = Runner::in_container(step, &[]).stdin(probe).run();
    output.expect_success();
    let lines = output.lines();
    if step == Step::Step01Chroot {
        // No PID namespace, and no proc mounted in the new root.
        assert!(
            lines[0] != "pid 1" && lines[1..] == ["proc [0-9]*"],
            "{}: a chroot has no PID namespace of its own: the shell keeps its host PID, and \
             the rootfs's /proc is an empty directory until something mounts proc there. \
             See {}.\n{output}",
            step.short(),
            step.chapter()
        );
    } else {
        assert_eq!(
            lines,
            ["pid 1", "proc 1"],
            "{}: inside, the shell should be PID 1 and /proc should list only it. If the shell \
             is not PID 1, it was not forked after unshare(CLONE_NEWPID); if /proc lists more, \
             proc was not mounted by a process inside the new PID namespace. See {}.\n{output}",
            step.short(),
            step.chapter()
        );
    }
}

/// From the host, the container's PID 1 has two PIDs: one in the host's
/// namespace, and 1 in its own (the `NSpid:` line of /proc/<pid>/status).
#[rstest]
#[case::step02_unshare_cli(Step::Step02UnshareCli)]
#[case::step03_pid_ns(Step::Step03PidNs)]
#[case::step04_full_demo(Step::Step04FullDemo)]
fn host_sees_two_pids(#[case] step: Step) {
    let command = ["/bin/sh", "-c", "echo ready; exec sleep 30"];
    let mut running = Runner::in_container(step, &command).spawn();
    running.wait_for_line("ready");
    let (running, init) = running.container_init(step); // fails unless NSpid is [host, 1]
    host::kill(init, nix::sys::signal::Signal::SIGKILL); // seen: end the container early
    running.wait();
}

/// `ls /` inside lists the rootfs, and a file on the host is out of reach.
/// step03 does not chroot: it sees the host's files, which is its lesson.
#[rstest]
#[case::step01_chroot(Step::Step01Chroot)]
#[case::step02_unshare_cli(Step::Step02UnshareCli)]
#[case::step03_pid_ns(Step::Step03PidNs)]
#[case::step04_full_demo(Step::Step04FullDemo)]
fn filesystem_view(#[case] step: Step) {
    let marker =
        workshop_tests::scratch().join(format!("marker-{}-{}", step.short(), std::process::id()));
    std::fs::write(&marker, "on the host\n").expect("write the marker file");
    let probe = format!(
        "ls -1a / | grep -v '^[.]*$'; test -e {} && echo marker: reachable || echo marker: hidden",
        marker.display()
    );
    let output = Runner::in_container(step, &[]).stdin(probe).run();
    std::fs::remove_file(&marker).expect("remove the marker file");
    output.expect_success();
    let mut lines = output.lines();
    let marker_seen = lines.pop().unwrap_or_default();
    let root = if step == Step::Step03PidNs { std::path::Path::new("/") } else { alpine_rootfs() };
    assert_eq!(
        lines,
        host::list_dir(root),
        "{}: `ls /` inside should list {} — the directory the step made its root. See {}.\n{output}",
        step.short(),
        root.display(),
        step.chapter()
    );
    let expected = if step == Step::Step03PidNs { "marker: reachable" } else { "marker: hidden" };
    assert_eq!(
        marker_seen,
        expected,
        "{}: a file on the host ({}) should be {} from inside. See {}.\n{output}",
        step.short(),
        marker.display(),
        expected.trim_start_matches("marker: "),
        step.chapter()
    );
}

/// While the container runs, the host's mount table is untouched: the proc
/// the container mounted lives in the container's own mount namespace.
#[rstest]
#[case::step02_unshare_cli(Step::Step02UnshareCli)]
#[case::step03_pid_ns(Step::Step03PidNs)]
#[case::step04_full_demo(Step::Step04FullDemo)]
fn no_mount_leaks_while_running(#[case] step: Step) {
    let before = host::mountinfo();
    let mut running =
        Runner::in_container(step, &["/bin/sh", "-c", "echo ready; exec sleep 30"]).spawn();
    running.wait_for_line("ready");
    let during = host::mountinfo();
    for pid in host::children_of(running.pid()) {
        host::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let output = running.wait(); // checks the host's mounts after the run
    let (added, removed) = host::mount_changes(&before, &during);
    assert!(
        added.is_empty() && removed.is_empty(),
        "{}: while the container ran, the host's mounts changed: new {added:#?}, gone \
         {removed:#?}. Mounts made inside must stay in the container's mount namespace: see \
         {}, the section that makes mounts private.\n{output}",
        step.short(),
        step.chapter()
    );
}

/// The article's footnote on (2): on a host whose `/` is *shared* (systemd's
/// default), a new mount namespace still shares mount events with the host,
/// so the proc mounted inside would appear on the host. `unshare
/// --propagation unchanged` shows the leak; step04's private remount stops it.
/// Each run happens inside an outer mount namespace made shared like such a
/// host, so the real host is never touched.
#[rstest]
#[case::util_linux_unchanged("unshare", &["--propagation", "unchanged", "--root", ROOTFS, "--mount-proc", "--pid", "--fork", "/bin/true"], true)]
#[case::step02_unshare_cli_unchanged("step02", &["--propagation", "unchanged", "--root", ROOTFS, "--mount-proc", "--pid", "--fork", "/bin/true"], true)]
#[case::step02_unshare_cli("step02", &["--root", ROOTFS, "--mount-proc", "--pid", "--fork", "/bin/true"], false)]
#[case::step04_full_demo("step04", &[ROOTFS, "/bin/true"], false)]
fn shared_root_propagation(#[case] runtime: &str, #[case] args: &[&str], #[case] leaks: bool) {
    let program = match runtime {
        "unshare" => host::util_linux_unshare().to_string(),
        "step02" => workshop_tests::binary(Step::Step02UnshareCli).display().to_string(),
        _ => workshop_tests::binary(Step::Step04FullDemo).display().to_string(),
    };
    let args = with_rootfs(args);
    let proc = format!("{}/proc", alpine_rootfs().display());
    // In the shared namespace: run the runtime, then look for its proc mount.
    let script = format!(
        "{program} {} || exit 1; if grep -q ' {proc} ' /proc/self/mountinfo; then echo leaked; else echo kept inside; fi",
        args.join(" ")
    );
    let output = Runner::program("/bin/sh", ["-c", &script]).in_shared_mount_namespace().run();
    output.expect_success();
    let (expected, lesson) = if leaks {
        (
            "leaked",
            "with propagation left unchanged, a mount inside a new mount namespace propagates to a shared host",
        )
    } else {
        (
            "kept inside",
            "making every mount private before mounting proc keeps the mount inside (section (2))",
        )
    };
    assert_eq!(
        output.lines(),
        [expected],
        "`{runtime} {}`: {lesson}. See {}.\n{output}",
        args.join(" "),
        Step::Step04FullDemo.chapter()
    );
}

/// chroot hides files, not processes: from inside step01 the shell can still
/// signal a process of the host (this test itself), which a PID namespace
/// makes unreachable. `kill -0` checks that a process exists and may be
/// signalled, without signalling it.
#[rstest]
#[case::step01_chroot(Step::Step01Chroot, "visible")]
#[case::step02_unshare_cli(Step::Step02UnshareCli, "hidden")]
#[case::step03_pid_ns(Step::Step03PidNs, "hidden")]
#[case::step04_full_demo(Step::Step04FullDemo, "hidden")]
fn host_processes(#[case] step: Step, #[case] expected: &str) {
    let me = std::process::id();
    let probe = format!("if kill -0 {me} 2>&-; then echo visible; else echo hidden; fi");
    let output = Runner::in_container(step, &[]).stdin(probe).run();
    output.expect_success();
    assert_eq!(
        output.lines(),
        [expected],
        "{}: this test's process (PID {me} on the host) should be {expected} from inside: \
         {}. See {}.\n{output}",
        step.short(),
        if expected == "visible" {
            "a chroot changes the root directory, not which processes exist"
        } else {
            "a PID namespace shows only its own processes"
        },
        step.chapter()
    );
}

/// The article's experiment, on the real host: with proc mounted inside a
/// plain chroot, `ps` lists the host's processes — this test among them.
/// Mounting proc for the host's PID namespace takes real root, so without
/// sudo the test checks instead that the mount is refused (the rest of the
/// lesson is `host_processes` above).
#[test]
fn step01_mount_proc_shows_the_host() {
    let step = Step::Step01Chroot;
    let me = std::process::id().to_string();
    let probe = "mount -t proc proc /proc && ps && umount /proc";
    let output = Runner::in_container(step, &[]).stdin(probe).in_private_mount_namespace().run();
    if *workshop_tests::require_privilege() == workshop_tests::Privilege::Root {
        output.expect_success();
        let pids: Vec<&str> =
            output.lines().iter().filter_map(|l| l.split_whitespace().next()).collect();
        assert!(
            pids.contains(&me.as_str()) && pids.len() > 5,
            "step01: with proc mounted inside the chroot, ps should list the host's processes, \
             this test (PID {me}) among them. See {}, section (1).\n{output}",
            step.chapter()
        );
    } else {
        assert!(
            output.code() != 0 && output.stderr.to_lowercase().contains("permission denied"),
            "step01 rootless: mounting proc for the host's PID namespace should be refused \
             inside a user namespace.\n{output}"
        );
    }
}

/// chroot(2) changes what `/` means but leaves the working directory where
/// it was, outside the new root, so the steps chdir("/") after it. Inside,
/// `pwd` must say `/` (without the chdir, Linux reports the old directory as
/// "(unreachable)", and relative paths still reach the host's files).
#[rstest]
#[case::step01_chroot(Step::Step01Chroot)]
#[case::step02_unshare_cli(Step::Step02UnshareCli)]
#[case::step04_full_demo(Step::Step04FullDemo)]
fn working_directory_is_the_new_root(#[case] step: Step) {
    let output = Runner::in_container(step, &[]).stdin("pwd").run();
    output.expect_success();
    assert_eq!(
        output.lines(),
        ["/"],
        "{}: the shell's working directory should be the new root, `/`. chroot(2) does not \
         change the working directory: did the step forget chdir(\"/\") after chroot? See {}, \
         the chroot section.\n{output}",
        step.short(),
        step.chapter()
    );
}

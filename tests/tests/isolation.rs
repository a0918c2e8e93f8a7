//! What each step isolates, seen from inside and from the host.
//!
//! chroot (step01) changes what `/` is; PID namespaces (steps 02–04) change
//! which processes exist; mount namespaces keep mounts inside; pivot_root
//! (step05) takes the host's tree out of the container's mount namespace, so
//! that chroot's escape leads nowhere. Each test checks one of these claims
//! against a real run.

use rstest::rstest;
use rstest_reuse::apply;
use workshop_tests::{
    ROOTFS, Runner, Step, Transcript, alpine_rootfs, escape, every_step, host, with_rootfs,
};

/// Inside, the shell is PID 1 and /proc lists only the container's processes.
/// From step06 on, PID 1 is the init and the shell its child, PID 2. The
/// probe uses only shell builtins, so it starts no process of its own.
#[apply(every_step)]
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
    } else if step >= Step::Step06Init {
        assert_eq!(
            lines,
            ["pid 2", "proc 1", "proc 2"],
            "{}: inside, PID 1 should be the init and the shell, its child, PID 2; /proc should \
             list only those two. See {}.\n{output}",
            step.short(),
            Step::Step06Init.chapter()
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
#[case::step05_pivot_root(Step::Step05PivotRoot)]
#[case::step06_init(Step::Step06Init)]
#[case::step07_overlay(Step::Step07Overlay)]
#[case::step08_cgroups(Step::Step08Cgroups)]
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
#[apply(every_step)]
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
#[case::step05_pivot_root(Step::Step05PivotRoot)]
#[case::step06_init(Step::Step06Init)]
#[case::step07_overlay(Step::Step07Overlay)]
#[case::step08_cgroups(Step::Step08Cgroups)]
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
#[case::step05_pivot_root("step05", &[ROOTFS, "/bin/true"], false)]
#[case::step06_init("step06", &[ROOTFS, "/bin/true"], false)]
#[case::step07_overlay("step07", &[ROOTFS, "/bin/true"], false)]
#[case::step08_cgroups("step08", &[ROOTFS, "/bin/true"], false)]
fn shared_root_propagation(#[case] runtime: &str, #[case] args: &[&str], #[case] leaks: bool) {
    let program = match Step::ALL.into_iter().find(|step| step.short() == runtime) {
        Some(step) => workshop_tests::binary(step).display().to_string(),
        None => host::util_linux_unshare().to_string(),
    };
    let mut args = with_rootfs(args);
    let step08_on = Step::ALL.iter().any(|s| s.short() == runtime && *s >= Step::Step08Cgroups);
    if step08_on && workshop_tests::cgroups::rootless_without_cgroups() {
        args.insert(0, "--no-cgroup".into()); // as the harness gives it (see `Runner::spawn`)
    }
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
#[case::step05_pivot_root(Step::Step05PivotRoot, "hidden")]
#[case::step06_init(Step::Step06Init, "hidden")]
#[case::step07_overlay(Step::Step07Overlay, "hidden")]
#[case::step08_cgroups(Step::Step08Cgroups, "hidden")]
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
#[case::step05_pivot_root(Step::Step05PivotRoot)]
#[case::step06_init(Step::Step06Init)]
#[case::step07_overlay(Step::Step07Overlay)]
#[case::step08_cgroups(Step::Step08Cgroups)]
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

/// The classic chroot escape (step05-pivot-root/escape.c, run as root inside):
/// chroot into a subdirectory, which leaves the working directory outside
/// the root, climb with chdir(".."), chroot("."), and read a file that exists
/// only on the host. It gets out of step01's and step04's chroot: the host's
/// tree is still mounted in their mount namespace. Under step05 the climb
/// stops at the container's `/`, the root mount of its namespace.
#[rstest]
#[case::step01_chroot(Step::Step01Chroot, "escapes", None)]
#[case::step04_full_demo(Step::Step04FullDemo, "escapes", Some("step04_escape"))]
#[case::step05_pivot_root(Step::Step05PivotRoot, "stays inside", Some("step05_escape"))]
#[case::step06_init(Step::Step06Init, "stays inside", None)]
#[case::step07_overlay(Step::Step07Overlay, "stays inside", None)]
#[case::step08_cgroups(Step::Step08Cgroups, "stays inside", None)]
fn chroot_escape(#[case] step: Step, #[case] expected: &str, #[case] transcript: Option<&str>) {
    let rootfs = escape::rootfs_with_probe(&format!("escape-{}", step.short()));
    let secret = workshop_tests::scratch().join(format!(
        "host-secret-{}-{}",
        step.short(),
        std::process::id()
    ));
    std::fs::write(&secret, "only the host has this file\n").expect("write the host's file");
    let secret_arg = secret.display().to_string();
    let runner =
        Runner::step(step, step.args_for(rootfs.path(), &[escape::IN_ROOTFS, &secret_arg]));
    let (recorded, output) = Transcript::command(runner);
    std::fs::remove_file(&secret).expect("remove the host's file");
    output.expect_no_panic();
    let outcome = match output.code() {
        0 if output.stdout.contains("only the host has this file") => "escapes",
        1 if output.stdout.contains("escape: failed") => "stays inside",
        _ => panic!(
            "{}: the escape probe should either read the host's file (exit 0) or fail to \
             (exit 1, `escape: failed`); it did neither, so this test proves nothing.\n{output}",
            step.short()
        ),
    };
    let why = if expected == "escapes" {
        "a chroot changes a process's root directory, nothing else: the host's tree is still \
         mounted in the mount namespace, and a root process that chroots into a subdirectory \
         can climb out with chdir(\"..\")"
    } else {
        "after pivot_root and the detach of the old root, the container's `/` is the root \
         mount of its namespace: there is nothing above it to climb to. Did (6) pivot_root and \
         (7) umount2(MNT_DETACH) both run?"
    };
    assert_eq!(
        outcome,
        expected,
        "{}: the chroot escape probe should have {}: {why}. See {}.\n{output}",
        step.short(),
        if expected == "escapes" { "escaped" } else { "stayed inside" },
        step.chapter()
    );
    if let Some(name) = transcript {
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(r"host-secret-step0\d-\d+", "host-secret");
        settings.bind(|| recorded.assert_matches(name));
    }
}

/// The mount points of the mount namespace step05's container lives in:
/// only its own. The rootfs is `/`, and every other mount is one the runtime
/// made for it (its /dev, (2) to (5)) or the child's proc.
const STEP05_MOUNTS: [&str; 11] = [
    "/",
    "/dev",
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/pts",
    "/dev/shm",
    "/proc",
];

/// Inside, /proc/self/mountinfo lists the mounts the container can reach
/// (the fifth field of each line is the mount point). step05's are its own.
/// step04's lists only its proc, and yet all the host's mounts are there,
/// outside its root, which mountinfo does not show (the next test enters the
/// namespace to see them).
#[rstest]
#[case::step04_full_demo(Step::Step04FullDemo, &["/proc"], Some("step04_mountinfo"))]
#[case::step05_pivot_root(Step::Step05PivotRoot, &STEP05_MOUNTS, Some("step05_mountinfo"))]
#[case::step06_init(Step::Step06Init, &STEP05_MOUNTS, None)]
#[case::step07_overlay(Step::Step07Overlay, &STEP05_MOUNTS, None)]
#[case::step08_cgroups(Step::Step08Cgroups, &STEP05_MOUNTS, None)]
fn mountinfo_inside(
    #[case] step: Step,
    #[case] expected: &[&str],
    #[case] transcript: Option<&str>,
) {
    let command = "cut -d ' ' -f 5 /proc/self/mountinfo";
    let (recorded, output) = Transcript::shell(Runner::in_container(step, &[]), "/ # ", &[command]);
    output.expect_success();
    let listed: Vec<&str> = output.lines().into_iter().skip(1).collect(); // after the command
    assert_eq!(
        listed,
        expected,
        "{}: /proc/self/mountinfo inside should list exactly the container's mounts: {}. \
         See {}.\n{output}",
        step.short(),
        if step >= Step::Step05PivotRoot {
            "the rootfs as `/`, the /dev that step05's (2) to (5) built, and the child's proc; \
             a host mount there means step05's (7) did not detach the old root"
        } else {
            "its proc; what lies outside the chroot is not shown"
        },
        step.chapter()
    );
    if let Some(name) = transcript {
        recorded.assert_matches(name);
    }
}

/// The container's mount namespace, entered from the host (nsenter(1), as
/// `docker exec` does, taking the namespace's root as its own): under
/// step04 it still holds every mount of the host, which is what chroot's
/// escape climbs back to; under step05, only the container's.
#[rstest]
#[case::step04_full_demo(Step::Step04FullDemo)]
#[case::step05_pivot_root(Step::Step05PivotRoot)]
#[case::step06_init(Step::Step06Init)]
#[case::step07_overlay(Step::Step07Overlay)]
#[case::step08_cgroups(Step::Step08Cgroups)]
fn mount_namespace_holds_no_host_mount(#[case] step: Step) {
    let host_mounts = host::mountinfo(); // before: the copy is made when the container starts
    let command = ["/bin/sh", "-c", "echo ready; exec sleep 30"];
    let mut running = Runner::in_container(step, &command).spawn();
    running.wait_for_line("ready");
    let (running, init) = running.container_init(step);
    let seen = host::mount_points_in_namespace_of(init);
    host::kill(init, nix::sys::signal::Signal::SIGKILL); // seen: end the container
    let output = running.wait();
    let seen = seen.unwrap_or_else(|err| panic!("cannot list the container's mounts: {err}"));
    if step >= Step::Step05PivotRoot {
        assert_eq!(
            seen,
            STEP05_MOUNTS,
            "{}: the container's mount namespace should hold only the container's mounts: \
             the rootfs as `/`, its /dev and its proc. A host mount left there means (7) did \
             not detach the old root. See {}.\n{output}",
            step.short(),
            step.chapter()
        );
    } else {
        let missing: Vec<&str> = host::mount_points(&host_mounts)
            .into_iter()
            .filter(|m| !seen.iter().any(|s| s == m))
            .collect();
        assert!(
            missing.is_empty(),
            "step04: the container's mount namespace is a copy of the host's, so it should \
             hold every mount of the host (under the chroot, out of sight); these are \
             missing: {missing:?}. See {}.\n{output}",
            step.chapter()
        );
    }
}

/// The propagation fields of the root mount in `mountinfo` (proc(5)):
/// `shared:N`, `master:N`, … between the mount options and the ` - `.
fn root_mount_propagation(mountinfo: &str) -> Vec<String> {
    let root = mountinfo
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.len() > 6 && f[3] == "/" && f[4] == "/");
    let Some(fields) = root else { return Vec::new() };
    fields[6..].iter().take_while(|f| **f != "-").map(|f| f.to_string()).collect()
}

/// When a mount namespace is copied from one whose mounts are shared, the
/// copies join their originals' peer groups (`shared:N`), and a mount made
/// under one is made under the other: the leak (2) of step04 prevents. When
/// the copy belongs to a new, less privileged user namespace, as in the
/// rootless mode, shared mounts are reduced to slaves (`master:N`): mounts
/// propagate into the copy, never back out (mount_namespaces(7)).
#[test]
fn copies_of_shared_mounts() {
    let unshare = host::util_linux_unshare();
    let copy = |flags: &[&str]| {
        // The shell stays in the shared namespace while the copy is read: a
        // peer group whose every other mount is gone leaves its slaves private.
        let script = format!(
            "{unshare} {} --propagation unchanged cat /proc/self/mountinfo; exit $?",
            flags.join(" ")
        );
        let output =
            Runner::program("/bin/sh", ["-c", script.as_str()]).in_shared_mount_namespace().run();
        output.expect_success();
        (root_mount_propagation(&output.stdout), output)
    };
    let (same_owner, output) = copy(&["--mount"]);
    assert!(
        same_owner.iter().any(|f| f.starts_with("shared:"))
            && !same_owner.iter().any(|f| f.starts_with("master:")),
        "a new mount namespace of the same user namespace, copied from one whose `/` is shared, \
         should have its `/` in the original's peer group (shared:N), and not a slave; its \
         propagation fields are {same_owner:?}.\n{output}"
    );
    let (less_privileged, output) = copy(&["--user", "--map-root-user", "--mount"]);
    assert!(
        less_privileged.iter().any(|f| f.starts_with("master:"))
            && !less_privileged.iter().any(|f| f.starts_with("shared:")),
        "a new mount namespace that belongs to a new user namespace is less privileged: the \
         copy of a shared `/` should be a slave of the original's peer group (master:N), not a \
         peer; its propagation fields are {less_privileged:?}.\n{output}"
    );
}

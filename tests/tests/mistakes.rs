//! Mistakes students make when they write the steps themselves (exercise
//! mode, `cargo xtask exercise`), which the other tests would miss on some
//! machines, each caught with a message that names it.
//!
//! - Forgetting the private remount: on a host whose `/` is private (many
//!   VMs and containers) nothing leaks, and only a systemd host, where `/` is
//!   shared, shows it. These tests make such a host: each runtime runs in a
//!   mount namespace of its own whose mounts are all shared, and the test
//!   looks there for the runtime's proc. The real host is never touched.
//! - Forgetting `deny` in /proc/self/setgroups before gid_map: the parity
//!   tests see `--map-root-user` fail, but cannot say why; this test runs it
//!   as an ordinary user, as a student without sudo would, and names the cause.
//!
//! `cargo test step03` runs step03's cases with the rest of step03's tests.

use rstest::rstest;
use workshop_tests::{Output, Runner, Step, alpine_rootfs, host};

/// Where a step makes its mounts private, for failure messages: the section,
/// and the function.
fn private_remount_section(step: Step) -> (&'static str, &'static str) {
    match step {
        Step::Step02UnshareCli => ("(4)", "`set_propagation` (private is --propagation's default)"),
        Step::Step03PidNs | Step::Step04FullDemo => ("(2)", "`make_mounts_private`"),
        Step::Step01Chroot => unreachable!("step01 makes no mount namespace"),
        Step::Step07Overlay => unreachable!("step07 calls step04's, which step04's case tests"),
        Step::Step08Cgroups => unreachable!("step08 calls step04's, which step04's case tests"),
    }
}

/// Runs `step` with `/bin/true` in a mount namespace whose mounts are shared,
/// as systemd sets up a host, and says whether the proc it mounts on `proc`
/// showed up in that namespace too.
#[rstest]
#[case::step02_unshare_cli(Step::Step02UnshareCli)]
#[case::step03_pid_ns(Step::Step03PidNs)]
#[case::step04_full_demo(Step::Step04FullDemo)]
fn private_remount_keeps_proc_inside(#[case] step: Step) {
    let proc = match step {
        Step::Step03PidNs => "/proc".to_string(),
        _ => format!("{}/proc", alpine_rootfs().display()),
    };
    let args = step.args_for(alpine_rootfs(), &["/bin/true"]);
    let script = format!(
        "count() {{ grep -c ' {proc} ' /proc/self/mountinfo; }}\n\
         before=$(count)\n\
         {} {} || exit 1\n\
         if [ \"$(count)\" = \"$before\" ]; then echo 'kept inside'; else echo leaked; fi\n",
        step.binary().display(),
        args.join(" ")
    );
    let output = Runner::program("/bin/sh", ["-c", &script]).in_shared_mount_namespace().run();
    output.expect_success();
    let consequence = if step == Step::Step03PidNs {
        "the container's proc covers the host's own /proc, and the host's ps sees only the container"
    } else {
        "a proc stays mounted on the host's rootfs/proc after the container is gone"
    };
    let (section, function) = private_remount_section(step);
    assert_eq!(
        output.lines(),
        ["kept inside"],
        "{}: the proc the container mounts on {proc} showed up outside, in the mount namespace \
         the step was started from, whose mounts are shared as systemd makes a host's: it \
         propagated. Did the step forget the private remount, {section} {function}: mount(2) \
         \"/\" with MS_REC | MS_PRIVATE, before proc is mounted? On a systemd host, \
         {consequence}. See {}, section {section}.\n{output}",
        step.short(),
        step.chapter(),
    );
}

/// How a run ended and what it printed, to compare two runs.
fn seen(output: &Output) -> (i32, String) {
    (output.code(), output.stdout.clone())
}

/// `--map-root-user` as an ordinary user, without root or any user namespace
/// of the harness: the kernel wants `deny` written to /proc/self/setgroups
/// before gid_map. step02 should do what util-linux's unshare does here.
#[test]
fn step02_map_root_user_as_an_ordinary_user() {
    let step = Step::Step02UnshareCli;
    let args = ["--map-root-user", "/bin/sh", "-c", "echo \"uid $(id -u) gid $(id -g)\""];
    let unshare = Runner::program(host::util_linux_unshare(), args).unprivileged().run();
    let ours = Runner::step(step, args).unprivileged().run();
    ours.expect_no_panic();
    assert_eq!(
        seen(&ours),
        seen(&unshare),
        "{}: `{}`, run by an ordinary user, should end the way util-linux's `{}` does (here: {}). \
         An unprivileged process may write gid_map only after it wrote \"deny\" to \
         /proc/self/setgroups: did (3) `map_root_user` forget it, or write it after gid_map? See \
         {}, section (3).\n{ours}\n--- util-linux's unshare, for comparison:\n{unshare}",
        step.short(),
        ours.label,
        unshare.label,
        if unshare.code() == 0 {
            "root inside, `uid 0 gid 0`".to_string()
        } else {
            format!(
                "status {}, as this machine allows no user namespace to this user",
                unshare.code()
            )
        },
        step.chapter()
    );
}

//! Why containers start so fast: no kernel boots. Starting step04's
//! container is a handful of system calls (unshare, mount, chroot, fork,
//! mount, exec), so it takes milliseconds, where a virtual machine first
//! has to boot a whole kernel.

use std::time::{Duration, Instant};
use workshop_tests::{Runner, Step, alpine_rootfs};

/// The median of `runs` wall-clock durations of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

/// Starting a container that runs `/bin/true`, and waiting for it to end,
/// takes well under 50 ms: the book's wrap-up relies on this.
#[test]
fn step04_full_demo_starts_in_milliseconds() {
    let rootfs = alpine_rootfs().display().to_string();
    Runner::step(Step::Step04FullDemo, [&rootfs, "/bin/true"]).run().expect_success(); // warm up
    let container = median(15, || {
        Runner::step(Step::Step04FullDemo, [&rootfs, "/bin/true"]).run().expect_success();
    });
    let plain = median(15, || {
        Runner::program("/bin/true", Vec::<String>::new()).run().expect_success();
    });
    eprintln!("median: container {container:?}, plain /bin/true {plain:?}");
    assert!(
        container < Duration::from_millis(50),
        "step04: starting a container running /bin/true took {container:?} (median of 15; a \
         plain /bin/true took {plain:?}). It is a few system calls and should take \
         milliseconds: is something slow before the fork, or is the machine overloaded?"
    );
}

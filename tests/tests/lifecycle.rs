//! A container's life, seen from the host: how it ends, and what it leaves behind.
//!
//! A runtime hands its container's exit status back to whoever started it, and
//! 128+N when signal N killed it, as a shell reports it. When the container's
//! PID 1 ends, the kernel ends the rest of its PID namespace. When the runtime
//! is killed, step04 takes its container along (PR_SET_PDEATHSIG), where step03
//! leaves it running. And none of the runtime's open files leak into step04's
//! container.

use nix::sys::signal::Signal;
use rstest::rstest;
use workshop_tests::{Runner, Step, Transcript, host};

/// How long a process may take to vanish after the kernel was told to end it.
const VANISH_SECONDS: f64 = 3.0;

/// How long step03's container must outlive its killed runtime to count as left behind.
const OUTLIVE_SECONDS: f64 = 0.5;

/// The step's source file, for failure messages.
fn source(step: Step) -> String {
    format!("{}/src/main.rs", step.name())
}

/// Where a step hands its command's end back to the host, for failure messages.
fn status_section(step: Step) -> &'static str {
    match step {
        Step::Step01Chroot => {
            "section (2), `exec`: execvp replaces step01 with the command in the same process, \
             so the command's end is step01's: there is no child to wait for"
        }
        Step::Step02UnshareCli => {
            "section (6), `fork_and_wait`: end the way the child ended, with its exit code, or \
             killed by the same signal (raised on ourselves, as util-linux's unshare does)"
        }
        Step::Step03PidNs => {
            "`wait_for`, where the parent of (3) waits: Exited(code) becomes code, \
             Signaled(N) becomes 128+N"
        }
        Step::Step04FullDemo | Step::Step07Overlay | Step::Step08Cgroups => {
            "`wait_for`, where the parent of (4) waits: Exited(code) becomes code, \
             Signaled(N) becomes 128+N"
        }
    }
}

/// Where a step makes its command PID 1 of a new PID namespace, for failure messages.
fn pid1_section(step: Step) -> &'static str {
    match step {
        Step::Step01Chroot => "nowhere: step01 makes no PID namespace",
        Step::Step02UnshareCli => {
            "sections (1) `namespaces` (--pid asks for CLONE_NEWPID) and (6) `fork_and_wait` \
             (--fork: the child, the first process created in the namespace, is its PID 1)"
        }
        Step::Step03PidNs => {
            "sections (1) `new_namespaces` (CLONE_NEWPID) and (3) `fork_container` (the child \
             is the namespace's PID 1)"
        }
        Step::Step04FullDemo | Step::Step07Overlay | Step::Step08Cgroups => {
            "sections (1) `new_namespaces` (CLONE_NEWPID) and (4) `fork_container` (the child \
             is the namespace's PID 1)"
        }
    }
}

/// The command's exit status is the runtime's: 0, 1, 42 and 255 come through as they are.
#[rstest]
#[case::step01_chroot(Step::Step01Chroot)]
#[case::step02_unshare_cli(Step::Step02UnshareCli)]
#[case::step03_pid_ns(Step::Step03PidNs)]
#[case::step04_full_demo(Step::Step04FullDemo)]
fn exit_status_passes_through(#[case] step: Step, #[values(0, 1, 42, 255)] code: i32) {
    let script = format!("exit {code}");
    let output = Runner::in_container(step, &["/bin/sh", "-c", &script]).run();
    output.expect_code(
        code,
        &format!(
            "its command, `sh -c '{script}'`, exited with {code}, and a runtime's status is its \
             container's, so that scripts and CI can tell success from failure. {} does this in \
             {} ({}); see {}.",
            step.short(),
            status_section(step),
            source(step),
            step.chapter()
        ),
    );
}

/// A command killed by signal N makes the runtime exit with 128+N, as a shell
/// reports it. step01's shell signals itself (no PID namespace); in steps 02 to
/// 04 the host SIGKILLs the container's PID 1 (its own SIGTERM would be ignored:
/// PID 1 gets only the signals it has a handler for).
#[rstest]
#[case::step01_chroot(Step::Step01Chroot)]
#[case::step02_unshare_cli(Step::Step02UnshareCli)]
#[case::step03_pid_ns(Step::Step03PidNs)]
#[case::step04_full_demo(Step::Step04FullDemo)]
fn death_by_signal_gives_128_plus_n(#[case] step: Step) {
    if step == Step::Step01Chroot {
        let output = Runner::in_container(step, &["/bin/sh", "-c", "kill -TERM $$"]).run();
        output.expect_code(
            128 + Signal::SIGTERM as i32,
            &format!(
                "its command, `sh -c 'kill -TERM $$'`, died of SIGTERM (15), which a shell \
                 reports as 128+15 = 143. step01 becomes its command, so it is the one killed: \
                 see {} ({}), and {}.",
                status_section(step),
                source(step),
                step.chapter()
            ),
        );
        return;
    }
    let mut running =
        Runner::in_container(step, &["/bin/sh", "-c", "echo ready; sleep 30"]).spawn();
    running.wait_for_line("ready");
    let (running, init) = running.container_init(step);
    host::kill(init, Signal::SIGKILL); // from the host's PID namespace, so PID 1 cannot ignore it
    let output = running.wait();
    output.expect_code(
        128 + Signal::SIGKILL as i32,
        &format!(
            "the host killed the container's PID 1 (host PID {init}) with SIGKILL (9), which a \
             shell reports as 128+9 = 137, and a runtime's status is its container's. {} does \
             this in {} ({}); see {}.",
            step.short(),
            status_section(step),
            source(step),
            step.chapter()
        ),
    );
}

/// A shell command that starts `sleep SECONDS` in the background, holding no
/// output pipe (`>&- 2>&-`: a leftover sleep must not keep the harness waiting
/// for the end of the output). Why not just `sleep SECONDS &`: busybox's sh
/// gives a background job /dev/null as its stdin and fails without one ("can't
/// open '/dev/null'"), and the container's /dev is empty (no step mounts one).
/// It does so only for the first process of a background pipeline: so the
/// sleep comes second, after `:`, whose complaint `2>&-` silences.
fn in_background(seconds: &str) -> String {
    format!("{{ : | sleep {seconds} >&- 2>&- & }} 2>&-")
}

/// A sleep duration no other run uses, to find that sleep on the host by its
/// command line: 9, this test process's PID, the step's number.
fn unique_seconds(step: Step) -> String {
    format!("9{:07}{}", std::process::id(), step as usize + 1)
}

/// The live processes whose command line has `word` as a word of its own.
fn processes_with_word(word: &str) -> Vec<i32> {
    host::processes_running(word)
        .into_iter()
        .filter(|&pid| host::cmdline(pid).is_some_and(|c| c.split(' ').any(|w| w == word)))
        .collect()
}

/// When the container's PID 1 exits, the kernel kills every process left in
/// its PID namespace: here a `sleep` the shell started in the background.
#[rstest]
#[case::step02_unshare_cli(Step::Step02UnshareCli)]
#[case::step03_pid_ns(Step::Step03PidNs)]
#[case::step04_full_demo(Step::Step04FullDemo)]
fn pid1_exit_empties_the_namespace(#[case] step: Step) {
    let seconds = unique_seconds(step);
    let script = format!("{}; echo \"started $!\"", in_background(&seconds));
    let output =
        Runner::in_container(step, &["/bin/sh", "-c", &script]).spawn().allow_leftovers().wait();
    let started = output
        .lines()
        .first()
        .and_then(|l| l.strip_prefix("started "))
        .is_some_and(|pid| pid.parse::<i32>().is_ok());
    assert!(
        output.code() == 0 && started && output.stderr.is_empty(),
        "{}: the container's shell should have started `sleep {seconds}` in the background, \
         printed `started` and the sleep's PID (`$!`), and exited with 0, without a word on \
         stderr; so this test cannot tell whether the sleep outlives it.\n{output}",
        step.short()
    );
    let mut left = Vec::new();
    let gone = host::eventually(VANISH_SECONDS, || {
        left = processes_with_word(&seconds);
        left.is_empty()
    });
    if !gone {
        let lines: Vec<String> = left
            .iter()
            .map(|&p| format!("    {p}: {}", host::cmdline(p).unwrap_or_default()))
            .collect();
        host::kill_all(&left); // ours: started by this run, found by a duration no one else uses
        panic!(
            "{}: the container's PID 1, `sh`, exited, but `sleep {seconds}`, which it started in \
             the background, was still running on the host {VANISH_SECONDS} s later (the test \
             killed it):\n{}\nWhen PID 1 of a PID namespace exits, the kernel kills every other \
             process in it, so nothing of a container outlives its PID 1: the command must run \
             as PID 1 of a new PID namespace. See {} in {}, and {}.\n{output}",
            step.short(),
            lines.join("\n"),
            pid1_section(step),
            source(step),
            step.chapter()
        );
    }
}

/// The runtime killed with SIGKILL (no chance to clean up) takes its container
/// along: step04 asks the kernel for it with PR_SET_PDEATHSIG. step03 does not,
/// and its container outlives it: the lesson step04 fixes.
#[rstest]
#[case::step03_pid_ns(Step::Step03PidNs)]
#[case::step04_full_demo(Step::Step04FullDemo)]
fn killing_the_runtime_kills_the_container(#[case] step: Step) {
    let script = format!("{}; echo ready; sleep 30", in_background("30"));
    let mut running = Runner::in_container(step, &["/bin/sh", "-c", &script]).spawn();
    running.wait_for_line("ready");
    let (running, init) = running.container_init(step);
    let container = host::process_tree(init); // PID 1 and the background sleep
    if container.len() < 2 {
        let message = format!(
            "{}: the container's PID 1 (host PID {init}) should have a child, the sleep it \
             started in the background before it printed `ready`; it has none, so this test \
             cannot tell whether the container outlives the runtime.",
            step.short()
        );
        running.abort(&message);
    }
    let runtime = running.pid();
    running.signal(Signal::SIGKILL);
    // Once the runtime is a zombie, the kernel has sent every PDEATHSIG it asked for.
    if !host::eventually(VANISH_SECONDS, || !host::alive(runtime)) {
        let message = format!(
            "the runtime (host PID {runtime}) was still running {VANISH_SECONDS} s after SIGKILL"
        );
        running.abort(&message);
    }
    if step == Step::Step03PidNs {
        let vanished =
            host::eventually(OUTLIVE_SECONDS, || !container.iter().any(|&p| host::alive(p)));
        host::kill_all(&container); // the lesson is learnt: clean up, PID 1 first
        let output = running.allow_leftovers().wait();
        assert!(
            !vanished,
            "step03 has no PR_SET_PDEATHSIG, so its container should outlive the runtime killed \
             with SIGKILL (it is the lesson step04 fixes); yet the container's processes \
             {container:?} were gone within {OUTLIVE_SECONDS} s. If you added \
             set_pdeathsig to step03's `container` ({}), this test is now out of date; \
             otherwise something else killed the container. See {}.\n{output}",
            source(step),
            step.chapter()
        );
        return;
    }
    let mut left = container.clone();
    let vanished = host::eventually(VANISH_SECONDS, || {
        left.retain(|&p| host::alive(p));
        left.is_empty()
    });
    let survivors: Vec<String> = left
        .iter()
        .map(|&p| format!("    {p}: {}", host::cmdline(p).unwrap_or_default()))
        .collect();
    host::kill_all(&left);
    let output = running.wait();
    assert!(
        vanished,
        "{}: the runtime (host PID {runtime}) was killed with SIGKILL, and {VANISH_SECONDS} s \
         later its container was still running on the host (the test killed it):\n{}\n\
         A runtime killed with SIGKILL gets no chance to clean up, so the container must ask \
         the kernel to kill it when its parent dies: prctl(PR_SET_PDEATHSIG, SIGKILL), \
         `set_pdeathsig`, first thing in the child. See `start_clean` in {} (called before (5)), and {}.\
         \n{output}",
        step.short(),
        survivors.join("\n"),
        source(step),
        step.chapter()
    );
}

/// Whether the host's /bin/sh is dash, the shell the book's transcripts were recorded with.
fn host_sh_is_dash() -> bool {
    std::fs::canonicalize("/bin/sh").is_ok_and(|sh| sh.file_name() == Some("dash".as_ref()))
}

/// `step03 --no-fork`: the shell keeps its host PID, its first child becomes
/// PID 1 of the new namespace and exits, and the next fork fails with ENOMEM.
/// step03 says so before it happens.
#[rstest]
#[case::step03_pid_ns(Step::Step03PidNs)]
fn no_fork_shows_why_unshare_pid_needs_fork(#[case] step: Step) {
    let script = "echo pid=$$; /bin/true; /bin/true";
    let (transcript, output) =
        Transcript::command(Runner::step(step, ["--no-fork", "/bin/sh", "-c", script]));
    let pid: i32 = output
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("pid="))
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "step03 --no-fork: the shell should have run and printed its PID (`echo \
                 pid=$$`) before its second fork failed; it did not, so step03 failed before \
                 the command ran (its status and stderr say how): with --no-fork, `run` \
                 should call `explain_no_fork`, then `container`, which execs the command. See \
                 `run` in {} and {}.\n{output}",
                source(step),
                step.chapter()
            )
        });
    assert_ne!(
        pid,
        1,
        "step03 --no-fork: the shell should keep its host PID, since unshare(CLONE_NEWPID) moves \
         only the children created after it; it says it is PID 1. With --no-fork, `run` should \
         call `explain_no_fork`, then `container` directly, without (3) `fork_container`. See \
         `run` in {} and {}.\n{output}",
        source(step),
        step.chapter()
    );
    let (ours, shells): (Vec<&str>, Vec<&str>) =
        output.stderr.lines().partition(|line| line.starts_with("step03-pid-ns:"));
    assert!(
        output.code() != 0 && shells.iter().any(|line| line.to_lowercase().contains("fork")),
        "step03 --no-fork: the shell's first child (/bin/true) becomes PID 1 of the new PID \
         namespace and exits, which ends the namespace: the second /bin/true cannot be forked \
         (ENOMEM), and the shell should fail saying so (dash: \"Cannot fork\", bash: \"fork: \
         Cannot allocate memory\"). See `explain_no_fork` in {} and {}.\n{output}",
        source(step),
        step.chapter()
    );
    let explanation = ours.join("\n");
    assert!(
        explanation.contains("ENOMEM")
            && explanation.contains("--fork")
            && explanation.contains(&format!("PID {pid}")),
        "step03 --no-fork should explain, before the shell runs, what is about to happen: that \
         the shell runs as PID {pid} in the host's PID namespace, that its first child becomes \
         PID 1 and every fork after it exits fails with ENOMEM, and that --fork (as `unshare \
         --fork`) is the fix. See `explain_no_fork` in {} and {}.\n{output}",
        source(step),
        step.chapter()
    );
    if host_sh_is_dash() {
        // Host PIDs change from run to run: the book shows one made up.
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(r"pid=\d+", "pid=4242");
        settings.add_filter(r"as PID \d+", "as PID 4242");
        settings.bind(|| transcript.assert_matches("step03_no_fork"));
    } else {
        eprintln!(
            "note: /bin/sh is not dash, so its fork error differs from the book's: the \
             step03_no_fork transcript is not compared"
        );
    }
}

/// No file descriptor of the runtime but stdin, stdout and stderr is open in
/// step04's container: the runtime is started with /dev/null on descriptor 9.
#[rstest]
#[case::step04_full_demo(Step::Step04FullDemo)]
fn no_runtime_descriptor_leaks_into_the_container(#[case] step: Step) {
    const FD: i32 = 9;
    let script = "ls /proc/1/fd; echo ready; sleep 30";
    let mut running = Runner::in_container(step, &["/bin/sh", "-c", script]).extra_fd(FD).spawn();
    running.wait_for_line("ready");
    let runtime = running.pid();
    let runtime_fd = std::fs::read_link(format!("/proc/{runtime}/fd/{FD}"));
    let runtime_has_fd = runtime_fd.is_ok_and(|target| target == std::path::Path::new("/dev/null"));
    let (running, init) = running.container_init(step);
    host::kill(init, Signal::SIGKILL); // the listing is done: end the container
    let output = running.wait();
    assert!(
        runtime_has_fd,
        "the test started {} with /dev/null on descriptor {FD}, but /proc/{runtime}/fd/{FD} \
         is not there: the harness's `extra_fd` did not work, so this test proves nothing.\n\
         {output}",
        step.short()
    );
    let listing: Vec<&str> = output.lines().into_iter().take_while(|l| *l != "ready").collect();
    assert_eq!(
        listing,
        ["0", "1", "2"],
        "{}: `ls /proc/1/fd` in the container should list only 0, 1 and 2 (stdin, stdout, \
         stderr), yet the runtime's descriptor {FD} (or another) is open in the container's \
         PID 1. Every descriptor without close-on-exec survives fork and exec, so an open file \
         of the runtime (a log, a socket, a secret) would be reachable from inside. The child \
         closes all but 0, 1 and 2 with close_range(3, ~0) before it execs: see `start_clean` in \
         {}, and {}.\n{output}",
        step.short(),
        source(step),
        step.chapter()
    );
}

//! A container's life, seen from the host: how it ends, and what it leaves behind.
//!
//! A runtime hands its container's exit status back to whoever started it, and
//! 128+N when signal N killed it, as a shell reports it. When the container's
//! PID 1 ends, the kernel ends the rest of its PID namespace. When the runtime
//! is killed, step04 takes its container along (PR_SET_PDEATHSIG), where step03
//! leaves it running. And none of the runtime's open files leak into step04's
//! container. step05, which reuses step04's runtime, keeps every one of these.

use nix::sys::signal::Signal;
use rstest::rstest;
use rstest_reuse::apply;
use workshop_tests::{Output, Runner, Step, Transcript, every_step, host, in_background};

/// How long a process may take to vanish after the kernel was told to end it.
const VANISH_SECONDS: f64 = 3.0;

/// How long step03's container must outlive its killed runtime to count as left behind.
const OUTLIVE_SECONDS: f64 = 0.5;

/// The step's source file, for failure messages. step05's runtime is
/// step04's, called from the kit, with a child of its own; step06's init is
/// in the kit.
fn source(step: Step) -> String {
    match step {
        Step::Step05PivotRoot => "kit/src/pivot_root.rs (its `fork_and_wait`, `container` and \
             `start_sealed` call step04's `wait_for`, `start_clean`, `mount_proc` and `exec`, in \
             step04-full-demo/src/main.rs)"
            .to_string(),
        Step::Step06Init | Step::Step07Overlay | Step::Step08Cgroups => {
            "kit/src/init.rs".to_string()
        }
        _ => format!("{}/src/main.rs", step.name()),
    }
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
        Step::Step04FullDemo => {
            "`wait_for`, where the parent of (4) waits: Exited(code) becomes code, \
             Signaled(N) becomes 128+N"
        }
        Step::Step05PivotRoot => {
            "step04's `wait_for`, where the parent of `fork_and_wait` waits: Exited(code) \
             becomes code, Signaled(N) becomes 128+N"
        }
        Step::Step06Init | Step::Step07Overlay | Step::Step08Cgroups => {
            "(5) `reap`, where the init collects the command: Exited(code) becomes code, \
             Signaled(N) becomes 128+N, the init's exit code, which the runtime's `wait_for` \
             passes on"
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
        Step::Step04FullDemo => {
            "sections (1) `new_namespaces` (CLONE_NEWPID) and (4) `fork_container` (the child \
             is the namespace's PID 1)"
        }
        Step::Step05PivotRoot => {
            "step04's `new_namespaces` (CLONE_NEWPID), called first in `run`, and \
             `fork_and_wait` (the child is the namespace's PID 1)"
        }
        Step::Step06Init | Step::Step07Overlay | Step::Step08Cgroups => {
            "step04's `new_namespaces` (CLONE_NEWPID), and (1) `fork_init` (the child, the \
             namespace's PID 1, is the init)"
        }
    }
}

/// The command's exit status is the runtime's: 0, 1, 42 and 255 come through as they are.
#[apply(every_step)]
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
#[apply(every_step)]
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

/// From the host, too, PID 1 of a PID namespace gets only the signals it has
/// a handler for, except SIGKILL and SIGSTOP: the container's `sh`, which has
/// no SIGTERM handler, lives through the host's SIGTERM, and dies of SIGKILL.
/// (step05's case is `sigterm_to_pid1` in init.rs, beside step06's, whose
/// init passes SIGTERM on.)
#[rstest]
#[case::step04_full_demo(Step::Step04FullDemo)]
fn pid1_ignores_sigterm_from_the_host(#[case] step: Step) {
    let mut running =
        Runner::in_container(step, &["/bin/sh", "-c", "echo ready; sleep 30"]).spawn();
    running.wait_for_line("ready");
    let (running, init) = running.container_init(step);
    host::kill(init, Signal::SIGTERM);
    let died_of_sigterm = host::eventually(OUTLIVE_SECONDS, || !host::alive(init));
    host::kill(init, Signal::SIGKILL); // from an ancestor PID namespace: always delivered
    let output = running.wait();
    assert!(
        !died_of_sigterm,
        "{}: the host sent SIGTERM to the container's PID 1 (host PID {init}), which has no \
         handler for it, and it died: PID 1 of a PID namespace should get only the signals it \
         handles, SIGKILL and SIGSTOP from an ancestor namespace excepted (pid_namespaces(7)). \
         See {}, \"PID 1 and signals\".\n{output}",
        step.short(),
        step.chapter()
    );
    output.expect_code(128 + Signal::SIGKILL as i32, "SIGKILL from the host ends PID 1");
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
#[case::step05_pivot_root(Step::Step05PivotRoot)]
#[case::step06_init(Step::Step06Init)]
#[case::step07_overlay(Step::Step07Overlay)]
#[case::step08_cgroups(Step::Step08Cgroups)]
fn pid1_exit_empties_the_namespace(#[case] step: Step) {
    let seconds = unique_seconds(step);
    let script = format!("{}; echo \"started $!\"", in_background(&format!("sleep {seconds}")));
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
#[case::step05_pivot_root(Step::Step05PivotRoot)]
#[case::step06_init(Step::Step06Init)]
#[case::step07_overlay(Step::Step07Overlay)]
#[case::step08_cgroups(Step::Step08Cgroups)]
fn killing_the_runtime_kills_the_container(#[case] step: Step) {
    let script = format!("{}; echo ready; sleep 30", in_background("sleep 30"));
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
    // The transcript takes stdout and stderr as one stream, in the order written.
    let (ours, shells): (Vec<&str>, Vec<&str>) =
        output.stdout.lines().partition(|line| line.starts_with("step03-pid-ns:"));
    assert!(
        output.code() != 0 && shells.iter().any(|line| line.to_lowercase().contains("fork")),
        "step03 --no-fork: the shell's first child (/bin/true) becomes PID 1 of the new PID \
         namespace and exits, which ends the namespace: the second /bin/true cannot be forked \
         (ENOMEM), and the shell should fail saying so (dash: \"Cannot fork\", bash: \"fork: \
         Cannot allocate memory\"). See `explain_no_fork` in {} and {}.\n{output}",
        source(step),
        step.chapter()
    );
    let position = |prefix: &str| output.stdout.lines().position(|l| l.starts_with(prefix));
    assert!(
        matches!((position("step03-pid-ns:"), position("pid=")), (Some(a), Some(b)) if a < b),
        "step03 --no-fork should explain what is about to happen before the shell runs, so a \
         terminal shows the explanation (stderr) before the shell's `pid=` line (stdout).\n{output}"
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

/// `exit` from an interactive dash that is PID 1 of a new PID namespace
/// prints "Cannot set tty process group (No such process)": at start, dash
/// notes the terminal's foreground process group, which belongs to the host's
/// PID namespace and so reads as 0 inside; at exit, it fails to hand the
/// terminal back to group 0. util-linux's `unshare --pid --fork --mount-proc`
/// gives the same; the same shell without a new PID namespace does not. The
/// terminal is a pseudo-terminal from util-linux's `script`. (The transcript's
/// first two lines are the command the test ran and the line it typed.)
#[rstest]
#[case::step03_pid_ns(Some(Step::Step03PidNs))]
#[case::util_linux_unshare(None)]
fn exit_from_an_interactive_dash_as_pid1(#[case] step: Option<Step>) {
    if !host_sh_is_dash() {
        eprintln!(
            "note: /bin/sh is not dash, which is the shell whose message this test checks: \
             nothing compared"
        );
        return;
    }
    let runtime = match step {
        Some(step) => workshop_tests::binary(step).display().to_string(),
        None => format!("{} --pid --fork --mount-proc", host::util_linux_unshare()),
    };
    let run = |command: &str| {
        Runner::program("script", ["-qec", command, "/dev/null"]).stdin("exit\n").run()
    };
    let message = "Cannot set tty process group (No such process)";
    let output = run(&format!("{runtime} /bin/sh"));
    let line = output.stdout.lines().find(|l| l.contains(message)).map(|l| {
        l.trim_end_matches('\r').trim_start_matches("# ").to_string() // the prompt, the pty's \r
    });
    let Some(line) = line else {
        panic!(
            "`{runtime} /bin/sh` in a terminal, then `exit`: dash, as PID 1 of a new PID \
             namespace, should say {message:?} as it exits, since the terminal's foreground \
             process group is one of the host's, which it sees as 0.\n{output}"
        );
    };
    let control = run("/bin/sh");
    assert!(
        !control.stdout.contains(message),
        "the same dash, in no new PID namespace, should exit quietly.\n{control}"
    );
    // The terminal's foreground process group (field 8 of /proc/self/stat,
    // proc(5)), seen from inside the new PID namespace, then from outside.
    let tpgid = |command: &str| {
        let probe = format!("{command} /bin/sh -c 'cut -d\" \" -f8 /proc/self/stat'");
        let output = Runner::program("script", ["-qec", probe.as_str(), "/dev/null"]).run();
        output.stdout.trim().to_string()
    };
    let (inside, outside) = (tpgid(&runtime), tpgid(""));
    assert!(
        inside == "0" && outside.parse::<i32>().is_ok_and(|g| g > 0),
        "the terminal's foreground process group, a group of the host's PID namespace, should \
         read as 0 from inside the new one (it is {inside:?}), and as its number outside (it is \
         {outside:?})"
    );
    if step.is_some() {
        let shown = "$ sudo ./target/debug/step03-pid-ns\n# exit\n";
        Transcript(format!("{shown}{line}\n")).assert_matches("step03_exit_tty");
    }
}

/// Why a runtime waits for its container: the shell it was typed into gives
/// the terminal to the runtime's process group, and takes it back when the
/// runtime exits. In a terminal (util-linux's `script`), an interactive host
/// shell starts step03, whose container shell reads a line from the terminal.
/// While the runtime waits, that works. When the runtime is gone first (the
/// test kills it, as if it had not waited), the host shell takes the terminal
/// back, and the container's read fails: its process group is no longer the
/// terminal's foreground group, and, orphaned, gets EIO (credentials(7)).
#[rstest]
#[case::step03_pid_ns_waits(false)]
#[case::step03_pid_ns_killed(true)]
fn the_runtime_waits_so_the_container_keeps_the_terminal(#[case] kill_the_runtime: bool) {
    let step = Step::Step03PidNs;
    let dir = workshop_tests::scratch()
        .join(format!("terminal-{}-{kill_the_runtime}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory for the test's marker files");
    let (go, end) = (dir.join("go"), dir.join("end"));
    let wait_for = |file: &std::path::Path| {
        format!("while [ ! -e '{}' ]; do sleep 0.05; done", file.display())
    };
    // The container's shell: say it is up, wait for the test, read a line.
    // (The quotes keep the terminal's echo of the command from matching.)
    let container = format!(
        "echo container is \"up\"; {}; sleep 0.3; read line; echo \"read\" \"status $? line $line\"",
        wait_for(&go)
    );
    let typed = format!("{} /bin/sh -c '{container}'", workshop_tests::binary(step).display());
    // What is typed at the terminal: the command, then a line, then `exit`.
    let feeder = format!(
        "{{ printf '%s\\n' \"$TYPED\"; {}; printf 'hello\\n'; {}; printf 'exit\\n'; }} | \
         script -qec 'sh -i' /dev/null",
        wait_for(&go),
        wait_for(&end)
    );
    let mut running =
        Runner::program("/bin/sh", ["-c", feeder.as_str()]).env("TYPED", &typed).spawn();
    running.wait_for_line("container is up");
    if kill_the_runtime {
        let runtime = host::process_tree(running.pid()).into_iter().find(|&pid| {
            host::cmdline(pid)
                .is_some_and(|c| c.starts_with(&workshop_tests::binary(step).display().to_string()))
                && host::ns_pids(pid).len() == 1 // the runtime, in the host's PID namespace
        });
        let Some(runtime) = runtime else {
            std::fs::write(&end, "").ok();
            running.abort("the runtime (step03) is not among the test's processes");
        };
        host::kill(runtime, Signal::SIGKILL);
        host::eventually(VANISH_SECONDS, || !host::alive(runtime));
    }
    std::fs::write(&go, "").expect("tell the container to read");
    running.wait_for_line("read status");
    std::fs::write(&end, "").expect("tell the terminal to exit");
    let output = running.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let status = output
        .stdout
        .lines()
        .find_map(|l| l.trim_start_matches("# ").strip_prefix("read status "))
        .map(|rest| rest.trim_end_matches('\r').to_string())
        .unwrap_or_default();
    if kill_the_runtime {
        assert!(
            !status.is_empty() && !status.starts_with('0'),
            "{}: with its runtime gone, the container's shell should no longer be able to read \
             the terminal: the host shell took it back when the runtime ended. It read \
             ({status:?}). See {}, \"The parent waits\".\n{output}",
            step.short(),
            step.chapter()
        );
    } else {
        assert_eq!(
            status,
            "0 line hello",
            "{}: while the runtime waits, the container's shell has the terminal, and should read \
             the line typed into it. See {}, \"The parent waits\".\n{output}",
            step.short(),
            step.chapter()
        );
    }
}

/// An interactive shell catches SIGINT, so PID 1 gets Ctrl-C; a shell
/// reading a script does not. The shell's `SigCgt` (proc(5)), read in a
/// container started from a terminal (util-linux's `script`) and from a pipe.
#[rstest]
#[case::step04_full_demo(Step::Step04FullDemo)]
#[case::step05_pivot_root(Step::Step05PivotRoot)]
fn interactive_pid1_catches_sigint(#[case] step: Step) {
    let caught = |output: &Output| {
        let mask = output.stdout.lines().find_map(|l| l.split("SigCgt:").nth(1))?;
        let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
        Some(mask & (1 << (Signal::SIGINT as u64 - 1)) != 0)
    };
    let probe = "grep SigCgt /proc/1/status\nexit\n";
    let command = step.args_for(workshop_tests::alpine_rootfs(), &[]);
    let in_terminal = format!("{} {}", workshop_tests::binary(step).display(), command.join(" "));
    let terminal =
        Runner::program("script", ["-qec", in_terminal.as_str(), "/dev/null"]).stdin(probe).run();
    let piped = Runner::in_container(step, &[]).stdin(probe).run();
    assert_eq!(
        (caught(&terminal), caught(&piped)),
        (Some(true), Some(false)),
        "{}: the container's shell, PID 1, should catch SIGINT when it is interactive (in a \
         terminal), and not when it reads a script: PID 1 gets only the signals it catches, so \
         Ctrl-C reaches an interactive shell. See {}, \"PID 1 and signals\".\n{terminal}\n{piped}",
        step.short(),
        step.chapter()
    );
}

/// No file descriptor of the runtime but stdin, stdout and stderr is open in
/// the container's PID 1, from step04 on: the runtime is started with
/// /dev/null on descriptor 9.
#[rstest]
#[case::step04_full_demo(Step::Step04FullDemo)]
#[case::step05_pivot_root(Step::Step05PivotRoot)]
#[case::step06_init(Step::Step06Init)]
#[case::step07_overlay(Step::Step07Overlay)]
#[case::step08_cgroups(Step::Step08Cgroups)]
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

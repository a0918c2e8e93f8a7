//! Step06's init, seen from the host. PID 1 of a PID namespace has duties an
//! ordinary command does not expect; until step06 the command *is* PID 1, and
//! these tests show what goes wrong (cases named after the step before, step05,
//! or step04 where the issue names it), then that step06's init does the job:
//!
//! - orphans are re-parented to PID 1, which must reap them, or they stay zombies;
//! - a signal to PID 1 without a handler is dropped: `kill -TERM` does nothing;
//! - Ctrl-C reaches the command once, not a second time through the init;
//! - the container dies with its runtime even when its command changes user
//!   (which clears PR_SET_PDEATHSIG);
//! - `step06-init enter PID` runs a command inside a running container.
//!
//! The transcripts of the book's chapter come from here too.

use std::process::Command;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use rstest::rstest;
use workshop_tests::transcript::{procps_columns, shown};
use workshop_tests::{Output, Privilege, Runner, Running, Step, Transcript, host};

/// How long a process may take to vanish after the kernel was told to end it.
const VANISH_SECONDS: f64 = 3.0;

/// How long something must stay as it is to count as staying so.
const OUTLIVE_SECONDS: f64 = 0.5;

/// Where step06's init is, for failure messages.
const INIT: &str = "kit/src/init.rs";

/// Where step06's `enter` is, for failure messages.
const ENTER: &str = "kit/src/enter.rs";

/// Whether the container's PID 1 is step06's init (step06 and later), or the
/// command itself (up to step05), whose problems the cases before step06 show.
fn has_init(step: Step) -> bool {
    step >= Step::Step06Init
}

/// Starts `command` in a container of `step`, waits until it runs (a process
/// of the runtime's tree has exactly that command line), and returns the run
/// and the host PID of the container's PID 1.
fn start(step: Step, command: &[&str]) -> (Running, i32) {
    start_until(step, command, &command.join(" "))
}

/// Starts `command` in a container of `step` and waits until a process of the
/// runtime's tree has the command line `runs`; returns the run and the host
/// PID of the container's PID 1.
fn start_until(step: Step, command: &[&str], runs: &str) -> (Running, i32) {
    let running = Runner::in_container(step, command).spawn();
    let runtime = running.pid();
    let running_it = |pid: i32| host::cmdline(pid).is_some_and(|c| c == runs);
    if !host::eventually(VANISH_SECONDS, || host::process_tree(runtime).into_iter().any(running_it))
    {
        let message = format!("`{runs}` never ran in the container of {}", step.short());
        running.abort(&message);
    }
    running.container_init(step)
}

/// Starts `command` in the background of the container and leaves it there as
/// an orphan: the subshell `( … )` that started it exits at once, so the kernel
/// re-parents it to PID 1 of the PID namespace. (A background job needs the
/// container's /dev/null: from step05 on.)
fn orphan(command: &str) -> String {
    format!("({command} &)")
}

/// `ps` on the host (procps), run by the test: the command line and its
/// output, with the PIDs masked as the book shows them.
fn host_ps(args: &[&str], masks: &Masks) -> String {
    let output = Command::new("ps").args(args).output().expect("run the host's ps");
    let table: String = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| masks.leading_columns(line) + "\n")
        .collect();
    let shown: Vec<String> = args.iter().map(|arg| masks.list(arg)).collect();
    format!("$ ps {}\n{}", shown.join(" "), procps_columns(&table))
}

/// Host PIDs change from run to run; the book shows others: the runtime is
/// 4241, the container's PID 1 is 4242, and the processes of the container a
/// transcript names follow from 4243.
struct Masks(Vec<(i32, String)>);

impl Masks {
    /// Masks for the runtime `running`, then `pids`: the container's PID 1,
    /// and the processes of the container the transcript shows, in order.
    fn of(running: &Running, pids: &[i32]) -> Masks {
        let shown = pids.iter().zip(4242..).map(|(&pid, shown)| (pid, shown.to_string()));
        Masks(std::iter::once((running.pid(), "4241".to_string())).chain(shown).collect())
    }

    /// What the book shows for `pid`.
    fn shown(&self, pid: i32) -> String {
        self.0.iter().find(|(p, _)| *p == pid).map_or(pid.to_string(), |(_, s)| s.clone())
    }

    /// `word` with each PID of a comma-separated list masked (`4242,4243`);
    /// any other word as it is.
    fn list(&self, word: &str) -> String {
        let pids: Option<Vec<i32>> = word.split(',').map(|p| p.parse().ok()).collect();
        match pids {
            Some(pids) => pids.iter().map(|&p| self.shown(p)).collect::<Vec<_>>().join(","),
            None => word.to_string(),
        }
    }

    /// A line of `ps` with its leading numeric columns (PID, PPID) masked,
    /// and the rest as it is: a command's own numbers are no PIDs.
    fn leading_columns(&self, line: &str) -> String {
        let mut rest = line;
        let mut masked = Vec::new();
        while let Some(word) = rest.split_whitespace().next().filter(|w| w.parse::<i32>().is_ok()) {
            masked.push(self.list(word));
            rest = &rest.trim_start()[word.len()..];
        }
        if masked.is_empty() { line.to_string() } else { masked.join(" ") + rest }
    }
}

/// `ps` on the host of the container's PID 1 (host PID `init`) and its
/// children, with `columns`.
fn ps_of_pid1(init: i32, columns: &str, masks: &Masks) -> String {
    let init = init.to_string();
    host_ps(&["-o", columns, "--pid", &init, "--ppid", &init], masks)
}

/// `kill -SIGNAL PID` on the host, run by the test as the book shows it.
fn host_kill(signal: &str, pid: i32, masks: &Masks) -> String {
    let status = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()), "the host's `kill -{signal} {pid}` failed");
    format!("$ sudo kill -{signal} {}\n", masks.shown(pid))
}

/// The book's transcript of a problem or its fix, as two terminals show it:
/// the container started in the first, what the host sees in the second, then
/// the first again, if `first_again` says something.
fn two_terminals(runtime: &Output, second: &str, first_again: &str) -> Transcript {
    let started = shown(runtime);
    let mut text = format!("# terminal 1\n$ {started}\n# terminal 2\n{second}");
    if !first_again.is_empty() {
        text += &format!("# terminal 1\n{first_again}");
    }
    Transcript(text)
}

/// `echo $?` after the runtime ended, as the book shows it.
fn echo_status(output: &Output) -> String {
    format!("$ echo $?\n{}\n", output.code())
}

/// The orphan under `init`: its child running `sleep 1`.
fn find_orphan(init: i32) -> Option<i32> {
    host::children_of(init).into_iter().find(|&p| host::cmdline(p).as_deref() == Some("sleep 1"))
}

/// A child that ends is a zombie until its parent collects its status with
/// wait(2). An orphan's parent is PID 1: under step05 that is the command,
/// here `sleep 30`, which never calls wait(2) for a child it does not know,
/// and the orphan stays a zombie. step06's init reaps it. The book shows the
/// host's `ps` of both.
#[rstest]
#[case::step05_pivot_root(Step::Step05PivotRoot, "step05_zombie")]
#[case::step06_init(Step::Step06Init, "step06_no_zombie")]
fn orphans_are_reaped(#[case] step: Step, #[case] transcript: &str) {
    let script = format!("{}; exec sleep 30", orphan("sleep 1"));
    let (running, init) = start_until(step, &["/bin/sh", "-c", &script], "sleep 30");
    let Some(orphan) = find_orphan(init) else {
        let message = format!(
            "{}: the subshell's background `sleep 1` should have been re-parented to the \
             container's PID 1 (host PID {init}) when the subshell exited; PID 1 has no such \
             child: {:?}",
            step.short(),
            host::children_of(init)
        );
        running.abort(&message);
    };
    let reaped = host::eventually(VANISH_SECONDS, || {
        host::process(orphan).is_none_or(|p| p.ppid != init) // gone, not a zombie
    });
    let zombie = !reaped && host::process(orphan).is_some_and(|p| p.state == 'Z');
    let pids = format!("{init},{orphan}");
    let ps =
        host_ps(&["-o", "pid,ppid,stat,args", "-p", &pids], &Masks::of(&running, &[init, orphan]));
    host::kill(init, Signal::SIGKILL); // done: end the container from the host
    let output = running.wait();
    if !has_init(step) {
        assert!(
            zombie,
            "{}: the command is PID 1 and never calls wait(2), so the orphan `sleep 1` (host PID \
             {orphan}) should have stayed a zombie once it ended: this case shows the problem \
             step06 fixes. It did not (reaped: {reaped}).\n{output}",
            step.short()
        );
    } else {
        assert!(
            reaped,
            "{}: the orphan `sleep 1` (host PID {orphan}), re-parented to the init, ended and \
             {} {VANISH_SECONDS} s later: the init must collect every child that ends, the \
             command and any orphan, with waitpid(-1, WNOHANG) until none is left, each time \
             SIGCHLD comes. See (5) `reap` in {INIT}, and {}.\n{output}",
            step.short(),
            if zombie { "was still a zombie" } else { "was still there" },
            step.chapter()
        );
    }
    two_terminals(&output, &ps, "").assert_matches(transcript);
}

/// The kernel drops a signal sent to PID 1 of a PID namespace unless PID 1
/// has a handler for it (only SIGKILL and SIGSTOP from an ancestor namespace
/// get through): `kill -TERM` from the host does nothing to step05's `sleep`.
/// step06's init blocks SIGTERM, so it is kept for it, and passes it on: the
/// command dies of it, and the runtime reports 128+15 = 143.
#[rstest]
#[case::step05_pivot_root(Step::Step05PivotRoot, "step05_sigterm")]
#[case::step06_init(Step::Step06Init, "step06_sigterm")]
fn sigterm_to_pid1(#[case] step: Step, #[case] transcript: &str) {
    let (running, init) = start(step, &["/bin/sleep", "1000"]);
    let masks = Masks::of(&running, &[init]);
    let runtime = running.pid().to_string();
    let mut second = host_ps(&["-o", "pid,ppid,args", "--ppid", &runtime], &masks);
    second += &host_kill("TERM", init, &masks);
    let seconds = if has_init(step) { VANISH_SECONDS } else { OUTLIVE_SECONDS };
    let ended = host::eventually(seconds, || !host::alive(init));
    if !ended {
        second += &host_ps(&["-o", "pid,stat,args", "-p", &init.to_string()], &masks);
        second += &host_kill("KILL", init, &masks); // from the host: it gets through to PID 1
    }
    let output = running.wait();
    if !has_init(step) {
        assert!(
            !ended && output.code() == 128 + Signal::SIGKILL as i32,
            "{}: its PID 1 is `sleep`, which has no handler for SIGTERM, so the kernel should \
             have dropped the host's `kill -TERM` and the container run on until SIGKILL (137): \
             the problem step06 fixes.\n{output}",
            step.short()
        );
    } else {
        assert!(
            ended,
            "{}: `kill -TERM` to the container's PID 1 (host PID {init}) should end the command: \
             the init blocks SIGTERM (a blocked signal is kept for PID 1, where a signal without \
             a handler is dropped), takes it with sigwait and sends it on to the command. \
             {VANISH_SECONDS} s later the container was still running (the test killed it). See \
             (2) `block_signals` and (4) `forward` in {INIT}, and {}.\n{output}",
            step.short(),
            step.chapter()
        );
        output.expect_code(
            128 + Signal::SIGTERM as i32,
            &format!(
                "the command died of the forwarded SIGTERM (15), and the init exits with 128+15, \
                 as a shell reports it, which the runtime passes on. See (5) `reap` in {INIT}, \
                 and {}",
                step.chapter()
            ),
        );
    }
    two_terminals(&output, &second, &echo_status(&output)).assert_matches(transcript);
}
/// Each of the six signals the init forwards, sent to the container's PID 1
/// from the host, reaches the command, which traps them all.
#[rstest]
#[case::step06_init(Step::Step06Init)]
fn signals_to_pid1_reach_the_command(#[case] step: Step) {
    let names = ["HUP", "INT", "QUIT", "USR1", "USR2", "TERM"];
    let traps: String =
        names.iter().map(|name| format!("trap 'echo got {name}' {name}; ")).collect();
    let script = format!("{traps}echo ready; while :; do sleep 0.05; done");
    let mut running = Runner::in_container(step, &["/bin/sh", "-c", &script]).spawn();
    running.wait_for_line("ready");
    let (mut running, init) = running.container_init(step);
    let signals = [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGTERM,
    ];
    for (signal, name) in signals.into_iter().zip(names) {
        host::kill(init, signal);
        if !running.prints_line_within(&format!("got {name}"), VANISH_SECONDS) {
            let message = format!(
                "{}: the host sent SIG{name} to the container's PID 1 (host PID {init}), and the \
                 command, which traps it, never said `got {name}`: the init should block the six \
                 signals it forwards (and SIGCHLD), wait for them with sigwait, and kill(2) the \
                 command with each. See (2) `block_signals` and (4) `forward` in {INIT}, and {}.",
                step.short(),
                step.chapter()
            );
            running.abort(&message);
        }
    }
    host::kill(init, Signal::SIGKILL);
    running.wait();
}

/// Ctrl-C: the terminal sends SIGINT to every process of its foreground job,
/// the runtime's process group. The command gets it there; the init must not
/// get it too, or it passes it on and the command gets Ctrl-C twice (for
/// many programs, a second Ctrl-C means "quit now, skip the clean-up"). The
/// test stops the init while it sends the job's SIGINT, so that a copy
/// forwarded by the init would come late enough to be seen apart.
#[rstest]
#[case::step06_init(Step::Step06Init)]
fn ctrl_c_reaches_the_command_once(#[case] step: Step) {
    let script = "trap 'echo got INT' INT; echo ready; while :; do sleep 0.05; done";
    let mut running = Runner::in_container(step, &["/bin/sh", "-c", script]).spawn();
    running.wait_for_line("ready");
    let (mut running, init) = running.container_init(step);
    let job = running.pid(); // the harness gives each run a process group: the job
    let command = host::children_of(init);
    let groups: Vec<i32> =
        [init].iter().chain(&command).filter_map(|&p| host::process(p)).map(|p| p.pgrp).collect();
    host::kill(init, Signal::SIGSTOP); // from the host: it gets through to PID 1
    let _ = nix::sys::signal::killpg(Pid::from_raw(job), Signal::SIGINT); // as the terminal does
    let once = running.prints_line_within("got INT", VANISH_SECONDS);
    host::kill(init, Signal::SIGCONT);
    let twice = once && running.prints_line_within("got INT", 2.0 * OUTLIVE_SECONDS);
    host::kill(init, Signal::SIGKILL);
    let output = running.wait();
    assert!(
        once,
        "{}: SIGINT sent to the job's process group, as Ctrl-C does, should reach the command, \
         which stays in the terminal's job (the init forks it before it leaves). It never said \
         `got INT`. See (3) `spawn_command` in {INIT}, and {}.\n{output}",
        step.short(),
        step.chapter()
    );
    assert!(
        !twice,
        "{}: the command got the job's SIGINT twice: once from the terminal, once more from the \
         init, which was in the job too and forwarded it. The init should leave the terminal's \
         job, setpgid(0, 0), once it has forked the command (process groups, init then \
         command: {groups:?}, the job is {job}). See (3) `spawn_command` in {INIT}, and {}.\
         \n{output}",
        step.short(),
        step.chapter()
    );
}

/// PR_SET_PDEATHSIG is cleared when a process changes its credentials, so
/// under step04, and step05 which kept its child, a command that becomes
/// another user with su(1) outlives a runtime killed with SIGKILL (the book
/// shows step05's). step06's init never changes credentials and keeps
/// PR_SET_PDEATHSIG: it dies with the runtime, and the kernel kills the rest
/// of its PID namespace with it.
///
/// Becoming `nobody` needs a second user in the container's user namespace:
/// rootless, only root is mapped, and the kernel refuses su; the test checks
/// that refusal instead (the rest of the lesson is
/// `killing_the_runtime_kills_the_container` in lifecycle.rs).
#[rstest]
#[case::step04_full_demo(Step::Step04FullDemo)]
#[case::step05_pivot_root(Step::Step05PivotRoot)]
#[case::step06_init(Step::Step06Init)]
fn su_in_the_container_then_the_runtime_killed(#[case] step: Step) {
    let su = ["/bin/su", "-s", "/bin/sh", "nobody", "-c", "exec sleep 1001"];
    if *workshop_tests::require_privilege() != Privilege::Root {
        let output = Runner::in_container(step, &su).run();
        assert!(
            output.code() != 0 && output.stderr.contains("su:"),
            "{} rootless: only root is mapped in the container's user namespace, so `su nobody` \
             should be refused.\n{output}",
            step.short()
        );
        return;
    }
    let (running, init) = start_until(step, &su, "sleep 1001");
    let sleep = host::process_tree(init)
        .into_iter()
        .find(|&p| host::cmdline(p).as_deref() == Some("sleep 1001"))
        .expect("start_until found it");
    let uid = std::fs::read_to_string(format!("/proc/{sleep}/status")).unwrap_or_default();
    let as_nobody = uid.lines().any(|l| l.starts_with("Uid:") && l.contains("65534"));
    let masks = Masks::of(&running, &[init, sleep]);
    let mut second = ps_of_pid1(init, "pid,ppid,user,args", &masks);
    let runtime = running.pid();
    second += &host_kill("9", runtime, &masks);
    if !host::eventually(VANISH_SECONDS, || !host::alive(runtime)) {
        running.abort(&format!("the runtime (host PID {runtime}) outlived SIGKILL"));
    }
    let container = host::process_tree(init); // what is left of it
    let mut left = vec![init];
    if sleep != init {
        left.push(sleep);
    }
    let seconds = if has_init(step) { VANISH_SECONDS } else { OUTLIVE_SECONDS };
    let gone = host::eventually(seconds, || {
        left.retain(|&p| host::alive(p));
        left.is_empty()
    });
    // The command: the init is dead too, but a zombie until the host's init
    // collects it, at a moment that depends on the machine.
    second += &host_ps(&["-o", "pid,user,args", "-p", &sleep.to_string()], &masks);
    let survivors: Vec<String> = left
        .iter()
        .map(|&p| format!("    {p}: {}", host::cmdline(p).unwrap_or_default()))
        .collect();
    host::kill_all(&left); // ours, by PID: the container's processes
    let output = running.allow_leftovers().wait();
    assert!(as_nobody, "{}: `sleep 1001` should run as nobody (uid 65534)\n{output}", step.short());
    if !has_init(step) {
        assert!(
            !gone && left.contains(&sleep),
            "{}: su changed the command's credentials, which clears PR_SET_PDEATHSIG, so \
             `sleep 1001` (host PID {sleep}) should have outlived the runtime killed with \
             SIGKILL: the problem step06 fixes. It was gone within {OUTLIVE_SECONDS} s \
             (container then: {container:?}).\n{output}",
            step.short()
        );
    } else {
        assert!(
            gone,
            "{}: after the runtime was killed with SIGKILL, processes of the container were \
             still running {VANISH_SECONDS} s later (the test killed them):\n{}\nThe init must \
             hold PR_SET_PDEATHSIG (step04's `start_clean`, first thing after the fork) and \
             never change its credentials, which would clear it: then it dies with the runtime, \
             and the kernel kills its whole PID namespace, `su nobody` or not. See `init` in \
             {INIT}, and {}.\n{output}",
            step.short(),
            survivors.join("\n"),
            step.chapter()
        );
    }
    let transcript = format!("{step}_su_then_kill_9", step = step.short());
    two_terminals(&output, &second, "").assert_matches(&transcript);
}

/// The command of `enter`, run as the learner runs it: as root, or rootless as
/// the user who owns the container's user namespace (see
/// `Runner::in_host_user_namespace`).
fn enter(init: i32, command: &[&str]) -> Runner {
    let args = ["enter".to_string(), init.to_string()];
    let args = args.into_iter().chain(command.iter().map(|word| word.to_string()));
    Runner::step(Step::Step06Init, args).in_host_user_namespace()
}

/// `step06-init enter PID` starts a shell in the running container: its `ps`
/// lists the container's processes, the init and its command, and the entered
/// shell and `ps` themselves, so they were born in the container's PID
/// namespace. The book's transcript, with the host's view first.
#[rstest]
#[case::step06_init(Step::Step06Init)]
fn enter_a_running_container(#[case] step: Step) {
    let (running, init) = start(step, &["/bin/sleep", "1000"]);
    let masks = Masks::of(&running, &[init]);
    let runtime = running.pid().to_string();
    let ps = host_ps(&["-o", "pid,ppid,args", "--ppid", &runtime], &masks);
    let (entered, output) = Transcript::shell(enter(init, &[]), "/ # ", &["ps"]);
    host::kill(init, Signal::SIGTERM);
    let container = running.wait();
    let rows: Vec<(String, String)> = output
        .lines()
        .into_iter()
        .skip_while(|line| !line.starts_with("PID"))
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields[0].to_string(), fields.get(3..).unwrap_or_default().join(" "))
        })
        .collect();
    let expected = [("1", "step06-init"), ("2", "/bin/sleep 1000"), ("3", "/bin/sh"), ("4", "ps")];
    let matches = rows.len() == expected.len()
        && rows
            .iter()
            .zip(expected)
            .all(|((pid, cmd), (want_pid, want))| pid == want_pid && cmd.starts_with(want));
    assert!(
        output.code() == 0 && matches,
        "{}: `ps` in the shell entered with `enter {init}` should list the container's PID 1 \
         (the init, `step06-init`), its command (`/bin/sleep 1000`) as PID 2, then the entered \
         `/bin/sh` and `ps` itself as PIDs 3 and 4: processes born in the container's PID \
         namespace. It listed {rows:?}. An entered shell missing from the list is still in the \
         host's PID namespace (its children, `ps` among them, are born in the container's): \
         setns(CLONE_NEWPID) only decides where the *children* of the caller are born, so \
         `enter` must fork after it, and the command be its child. See (6) `join` and (7) `fork_in` in {ENTER}, and \
         {}.\n{output}",
        step.short(),
        step.chapter()
    );
    container.expect_code(143, "the host's SIGTERM to PID 1 ended the container");
    let text = format!("{ps}{}", entered.0.replacen(&init.to_string(), &masks.shown(init), 1));
    two_terminals(&container, &text, "").assert_matches("step06_enter");
}

/// The entered command's status is `enter`'s, as `docker exec` passes it on:
/// its exit code, and 127 for a command the container does not have.
#[rstest]
#[case::step06_exit_code(&["/bin/sh", "-c", "exit 3"], 3)]
#[case::step06_not_found(&["/no/such/command"], 127)]
fn enter_passes_the_status_on(#[case] command: &[&str], #[case] code: i32) {
    let step = Step::Step06Init;
    let (running, init) = start(step, &["/bin/sleep", "1000"]);
    let output = enter(init, command).run();
    host::kill(init, Signal::SIGKILL);
    running.wait();
    output.expect_no_panic().expect_code(
        code,
        &format!(
            "the entered command's status is `enter`'s: (7) `fork_in` waits for its child as \
             the runtime does, with step04's `wait_for`. See {ENTER}, and {}",
            step.chapter()
        ),
    );
}

/// `enter` refuses, with a hint, a PID that is no process, and a process that
/// is in no container (in the host's PID namespace, as the runtime is).
#[rstest]
#[case::step06_no_such_process("2147483647", "there is no process 2147483647")]
#[case::step06_not_in_a_container("self", "is not in a container")]
fn enter_refuses_what_is_no_container(#[case] pid: &str, #[case] message: &str) {
    let me = std::process::id().to_string();
    let pid = if pid == "self" { me.as_str() } else { pid };
    let output = Runner::step(Step::Step06Init, ["enter", pid]).in_host_user_namespace().run();
    output.expect_no_panic().expect_code(125, "`enter` itself failed, before any command ran");
    assert!(
        output.stderr.contains(message) && output.stderr.contains("\nhint: "),
        "step06: `enter {pid}` should say {message:?}, with a hint on which PID to give. See \
         `open_target` in {ENTER}.\n{output}"
    );
}

/// What the command inherits is what step05's PID 1 inherits from its runtime:
/// the same signal dispositions and mask (none of the signals the init blocks
/// for itself, SigBlk 0; SIGPIPE not ignored, as the Rust runtime left it),
/// and none of the runtime's open files (started here with /dev/null on
/// descriptor 9): `ls` lists 0, 1, 2 and the directory it reads, 3. Those are
/// checked on step06 itself too, so that a step05 that got them wrong as well
/// does not make step06 pass.
#[rstest]
#[case::step06_signals(&["/bin/grep", "-E", "^Sig(Blk|Ign|Cgt)", "/proc/self/status"], None)]
#[case::step06_files(&["/bin/ls", "/proc/self/fd"], Some(&["0", "1", "2", "3"][..]))]
fn the_command_starts_as_under_step05(#[case] command: &[&str], #[case] listing: Option<&[&str]>) {
    let run = |step| Runner::in_container(step, command).extra_fd(9).run();
    let (step05, step06) = (run(Step::Step05PivotRoot), run(Step::Step06Init));
    step05.expect_success();
    step06.expect_success();
    let lines = step06.lines();
    let mask = |key: &str| -> Vec<u64> {
        let masks = lines.iter().filter_map(|l| l.strip_prefix(key));
        masks.map(|m| u64::from_str_radix(m.trim(), 16).expect("a hexadecimal mask")).collect()
    };
    let sigpipe = 1 << (libc::SIGPIPE - 1);
    let clean = mask("SigBlk:").iter().all(|&m| m == 0)
        && mask("SigIgn:").iter().all(|&m| m & sigpipe == 0)
        && listing.is_none_or(|listing| lines == listing);
    assert!(
        step06.stdout == step05.stdout && clean,
        "step06: `{}` should print the same under step06, where the init starts the command, as \
         under step05, where the runtime's child becomes it: the command starts clean (the \
         init's blocked signals unblocked, SIGPIPE at its default action, no descriptor but 0, \
         1, 2 and the one `ls` opens). The child of (3) `spawn_command` should call \
         `run_command`, which calls step04's `start_clean`. See {INIT}, and {}.\nunder \
         step05:\n{step05}\nunder step06:\n{step06}",
        command.join(" "),
        Step::Step06Init.chapter()
    );
}

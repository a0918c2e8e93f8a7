//! Running a step (or util-linux's unshare, to compare) as a child process,
//! and checking afterwards that it left the host as it found it.
//!
//! In exercise mode (`cargo xtask exercise`), a step whose region is not
//! written yet stops at its `todo!()`: it prints `not yet implemented: (N)
//! <title>: <hint>` and exits with 101 (a forked child's 101 is passed on by
//! its parent). Every run checks for that first, and fails the test with one
//! clear line, [`not_implemented`], instead of whatever else went wrong.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::Signal;

use crate::{Privilege, Step, host, require_privilege};

/// How long a run may take before the harness kills it and fails the test.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A command to run the way the tests run steps. Build it, then `run()` or `spawn()`.
pub struct Runner {
    label: String,
    /// The step this runs, when it is one: for the message of a `todo!()`.
    step: Option<Step>,
    cmd: Command,
    stdin: Vec<u8>,
    mount_namespace: Option<MsFlags>,
    stderr_closed: bool,
    unprivileged: bool,
    /// Run as root of a user namespace even when the tests are root.
    rootless: bool,
    /// stdout and stderr are one pipe, as they are one terminal.
    merged: bool,
    sigpipe_ignored: bool,
    /// Rootless: whether the program gets a user namespace of its own.
    own_user_namespace: bool,
    /// The containers' directory of this run (step07 and later), given with
    /// `WORKSHOP_CONTAINERS_DIR`: see [`Runner::containers_dir`].
    containers: PathBuf,
    /// The program's arguments, given to it when it starts (see [`Runner::spawn`]).
    args: Vec<OsString>,
    /// The `--cgroup-parent` of this run (step08 and later), given with
    /// `WORKSHOP_CGROUP_PARENT`: see [`Runner::cgroup_parent`].
    cgroup_parent: String,
    /// Rootless, step08 and later get `--no-cgroup` unless this is set: see [`Runner::spawn`].
    cgroups_as_given: bool,
}

impl Runner {
    /// Runs `step` with `args`.
    pub fn step<S: Into<OsString>>(step: Step, args: impl IntoIterator<Item = S>) -> Runner {
        let mut runner = Runner::program(crate::binary(step), args);
        runner.cmd.arg0(step.name()); // so that clap's usage says `step04-full-demo`
        runner.label = runner.label.replacen(step.short(), step.name(), 1);
        runner.step = Some(step);
        runner
    }

    /// Runs `command` in a container of `step` on the Alpine rootfs, the way the
    /// book runs each step (see [`Step::args_for`]); an empty `command` starts
    /// the step's shell.
    pub fn in_container(step: Step, command: &[&str]) -> Runner {
        Runner::step(step, step.args_for(crate::alpine_rootfs(), command))
    }

    /// Runs any program the same way, e.g. util-linux's `unshare` or the host's `sh`.
    pub fn program<S: Into<OsString>>(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = S>,
    ) -> Runner {
        let program = program.into();
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let name = program.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let words = args.iter().map(|a| xtask::shell_quote(&a.to_string_lossy()));
        let label = std::iter::once(name).chain(words).collect::<Vec<_>>().join(" ");
        let mut cmd = Command::new(&program);
        cmd.current_dir(crate::scratch());
        let containers = containers_dir_for_a_run();
        cmd.env(kit::overlay::CONTAINERS_DIR_ENV, &containers);
        let cgroup_parent = crate::cgroups::parent_for_a_run();
        cmd.env(kit::cgroup::PARENT_ENV, &cgroup_parent);
        Runner {
            label,
            step: None,
            cmd,
            stdin: Vec::new(),
            mount_namespace: None,
            stderr_closed: false,
            unprivileged: false,
            rootless: false,
            merged: false,
            sigpipe_ignored: false,
            own_user_namespace: true,
            containers,
            args,
            cgroup_parent,
            cgroups_as_given: false,
        }
    }

    /// Where a step from step08 on makes its container's cgroup in this run,
    /// below the cgroup it may write to (the top of each tree, as root),
    /// unless told otherwise with `--cgroup-parent`: a corner of the run's own,
    /// which the harness checks is gone after the run (see [`Running::wait`]).
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// Runs a step from step08 on with its arguments as given, also rootless
    /// where no cgroup tree is delegated: for the test that checks what step08
    /// says then. Others get `--no-cgroup` there (see [`Runner::spawn`]).
    pub fn cgroups_as_given(mut self) -> Runner {
        self.cgroups_as_given = true;
        self
    }

    /// Where a step from step07 on makes its containers' directories in this
    /// run, unless told otherwise with `--containers-dir`: a directory of the
    /// run's own, so that no run removes, and reports, what another one's
    /// killed runtime left (each run removes its own leftovers, after it
    /// ends). Layers kept with `--keep-layer` stay there for the test to look at.
    pub fn containers_dir(&self) -> &std::path::Path {
        &self.containers
    }

    /// Starts the program under another name, its argv[0]: as a later step
    /// that compiles a step's code into its own binary runs it.
    pub fn arg0(mut self, name: &str) -> Runner {
        self.cmd.arg0(name);
        self
    }

    /// What the program reads on its standard input (then end of file).
    pub fn stdin(mut self, text: impl Into<Vec<u8>>) -> Runner {
        self.stdin = text.into();
        self
    }

    /// Sets an environment variable for the program.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Runner {
        self.cmd.env(key, value);
        self
    }

    /// Runs the program in a mount namespace of its own, whose mounts are
    /// private: whatever it mounts vanishes with it. For experiments that
    /// mount on purpose outside any container, like `mount -t proc` in step01.
    pub fn in_private_mount_namespace(mut self) -> Runner {
        self.mount_namespace = Some(MsFlags::MS_PRIVATE);
        self
    }

    /// Runs the program in a mount namespace of its own whose mounts are all
    /// *shared*, as systemd sets up a host: a mount made in a copy of this
    /// namespace propagates back into it, unless the copy made it private.
    pub fn in_shared_mount_namespace(mut self) -> Runner {
        self.mount_namespace = Some(MsFlags::MS_SHARED);
        self
    }

    /// Runs the program as a process of a small simulated host: a new PID
    /// namespace with its own /proc, whose PID 1 is a shell that starts the
    /// program and waits for it (`unshare --pid --fork --mount-proc`). What
    /// the program can see of "the host" is then the same on every machine.
    pub fn on_simulated_host(mut self) -> Runner {
        let program = self.cmd.get_program().to_owned();
        let words: Vec<String> = std::iter::once(program.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        self.args.clear(); // they are in the shell's command line now
        let mut cmd = Command::new(host::util_linux_unshare());
        cmd.args(["--pid", "--fork", "--mount-proc", "/bin/sh", "-c"])
            .arg(format!("{}; exit", words.join(" ")))
            .current_dir(crate::scratch());
        self.cmd = cmd;
        self
    }

    /// Runs the program with the tests' own credentials in the host's user
    /// namespace: as root when the tests are root; rootless, as this user, who
    /// owns the user namespaces of the containers the tests start, and so may
    /// join them (step06's `enter` does), where a user namespace of its own
    /// would give it no privilege over theirs.
    pub fn in_host_user_namespace(mut self) -> Runner {
        self.own_user_namespace = false;
        self
    }

    /// Runs the program as an ordinary user without any user namespace: as
    /// `nobody` when the tests are root, as the test's own user otherwise.
    pub fn unprivileged(mut self) -> Runner {
        self.unprivileged = true;
        self
    }

    /// Starts the program with every signal at its default action but those in
    /// `ignored`, and those in `blocked` blocked: `&[], &[]` is how a shell at
    /// a terminal starts a command, `&[SIGHUP], &[]` how nohup(1) does.
    /// `Command` alone does not quite: glibc's posix_spawn(3), which it uses
    /// when it can, leaves the C library's two internal signals (32 and 33)
    /// ignored in the child. For tests of the signals a step passes on.
    pub fn with_signals(mut self, ignored: &[Signal], blocked: &[Signal]) -> Runner {
        let ignored: Vec<i32> = ignored.iter().map(|&signal| signal as i32).collect();
        let blocked = nix::sys::signal::SigSet::from_iter(blocked.iter().copied());
        // SAFETY: only async-signal-safe syscalls between fork and exec.
        unsafe {
            self.cmd.pre_exec(move || {
                // The kernel's struct sigaction: the handler first, then flags, (on
                // some machines a restorer,) and the mask, all zeros but the handler.
                // Through the raw syscall, because glibc's sigaction(2) refuses its
                // internal signals.
                for signal in 1..=libc::SIGRTMAX() {
                    if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                        let handler = if ignored.contains(&signal) { libc::SIG_IGN } else { 0 };
                        let action = [handler as u64, 0, 0, 0];
                        let (old, size) = (std::ptr::null_mut::<u64>(), 8);
                        libc::syscall(libc::SYS_rt_sigaction, signal, &action, old, size);
                    }
                }
                Ok(blocked.thread_set_mask()?)
            })
        };
        self
    }

    /// Starts the program with its stderr a pipe that nobody reads any more
    /// (as `prog 2>&1 | head -0` would): every write to it fails with EPIPE,
    /// or kills the writer with SIGPIPE. The run's stderr is then empty.
    pub fn stderr_closed(mut self) -> Runner {
        self.stderr_closed = true;
        self
    }

    /// Runs the program rootless, as root of a user namespace of its own (like
    /// `unshare --user --map-root-user --mount`), whether the tests run as root
    /// or not: what a learner without sudo sees. As root, the tests first
    /// become the user who ran sudo (`SUDO_UID`), else `nobody`.
    pub fn rootless(mut self) -> Runner {
        self.rootless = true;
        self
    }

    /// Starts the program in `dir` (the scratch directory otherwise).
    pub fn in_dir(mut self, dir: &std::path::Path) -> Runner {
        self.cmd.current_dir(dir);
        self
    }

    /// Gives the program one pipe for both stdout and stderr, as a terminal
    /// is one screen for both: the output is then in the order it was
    /// written, and [`Output::stdout`] holds all of it ([`Output::merged`]).
    pub fn terminal_order(mut self) -> Runner {
        self.merged = true;
        self
    }

    /// Starts the program with SIGPIPE ignored, as a parent that ignores it
    /// passes it on (an ignored signal stays ignored across fork and exec).
    pub fn sigpipe_ignored(mut self) -> Runner {
        self.sigpipe_ignored = true;
        self
    }

    /// Starts the program with one more open file than stdin, stdout and
    /// stderr: /dev/null on descriptor `fd`, inherited as any open file is
    /// unless it is marked close-on-exec.
    pub fn extra_fd(mut self, fd: i32) -> Runner {
        // SAFETY: only async-signal-safe syscalls between fork and exec.
        unsafe {
            self.cmd.pre_exec(move || {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
                if null < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // open may already have returned `fd` itself: then it is in place.
                if null != fd {
                    if libc::dup2(null, fd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(null);
                }
                Ok(())
            })
        };
        self
    }

    /// A short description for failure messages, e.g. `step04-full-demo rootfs /bin/sh`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Starts the program. It reads `stdin`, and its output is collected.
    ///
    /// A step from step08 on makes a cgroup, which needs root or a cgroup
    /// tree delegated to the user. Run in a user namespace without one, it
    /// refuses, unless told `--no-cgroup` (step08's chapter): there the
    /// harness gives it `--no-cgroup`, first, and the run's label shows it, so
    /// that the claims of earlier steps that step08 shares are tested rootless
    /// too. The tests of its limits make cgroups, and fail rootless saying
    /// what they need; [`Runner::cgroups_as_given`] opts out.
    pub fn spawn(mut self) -> Running {
        let privilege = if self.unprivileged { None } else { Some(require_privilege()) };
        let in_user_namespace = match privilege {
            Some(Privilege::Root) => self.rootless,
            Some(Privilege::Rootless) => true,
            _ => false,
        };
        let makes_cgroups = self.step.is_some_and(|step| step >= Step::Step08Cgroups);
        if makes_cgroups
            && in_user_namespace
            && !self.cgroups_as_given
            && !self.args.iter().any(|arg| arg == "--no-cgroup")
            && (self.rootless || crate::cgroups::rootless_without_cgroups())
        {
            self.args.insert(0, "--no-cgroup".into());
            if let Some(step) = self.step {
                let named = format!("{} --no-cgroup", step.name());
                self.label = self.label.replacen(step.name(), &named, 1);
            }
        }
        self.cmd.args(&self.args);
        // Start as from a terminal, whatever this test process inherited: a
        // shell that ran `cargo test &` has SIGINT and SIGQUIT ignored, and an
        // ignored signal stays ignored across exec (signal(7)). std resets the
        // mask and SIGPIPE only.
        // SAFETY: signal(2) is async-signal-safe.
        unsafe {
            self.cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGQUIT, libc::SIG_DFL);
                Ok(())
            })
        };
        if self.sigpipe_ignored {
            // SAFETY: signal(2) is async-signal-safe. std resets SIGPIPE before
            // running this hook, so the program starts with it ignored.
            unsafe {
                self.cmd.pre_exec(|| {
                    libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                    Ok(())
                })
            };
        }
        match (privilege, self.unprivileged) {
            (Some(Privilege::Root), false) if self.rootless => {
                let (uid, gid) = rootless_user();
                become_user(&mut self.cmd, uid, gid);
                xtask::rootless::map_root_to(&mut self.cmd, uid, gid);
            }
            (Some(Privilege::Rootless), _) if self.own_user_namespace => {
                xtask::rootless::rootless(&mut self.cmd);
            }
            (None, true) if nix::unistd::geteuid().is_root() => become_nobody(&mut self.cmd),
            _ => {}
        }
        if let Some(propagation) = self.mount_namespace {
            let new_namespace = privilege == Some(&Privilege::Root);
            // SAFETY: only async-signal-safe syscalls between fork and exec.
            unsafe {
                self.cmd.pre_exec(move || {
                    if new_namespace {
                        unshare(CloneFlags::CLONE_NEWNS)?;
                    }
                    // Private first: on a host whose mounts are shared (systemd),
                    // the copies would otherwise stay peers of the host's, and a
                    // mount that leaks into this namespace would reach the host.
                    let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
                    mount(None::<&str>, "/", None::<&str>, private, None::<&str>)?;
                    let flags = MsFlags::MS_REC | propagation;
                    Ok(mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)?)
                })
            };
        }
        // A process group of its own: anything left in it after the run is a leak.
        self.cmd.process_group(0);
        self.cmd.stdin(Stdio::piped());
        let merged = if self.merged {
            let (reader, writer) = std::io::pipe().expect("make a pipe");
            let writer_too = writer.try_clone().expect("duplicate a pipe");
            self.cmd.stdout(writer).stderr(writer_too);
            Some(reader)
        } else {
            self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            None
        };
        if self.stderr_closed {
            let (reader, writer) = std::io::pipe().expect("make a pipe");
            drop(reader); // nobody will ever read it
            self.cmd.stderr(writer);
        }
        let mounts_before = host::mountinfo();
        let rootless = self.rootless;
        let mut child = self.cmd.spawn().unwrap_or_else(|err| match rootless {
            // Ordinary users may not make user namespaces here: say what to do.
            true => panic!("{}", xtask::report(&xtask::rootless::explain(err, &self.label))),
            false => panic!("cannot start `{}`: {err}", self.label),
        });
        // Our copies of the pipe's writing end: the reader sees the end when the program is done.
        self.cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let stdin = child.stdin.take().expect("piped stdin");
        let input = self.stdin;
        std::thread::spawn(move || {
            let mut stdin = stdin;
            let _ = stdin.write_all(&input); // the program may exit without reading it all
        });
        let (lines_tx, lines) = mpsc::channel();
        let stdout: Box<dyn Read + Send> = match merged {
            Some(reader) => Box::new(reader),
            None => Box::new(child.stdout.take().expect("piped stdout")),
        };
        let stdout = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap_or_else(|err| format!("<unreadable output: {err}>"));
                all.push_str(&line);
                all.push('\n');
                let _ = lines_tx.send(line);
            }
            all
        });
        let stderr_pipe = child.stderr.take();
        let stderr = std::thread::spawn(move || {
            let mut all = Vec::new();
            if let Some(mut pipe) = stderr_pipe {
                let _ = pipe.read_to_end(&mut all);
            }
            String::from_utf8_lossy(&all).into_owned()
        });
        let as_root = !self.unprivileged;
        Running {
            containers: self.containers,
            cgroup_parent: self.cgroup_parent,
            label: self.label,
            step: self.step,
            as_root,
            rootless: self.rootless,
            merged: self.merged,
            child,
            mounts_before,
            lines,
            stdout,
            stderr,
            leftovers: Check,
        }
    }

    /// Runs the program to the end and returns what it did, after checking
    /// that no mount and no process of it is left on the host.
    pub fn run(self) -> Output {
        self.spawn().wait()
    }
}

/// Whether `wait` checks that the run left no process behind.
#[derive(Clone, Copy, PartialEq)]
enum Leftovers {
    Check,
    Allow,
}
use Leftovers::*;

/// A program the harness started and has not waited for yet.
pub struct Running {
    containers: PathBuf,
    cgroup_parent: String,
    label: String,
    step: Option<Step>,
    as_root: bool,
    rootless: bool,
    merged: bool,
    child: Child,
    mounts_before: String,
    lines: mpsc::Receiver<String>,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
    leftovers: Leftovers,
}

impl Running {
    /// The PID of the program we started (the runtime, for a step).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The cgroups the runtime made for its container (step08 and later), in
    /// every tree, as they are now: see [`Runner::cgroup_parent`].
    pub fn cgroups(&self) -> Vec<PathBuf> {
        crate::cgroups::of_runtime(&self.cgroup_parent, self.pid())
    }

    /// The command line, e.g. `step06-init rootfs /bin/sleep 30`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether it runs with root's powers (real or rootless).
    pub fn as_root(&self) -> bool {
        self.as_root
    }

    /// Waits until the program prints a line containing `text`: a sign that
    /// the container is up. Fails the test after the timeout.
    pub fn wait_for_line(&mut self, text: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        let output = self.take_output();
        if let Some(message) = unimplemented(self.step, &output) {
            panic!("{message}");
        }
        panic!("`{}` never printed {text:?}; its output was:\n{output}", self.label);
    }

    /// Waits until a process of this run (the process group the harness made
    /// for it) has the command line `cmdline`, e.g. the command a step execs,
    /// and returns its host PID. Fails the test after the timeout.
    pub fn wait_for_process(&mut self, cmdline: &str) -> i32 {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            let found = host::in_process_group(self.pid())
                .into_iter()
                .find(|&pid| host::cmdline(pid).as_deref() == Some(cmdline));
            if let Some(pid) = found {
                return pid;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let message = format!("no process of `{}` ran `{cmdline}` within {TIMEOUT:?}", self.label);
        let mut pids = vec![self.pid()];
        pids.extend(host::in_process_group(self.pid()));
        host::kill_all(&pids);
        let output = self.take_output();
        if let Some(message) = unimplemented(self.step, &output) {
            panic!("{message}");
        }
        panic!("{message}; its output was:\n{output}");
    }

    /// Whether the program prints a line containing `text` within `seconds`.
    /// Unlike [`Running::wait_for_line`], a test that gets `false` says itself
    /// what went wrong, and ends the run.
    pub fn prints_line_within(&mut self, text: &str, seconds: f64) -> bool {
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// Sends `signal` to the program we started.
    pub fn signal(&self, signal: Signal) {
        host::kill(self.pid(), signal);
    }

    /// Do not fail when processes of this run outlive it: for the test that
    /// shows that step03, without PR_SET_PDEATHSIG, leaves its container behind.
    pub fn allow_leftovers(mut self) -> Running {
        self.leftovers = Allow;
        self
    }

    /// Ends a run that went wrong: kills every process of the run (its process
    /// group, which the harness made for it), then fails with `message` and the
    /// run's output.
    pub fn abort(self, message: &str) -> ! {
        let mut pids = vec![self.pid()];
        pids.extend(host::in_process_group(self.pid()));
        host::kill_all(&pids);
        let output = self.allow_leftovers().wait();
        panic!("{message}\n{output}");
    }

    /// The container's PID 1 as the host sees it: the runtime's only child,
    /// which is PID 1 of its own PID namespace (`NSpid: <host pid> 1`). Fails,
    /// ending the run, if it is not.
    pub fn container_init(self, step: Step) -> (Running, i32) {
        let runtime = self.pid();
        let children = host::children_of(runtime);
        let [init] = children[..] else {
            let message = format!(
                "{}: the runtime (host PID {runtime}) should have exactly one child, the \
                 container's PID 1, while its command runs; it has {children:?}. A runtime \
                 forks after unshare(CLONE_NEWPID), so that the child is the first process of \
                 the new PID namespace, and waits for it. See {}, the fork section.",
                step.short(),
                step.chapter()
            );
            self.abort(&message);
        };
        let ns_pids = host::ns_pids(init);
        if ns_pids.len() != 2 || ns_pids.last() != Some(&1) {
            let message = format!(
                "{}: the runtime's child (host PID {init}) should be PID 1 of a new PID \
                 namespace: its NSpid (its PID in each namespace, host first) should be \
                 [{init}, 1], and it is {ns_pids:?}. See {}, the unshare and fork sections.",
                step.short(),
                step.chapter()
            );
            self.abort(&message);
        }
        (self, init)
    }

    fn take_output(&mut self) -> String {
        let _ = self.child.wait();
        let stdout = std::mem::replace(&mut self.stdout, std::thread::spawn(String::new));
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
        format!("{}{}", stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default())
    }

    /// Waits for the program to end (killing it after the timeout), then
    /// checks that it left the host's mounts as they were and no process behind.
    pub fn wait(mut self) -> Output {
        let status = self.wait_with_timeout();
        let pgrp = self.pid();
        let leftover = !host::eventually(3.0, || host::in_process_group(pgrp).is_empty());
        let leftover_lines: Vec<String> = host::in_process_group(pgrp)
            .into_iter()
            .map(|pid| format!("    {pid}: {}", host::cmdline(pid).unwrap_or_default()))
            .collect();
        if leftover && self.leftovers == Check {
            for pid in host::in_process_group(pgrp) {
                host::kill(pid, Signal::SIGKILL); // ours: they are in the group we created
            }
        }
        remove_leftover_containers(&self.containers);
        // A runtime that a signal ended had no chance to remove its cgroup:
        // the harness does, as step08's next run would. One that ended by
        // itself must have left nothing.
        let cgroups_left = crate::cgroups::left_in(&self.cgroup_parent);
        crate::cgroups::remove(&self.cgroup_parent);
        let stdout = self.stdout.join().expect("stdout reader");
        let stderr = self.stderr.join().expect("stderr reader");
        // First of all: a step that stopped at an exercise's todo!() is not written yet.
        if let Some(message) = unimplemented(self.step, if self.merged { &stdout } else { &stderr })
        {
            panic!("{message}");
        }
        let output = Output {
            label: self.label,
            pid: pgrp,
            as_root: self.as_root,
            rootless: self.rootless,
            merged: self.merged,
            status,
            stdout,
            stderr,
        };
        let (added, removed) = host::mount_changes(&self.mounts_before, &host::mountinfo());
        assert!(
            added.is_empty() && removed.is_empty(),
            "`{}` changed the host's mounts: a container's mounts must stay in its own mount \
             namespace, and be gone when it ends.\nnew on the host: {added:#?}\ngone from the \
             host: {removed:#?}\n{output}",
            output.label
        );
        assert!(
            cgroups_left.is_empty() || status.signal().is_some(),
            "`{}` ended by itself and left cgroups behind (the harness removed them): \
             {cgroups_left:#?}\nA runtime removes its container's cgroup when the container \
             ends, and the parents it made when they are empty: see {}, section (7).\n{output}",
            output.label,
            Step::Step08Cgroups.chapter()
        );
        if leftover && self.leftovers == Check {
            panic!(
                "`{}` left processes running after it exited (the harness killed them):\n{}\n\
                 When a container's PID 1 ends, the kernel kills the rest of its PID namespace; \
                 and a runtime's children must not outlive it.\n{output}",
                output.label,
                leftover_lines.join("\n")
            );
        }
        output
    }

    fn wait_with_timeout(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                return status;
            }
            if Instant::now() > deadline {
                for pid in host::in_process_group(self.pid()) {
                    host::kill(pid, Signal::SIGKILL);
                }
                let _ = self.child.kill();
                let output = abbreviated(&self.take_output());
                crate::cgroups::remove(&self.cgroup_parent);
                panic!("`{}` did not end within {TIMEOUT:?}; output so far:\n{output}", self.label);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The first and last lines of a long output: a program that did not end may
/// have printed the same error millions of times.
fn abbreviated(output: &str) -> String {
    const HEAD: usize = 20;
    const TAIL: usize = 5;
    let lines: Vec<&str> = output.lines().collect();
    if lines.len() <= HEAD + TAIL {
        return output.to_string();
    }
    let left_out = lines.len() - HEAD - TAIL;
    let (head, tail) = (&lines[..HEAD], &lines[lines.len() - TAIL..]);
    format!("{}\n[... {left_out} more lines ...]\n{}", head.join("\n"), tail.join("\n"))
}

/// The first line of the failure of a step that stops at the `todo!()` of
/// region `(number) title`: `step04: (3) change the root is not implemented
/// yet — see book chapter 'step04' (book/src/step04-full-demo.md), section (3)`.
pub fn not_implemented(step: Step, number: u32, title: &str) -> String {
    format!(
        "{}: ({number}) {title} is not implemented yet — see {}, section ({number})",
        step.short(),
        step.chapter()
    )
}

/// If `stderr` shows that a step stopped at an exercise's `todo!()`, the
/// failure message that says so: [`not_implemented`], the hint, and where the
/// `todo!()` is. The step is the one whose source panicked (a step may run
/// inside a shell; a later step may stop in a kit module of an earlier one,
/// `kit/src/dev.rs` is step05's), else `step`.
pub fn unimplemented(step: Option<Step>, stderr: &str) -> Option<String> {
    let todo = xtask::exercise::find_todo_panic(stderr)?;
    let location = todo.location.as_deref().map(|l| l.trim_start_matches("tests/../"));
    let step = location
        .and_then(|l| Step::ALL.into_iter().find(|s| s.sources().iter().any(|f| l.contains(f))))
        .or(step);
    let Some(step) = step else {
        return Some(format!(
            "a step is not implemented yet: it stopped at todo!(\"({}) {}: {}\"){}",
            todo.number,
            todo.title,
            todo.hint,
            location.map(|l| format!(" in {l}")).unwrap_or_default()
        ));
    };
    let mut message = not_implemented(step, todo.number, &todo.title);
    message += &format!("\nhint: {}", todo.hint);
    if let Some(location) = location {
        message += &format!(
            "\nThe step stopped at the todo!() in {location}: write that region, then \
             `cargo xtask grade {}` says what is next.",
            step.short()
        );
    }
    Some(message)
}

/// Drops root to `nobody` (65534) before exec, so the program runs as an
/// ordinary user: no capabilities, no user namespace.
fn become_nobody(cmd: &mut Command) {
    become_user(cmd, 65534, 65534);
}

/// Drops root to `uid` and `gid`, with no supplementary group, before exec.
fn become_user(cmd: &mut Command, uid: u32, gid: u32) {
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            setgroups(&[])?;
            setgid(Gid::from_raw(gid))?;
            setuid(Uid::from_raw(uid))?;
            // Changing user made the process undumpable, which gives its
            // /proc/self files to root: a user namespace's uid_map among them.
            // prctl(2) only sets a flag of this process.
            if libc::prctl(libc::PR_SET_DUMPABLE, 1) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
}

/// The user a [`Runner::rootless`] run becomes when the tests run as root:
/// the one who ran `sudo` (`SUDO_UID`, `SUDO_GID`), else `nobody`. A test
/// that gives it files (a rootfs copy to write in) gives them to this user.
pub fn rootless_user() -> (u32, u32) {
    let id = |key: &str| std::env::var(key).ok()?.parse().ok().filter(|&id| id != 0);
    id("SUDO_UID").zip(id("SUDO_GID")).unwrap_or((65534, 65534))
}

/// A new containers' directory for one run: `<scratch>/containers/<pid>-<n>`
/// (made by the step that uses it).
fn containers_dir_for_a_run() -> PathBuf {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    crate::scratch().join("containers").join(format!("{}-{n}", std::process::id()))
}

/// After a run: removes what its killed runtime left in its containers'
/// directory, as `cargo xtask doctor` would, then the directory if it is
/// empty (a kept layer stays, for the test).
fn remove_leftover_containers(dir: &std::path::Path) {
    if dir.exists() {
        xtask::doctor::clean_containers(dir);
        let _ = std::fs::remove_dir(dir);
    }
}

/// What a run did.
#[derive(Debug)]
pub struct Output {
    pub label: String,
    /// The PID the program had on the host.
    pub pid: i32,
    /// Whether it ran with root's powers (real or rootless), as a learner runs it with sudo.
    pub as_root: bool,
    /// Whether it was made to run rootless ([`Runner::rootless`]), as a learner without sudo.
    pub rootless: bool,
    /// Whether stdout and stderr were one pipe ([`Runner::terminal_order`]):
    /// then `stdout` holds both, in the order written, and `stderr` is empty.
    pub merged: bool,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The status as a shell shows it in `$?`: the exit code, or 128+N when
    /// signal N killed the program.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }

    /// Fails unless the program exited with `code`; `why` says what that means.
    pub fn expect_code(&self, code: i32, why: &str) -> &Output {
        assert_eq!(self.code(), code, "`{}` should exit with {code}: {why}\n{self}", self.label);
        self
    }

    /// Fails if the program panicked: bad input must get a message, not a backtrace.
    pub fn expect_no_panic(&self) -> &Output {
        assert!(
            !self.stderr.contains("panicked"),
            "`{}` panicked: a learner's mistake deserves a message that says what to do, \
             not a backtrace.\n{self}",
            self.label
        );
        self
    }

    /// Fails unless the program succeeded.
    pub fn expect_success(&self) -> &Output {
        self.expect_code(0, "it should have succeeded")
    }

    /// What the program wrote to stderr; or, when stdout and stderr were one
    /// stream ([`Output::merged`]), everything it wrote.
    pub fn messages(&self) -> &str {
        if self.merged { &self.stdout } else { &self.stderr }
    }

    /// Standard output, one trimmed line per item, without empty lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "--- `{}` exited with status {}", self.label, self.code())?;
        if self.merged {
            return write!(
                f,
                "--- stdout and stderr, as a terminal shows them:\n{}",
                self.stdout.trim_end()
            );
        }
        writeln!(f, "--- stdout:\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr:\n{}", self.stderr.trim_end())
    }
}

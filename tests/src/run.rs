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
    unprivileged: bool,
    rootless_as_nobody: bool,
}

impl Runner {
    /// Runs `step` with `args`.
    pub fn step<S: Into<OsString>>(step: Step, args: impl IntoIterator<Item = S>) -> Runner {
        let mut runner = Runner::program(step.binary(), args);
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
        cmd.args(&args).current_dir(crate::scratch());
        Runner {
            label,
            step: None,
            cmd,
            stdin: Vec::new(),
            mount_namespace: None,
            unprivileged: false,
            rootless_as_nobody: false,
        }
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
            .chain(self.cmd.get_args())
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        let mut cmd = Command::new(host::util_linux_unshare());
        cmd.args(["--pid", "--fork", "--mount-proc", "/bin/sh", "-c"])
            .arg(format!("{}; exit", words.join(" ")))
            .current_dir(crate::scratch());
        self.cmd = cmd;
        self
    }

    /// Runs the program as an ordinary user without any user namespace: as
    /// `nobody` when the tests are root, as the test's own user otherwise.
    pub fn unprivileged(mut self) -> Runner {
        self.unprivileged = true;
        self
    }

    /// Runs the program rootless, as a user who is not root on the host: as
    /// `nobody`, root of a user namespace of its own, when the tests are
    /// root (what `cargo xtask run --rootless` does for an ordinary user); as
    /// the tests' own user, rootless, when they are not.
    pub fn rootless_as_nobody(mut self) -> Runner {
        self.rootless_as_nobody = true;
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
    pub fn spawn(mut self) -> Running {
        let privilege = if self.unprivileged { None } else { Some(require_privilege()) };
        match (privilege, self.unprivileged) {
            (Some(Privilege::Root), _) if self.rootless_as_nobody => {
                become_nobody_rootless(&mut self.cmd)
            }
            (Some(Privilege::Rootless), _) => {
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
        self.cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mounts_before = host::mountinfo();
        let mut child =
            self.cmd.spawn().unwrap_or_else(|err| panic!("cannot start `{}`: {err}", self.label));
        let stdin = child.stdin.take().expect("piped stdin");
        let input = self.stdin;
        std::thread::spawn(move || {
            let mut stdin = stdin;
            let _ = stdin.write_all(&input); // the program may exit without reading it all
        });
        let (lines_tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
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
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stderr_pipe.read_to_end(&mut all);
            String::from_utf8_lossy(&all).into_owned()
        });
        let as_root = !self.unprivileged;
        Running {
            label: self.label,
            step: self.step,
            as_root,
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
    label: String,
    step: Option<Step>,
    as_root: bool,
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
        let stdout = self.stdout.join().expect("stdout reader");
        let stderr = self.stderr.join().expect("stderr reader");
        // First of all: a step that stopped at an exercise's todo!() is not written yet.
        if let Some(message) = unimplemented(self.step, &stderr) {
            panic!("{message}");
        }
        let output =
            Output { label: self.label, pid: pgrp, as_root: self.as_root, status, stdout, stderr };
        let (added, removed) = host::mount_changes(&self.mounts_before, &host::mountinfo());
        assert!(
            added.is_empty() && removed.is_empty(),
            "`{}` changed the host's mounts: a container's mounts must stay in its own mount \
             namespace, and be gone when it ends.\nnew on the host: {added:#?}\ngone from the \
             host: {removed:#?}\n{output}",
            output.label
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
                let output = self.take_output();
                panic!("`{}` did not end within {TIMEOUT:?}; output so far:\n{output}", self.label);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
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
/// inside a shell), else `step`.
pub fn unimplemented(step: Option<Step>, stderr: &str) -> Option<String> {
    let todo = xtask::exercise::find_todo_panic(stderr)?;
    let location = todo.location.as_deref().map(|l| l.trim_start_matches("tests/../"));
    let step = location
        .and_then(|l| Step::ALL.into_iter().find(|s| l.contains(s.exercise_source())))
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
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            setgroups(&[])?;
            setgid(Gid::from_raw(65534))?;
            setuid(Uid::from_raw(65534))?;
            Ok(())
        })
    };
}

/// Drops root to `nobody` (65534), then makes it root of a new user
/// namespace (with a mount namespace), mapped to 65534 outside.
fn become_nobody_rootless(cmd: &mut Command) {
    cmd.uid(65534).gid(65534);
    // A process whose uid changed is not "dumpable", and its /proc/self files
    // then belong to root: it could not write its own uid_map. Set it back.
    // SAFETY: prctl(2) only, between fork and exec; uid and gid are set before it runs.
    unsafe {
        cmd.pre_exec(|| match libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        })
    };
    xtask::rootless::map_root_to(cmd, 65534, 65534);
}

/// What a run did.
#[derive(Debug)]
pub struct Output {
    pub label: String,
    /// The PID the program had on the host.
    pub pid: i32,
    /// Whether it ran with root's powers (real or rootless), as a learner runs it with sudo.
    pub as_root: bool,
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

    /// Standard output, one trimmed line per item, without empty lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "--- `{}` exited with status {}", self.label, self.code())?;
        writeln!(f, "--- stdout:\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr:\n{}", self.stderr.trim_end())
    }
}

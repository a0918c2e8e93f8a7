//! `bench-runner`: the part of `cargo xtask bench` that starts the commands.
//!
//! It starts each command of a plan many times, round-robin, and reports, for
//! every run, the time from fork(2) to the end of wait4(2) and the peak resident
//! set size the kernel recorded for the run (`ru_maxrss`, from wait4(2)).
//!
//! Why a program of its own: a forked child begins life with a copy of its
//! parent's page tables, so the fork of a big process takes longer, and its
//! peak RSS starts at the parent's size. xtask is big (an HTTP client, a tar
//! reader, ...); this program is not, so what it measures is the command's.
//!
//! The plan comes on stdin, one item per line, the words separated by tabs:
//!
//! ```text
//! rounds  <warm-up rounds>  <measured rounds>
//! case    <directory to hide, or ->  <program>  <argument>...
//! ```
//!
//! A case with a directory to hide runs in a mount namespace of its own, made
//! private, in which that directory is unmounted: the bench hides a hybrid
//! machine's cgroup v2 tree from a runtime that refuses hybrid cgroups (crun).
//! This costs the case one unshare(2), two mounts and a namespace to tear
//! down: some 0.2 ms.
//!
//! In every argument, `{run}` becomes a number unique to the run (runtimes need
//! a new container name each time). Round `r` starts with case `r mod n`, so no
//! command always follows the same one. For each run a line goes to stdout as
//! soon as the run ends:
//!
//! ```text
//! <round> <case> <nanoseconds> <peak RSS in KiB> <wait status>
//! ```
//!
//! The commands get /dev/null as stdin, stdout and stderr (`cargo xtask bench`
//! runs each once beforehand to show what goes wrong, if anything does).

use std::ffi::{CStr, CString};
use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::time::Instant;

struct Plan {
    warmup: usize,
    runs: usize,
    cases: Vec<Case>,
}

#[derive(Debug, PartialEq)]
struct Case {
    hide: Option<CString>,
    argv: Vec<String>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench-runner: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    // Ctrl-C stops us and the command being measured; xtask, which waits for
    // us, then cleans up. Dispositions and the mask are inherited: reset them.
    // SAFETY: SIG_DFL runs no code; the mask is a plain value.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGQUIT, libc::SIG_DFL);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
    let plan = read_plan(std::io::stdin().lock())?;
    let null = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|err| format!("cannot open /dev/null: {err}"))?;
    let mut out = std::io::stdout().lock();
    let mut serial = 0u64;
    for round in 0..plan.warmup + plan.runs {
        for k in 0..plan.cases.len() {
            let case = (round + k) % plan.cases.len();
            serial += 1;
            let argv = plan.cases[case]
                .argv
                .iter()
                .map(|arg| CString::new(arg.replace("{run}", &serial.to_string())))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| "an argument holds a NUL byte".to_owned())?;
            let hide = plan.cases[case].hide.as_deref();
            let (nanos, rss, status) = time_one(&argv, hide, null.as_raw_fd())?;
            writeln!(out, "{round} {case} {nanos} {rss} {status}")
                .and_then(|()| out.flush())
                .map_err(|err| format!("cannot report: {err}"))?;
        }
    }
    Ok(())
}

fn read_plan(input: impl BufRead) -> Result<Plan, String> {
    let mut plan = Plan { warmup: 0, runs: 0, cases: Vec::new() };
    for line in input.lines() {
        let line = line.map_err(|err| format!("cannot read the plan: {err}"))?;
        let mut words = line.split('\t');
        match words.next() {
            Some("rounds") => {
                let mut number = || words.next().and_then(|w| w.parse().ok());
                (plan.warmup, plan.runs) = number().zip(number()).ok_or("bad rounds line")?;
            }
            Some("case") => {
                let hide = match words.next() {
                    Some("-") => None,
                    Some(dir) => Some(CString::new(dir).map_err(|_| "a NUL byte in a path")?),
                    None => return Err("a case without a program".into()),
                };
                plan.cases.push(Case { hide, argv: words.map(str::to_owned).collect() });
            }
            _ if line.is_empty() => {}
            _ => return Err(format!("not a plan line: {line:?}")),
        }
    }
    if plan.cases.iter().any(|case| case.argv.is_empty()) {
        return Err("a case without a program".into());
    }
    Ok(plan)
}

/// Starts `argv` once (with `hide` unmounted, if given) and waits for it:
/// (nanoseconds, peak RSS in KiB, wait status).
fn time_one(
    argv: &[CString],
    hide: Option<&CStr>,
    null: RawFd,
) -> Result<(u128, i64, i32), String> {
    // Everything the child needs is made before the fork: it only calls
    // async-signal-safe functions (signal-safety(7)).
    let pointers: Vec<*const libc::c_char> =
        argv.iter().map(|arg| arg.as_ptr()).chain([std::ptr::null()]).collect();
    let start = Instant::now();
    // SAFETY: this program has one thread, and the child only makes
    // async-signal-safe calls.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork failed: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: async-signal-safe calls on valid descriptors and C strings.
        unsafe {
            if let Some(dir) = hide {
                let private = libc::MS_REC | libc::MS_PRIVATE;
                if libc::unshare(libc::CLONE_NEWNS) != 0
                    || libc::mount(
                        c"none".as_ptr(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        private,
                        std::ptr::null(),
                    ) != 0
                    || libc::umount2(dir.as_ptr(), libc::MNT_DETACH) != 0
                {
                    libc::_exit(125);
                }
            }
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            libc::execvp(pointers[0], pointers.as_ptr());
            libc::_exit(127);
        }
    }
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our child; status and usage are valid for writing.
        let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if waited == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4 failed: {err}"));
        }
    }
    Ok((start.elapsed().as_nanos(), usage.ru_maxrss, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_plan() {
        let text = "rounds\t2\t10\ncase\t-\t/bin/true\ncase\t/sys/x\tenv\tA={run}\n";
        let plan = read_plan(text.as_bytes()).unwrap();
        assert_eq!((plan.warmup, plan.runs), (2, 10));
        assert_eq!(plan.cases[0], Case { hide: None, argv: vec!["/bin/true".into()] });
        assert_eq!(plan.cases[1].hide.as_deref(), Some(c"/sys/x"));
        assert_eq!(plan.cases[1].argv, ["env", "A={run}"]);
        assert!(read_plan("case\t-\n".as_bytes()).is_err());
        assert!(read_plan("rounds\tx\n".as_bytes()).is_err());
        assert!(read_plan("case\n".as_bytes()).is_err());
        assert!(read_plan("what\n".as_bytes()).is_err());
    }

    #[test]
    fn reports_status_and_peak_rss() {
        let null = std::fs::File::open("/dev/null").unwrap();
        let argv = [c"/bin/sh", c"-c", c"exit 3"].map(CString::from);
        let (nanos, rss, status) = time_one(&argv, None, null.as_raw_fd()).unwrap();
        assert!(nanos > 0 && rss > 0, "{nanos} ns, {rss} KiB");
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 3, "{status}");
    }
}

//! What the host sees: its mounts and its processes, read from /proc.
//!
//! The tests look at the host from outside the container, the way an
//! administrator would, to check what the steps claim.

use std::path::Path;

/// The host's mount table, as this test process sees it.
pub fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo")
}

/// The mount points in a mountinfo text (field 5), with `\040`-style escapes left as they are.
pub fn mount_points(mountinfo: &str) -> Vec<&str> {
    mountinfo.lines().filter_map(|line| line.split(' ').nth(4)).collect()
}

/// Lines of `after` that are not in `before`, and lines of `before` gone from `after`.
pub fn mount_changes(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
    let added = after.lines().filter(|l| !before.lines().any(|b| b == *l)).map(String::from);
    let removed = before.lines().filter(|l| !after.lines().any(|a| a == *l)).map(String::from);
    (added.collect(), removed.collect())
}

/// One process, from /proc/<pid>/stat.
#[derive(Clone, Debug)]
pub struct Process {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub state: char,
}

/// Reads /proc/<pid>/stat. The command name may contain spaces and
/// parentheses, so the fields are counted from the last ')'.
pub fn process(pid: i32) -> Option<Process> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(Process { pid, ppid, pgrp, state })
}

/// Every process on the host, except zombies (they have exited already).
pub fn processes() -> Vec<Process> {
    processes_and_zombies().into_iter().filter(|p| p.state != 'Z').collect()
}

/// Every process on the host, zombies included: a zombie has exited, and
/// waits for its parent to collect its status with wait(2).
pub fn processes_and_zombies() -> Vec<Process> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter_map(process)
        .collect()
}

/// The children of `pid` that are zombies: ended, and not collected by it.
pub fn zombies_of(pid: i32) -> Vec<i32> {
    let zombies = processes_and_zombies().into_iter().filter(|p| p.state == 'Z');
    zombies.filter(|p| p.ppid == pid).map(|p| p.pid).collect()
}

/// Whether `pid` is still running: neither gone nor a zombie.
pub fn alive(pid: i32) -> bool {
    process(pid).is_some_and(|p| p.state != 'Z')
}

/// `pid` and its descendants, as the host sees them now.
pub fn process_tree(pid: i32) -> Vec<i32> {
    let mut tree = vec![pid];
    let mut next = 0;
    while next < tree.len() {
        tree.extend(children_of(tree[next]));
        next += 1;
    }
    tree
}

/// SIGKILLs `pids` (processes this test started) and waits up to 3 s until
/// they are gone. A container's PID 1 first: its death takes the rest of its namespace.
pub fn kill_all(pids: &[i32]) {
    for &pid in pids {
        kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    eventually(3.0, || !pids.iter().any(|&pid| alive(pid)));
}

/// The live children of `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    processes().into_iter().filter(|p| p.ppid == pid).map(|p| p.pid).collect()
}

/// The live processes in process group `pgrp`.
pub fn in_process_group(pgrp: i32) -> Vec<i32> {
    processes().into_iter().filter(|p| p.pgrp == pgrp).map(|p| p.pid).collect()
}

/// A process's command line, with spaces between the arguments.
pub fn cmdline(pid: i32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<_> = raw.split(|&b| b == 0).filter(|w| !w.is_empty()).collect();
    Some(words.iter().map(|w| String::from_utf8_lossy(w)).collect::<Vec<_>>().join(" "))
}

/// The live processes whose command line contains `marker`.
pub fn processes_running(marker: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    processes()
        .into_iter()
        .map(|p| p.pid)
        .filter(|&pid| pid != me && cmdline(pid).is_some_and(|c| c.contains(marker)))
        .collect()
}

/// The `NSpid:` line of /proc/<pid>/status: the process's PID in each PID
/// namespace it is in, from the host's down to its own.
pub fn ns_pids(pid: i32) -> Vec<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:")).unwrap_or_default();
    line.split_whitespace().filter_map(|n| n.parse().ok()).collect()
}

/// Sends `signal` to a process this test started, by PID.
pub fn kill(pid: i32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
}

/// Waits up to `seconds` for `done` to hold, checking every 10 ms.
pub fn eventually(seconds: f64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The names in a directory, sorted.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .map(|e| e.expect("directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// coreutils' `chroot`, the model of steps 01, 03 and 04 on: from PATH, or
/// from the directories where distributions install it. Debian and Ubuntu
/// keep it in /usr/sbin, which an ordinary user's PATH often lacks, and a
/// user may run it from there (only its chroot(2) needs root). Fails with
/// what is missing when it is nowhere.
pub fn coreutils_chroot() -> &'static str {
    static FOUND: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| {
        const SYSTEM_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];
        let found = xtask::find_in_path("chroot").or_else(|| {
            SYSTEM_DIRS.iter().map(|dir| Path::new(dir).join("chroot")).find(|path| path.is_file())
        });
        let Some(found) = found else {
            panic!(
                "these tests compare steps 01, 03 and later with coreutils' chroot(1), which is \
                 neither on PATH ({}) nor in {}: install coreutils (e.g. `sudo apt install \
                 coreutils`)",
                std::env::var("PATH").unwrap_or_default(),
                SYSTEM_DIRS.join(", ")
            )
        };
        found.display().to_string()
    })
}

/// util-linux's `unshare`, from PATH: step02's model, and the tool that makes
/// the simulated host. Fails with what to install when it is missing or is
/// another `unshare` (busybox's).
pub fn util_linux_unshare() -> &'static str {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CHECKED.get_or_init(|| {
        let version = std::process::Command::new("unshare").arg("--version").output();
        let stdout = version.as_ref().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        assert!(
            stdout.as_ref().is_ok_and(|text| text.contains("util-linux")),
            "these tests use util-linux's unshare(1), and `unshare --version` gave {stdout:?}: \
             install util-linux (e.g. `sudo apt install util-linux` or `sudo dnf install \
             util-linux`) and put its unshare first on PATH"
        );
    });
    "unshare"
}

/// The mount points of the mount namespace of process `pid`, as a process
/// that enters it sees them: nsenter(1) joins the namespace (whose root it
/// takes as its own, as `docker exec` does) and its PID namespace (so that
/// the container's own /proc knows `self`), and reads /proc/self/mountinfo.
/// Rootless, it joins the user namespace that owns them first. The program
/// that lists them, `cut`, is the container's own when the namespace's root
/// is the container's.
pub fn mount_points_in_namespace_of(pid: i32) -> Result<Vec<String>, String> {
    let mut cmd = std::process::Command::new("nsenter");
    cmd.args(["--target", &pid.to_string()]);
    if *crate::require_privilege() == crate::Privilege::Rootless {
        // Keep our uid and groups: that user namespace denies setgroups(2),
        // which nsenter would call to become its root.
        cmd.args(["--user", "--preserve-credentials"]);
    }
    cmd.args(["--mount", "--pid", "cut", "-d", " ", "-f", "5", "/proc/self/mountinfo"]);
    let output = cmd.output().map_err(|err| format!("cannot run nsenter: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{cmd:?}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).lines().map(String::from).collect())
}

//! What the tests need for step08's cgroups: a corner of the cgroup trees
//! for each run, a look at them from the host, and a check after every run
//! that nothing of it is left there.
//!
//! Each run the harness starts gets its own `--cgroup-parent`,
//! `container-workshop/test-<pid>-<n>` (through `WORKSHOP_CGROUP_PARENT`, as
//! each gets its own containers' directory), so that no run removes, and
//! reports, what another run's killed runtime left, and so that the harness
//! can tell what a run left behind.

use std::path::{Path, PathBuf};

use crate::{Privilege, host, privilege};

/// The cgroup filesystems mounted on this host: (mount point, fstype, super options).
pub fn cgroup_mounts() -> Vec<(PathBuf, String, String)> {
    let mut found = Vec::new();
    for line in host::mountinfo().lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else { continue };
        let fstype = fields.get(dash + 1).copied().unwrap_or_default();
        if fstype == "cgroup" || fstype == "cgroup2" {
            let options = fields.get(dash + 3).copied().unwrap_or_default();
            found.push((PathBuf::from(fields[4]), fstype.to_string(), options.to_string()));
        }
    }
    found
}

/// The cgroup version the runtime should pick here, seen from the host on
/// its own, without the runtime's code: v2 if a cgroup2 tree has the memory,
/// pids and cpu controllers, or if no v1 hierarchy has any of them; else v1.
pub fn expected_version() -> u8 {
    let mounts = cgroup_mounts();
    let ours = ["memory", "pids", "cpu"];
    let v2_has_all =
        mounts.iter().filter(|(_, fstype, _)| fstype == "cgroup2").any(|(at, _, _)| {
            let listed = std::fs::read_to_string(at.join("cgroup.controllers")).unwrap_or_default();
            ours.iter().all(|c| listed.split_whitespace().any(|l| l == *c))
        });
    let v1_has_any = mounts
        .iter()
        .filter(|(_, fstype, _)| fstype == "cgroup")
        .any(|(_, _, options)| options.split(',').any(|o| ours.contains(&o)));
    if v2_has_all || !v1_has_any { 2 } else { 1 }
}

/// This process's cgroup in each tree: (controllers, path) from
/// /proc/self/cgroup, an empty list of controllers for v2's line.
fn own_cgroups() -> Vec<(Vec<String>, PathBuf)> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, names, path) = (fields.next()?, fields.next()?, fields.next()?);
            let names = names.split(',').filter(|n| !n.is_empty()).map(String::from).collect();
            Some((names, PathBuf::from(path.trim_start_matches('/'))))
        })
        .collect()
}

/// The directories in which this process may make cgroups, from each
/// tree's top down to its own cgroup there: (tree, directories). Written
/// here again, and not called from `kit::cgroup`, whose parts are exercises:
/// the harness must work while a student's are `todo!()`s.
fn writable_dirs() -> Vec<(PathBuf, Vec<PathBuf>)> {
    let own = own_cgroups();
    let ours = ["memory", "pids", "cpu"];
    cgroup_mounts()
        .into_iter()
        .filter_map(|(at, fstype, options)| {
            let path = if fstype == "cgroup2" {
                own.iter().find(|(names, _)| names.is_empty())?.1.clone()
            } else {
                let options: Vec<&str> = options.split(',').collect();
                if !ours.iter().any(|c| options.contains(c)) {
                    return None;
                }
                own.iter()
                    .find(|(names, _)| names.iter().any(|n| options.contains(&&n[..])))?
                    .1
                    .clone()
            };
            let mut dirs: Vec<PathBuf> = path.ancestors().map(|a| at.join(a)).collect();
            dirs.reverse(); // from the top down
            dirs.retain(|dir| kit::cgroup::writable(dir));
            Some((at, dirs))
        })
        .collect()
}

/// Whether this process may make cgroups in every tree of the version
/// step08 uses here: as root, or where a tree is delegated to this user.
pub fn delegated_to_us() -> bool {
    let version = expected_version();
    writable_dirs()
        .into_iter()
        .filter(|(at, _)| {
            let v2 = cgroup_mounts().iter().any(|(m, fstype, _)| m == at && fstype == "cgroup2");
            v2 == (version == 2)
        })
        .all(|(_, dirs)| !dirs.is_empty())
}

/// Whether the tests run rootless (as an ordinary user, each step in a user
/// namespace of its own) where no cgroup tree is delegated to this user:
/// there step08 refuses to run unless told `--no-cgroup`.
pub fn rootless_without_cgroups() -> bool {
    privilege() == &Privilege::Rootless && !delegated_to_us()
}

/// Step08's cgroup tests make cgroups: as root, or rootless where a cgroup
/// tree is delegated to this user. Fails with what to do otherwise.
pub fn require_cgroups() {
    if privilege() == &Privilege::Root || delegated_to_us() {
        return;
    }
    panic!(
        "this test makes cgroups, which needs root, or a cgroup tree delegated to this user \
         (systemd delegates one to each user's service manager). Run the tests as root:\n    \
         cargo test --config 'target.\"cfg(all())\".runner = \"sudo -E\"'\n\
         or inside a delegated scope:\n    systemd-run --user --scope -p Delegate=yes cargo test"
    );
}

/// Where runs of this test process may make their cgroups: the top of each
/// tree mounted, and the cgroups below it, down to this process's own, that
/// it may write (a delegated one, rootless).
pub fn bases() -> Vec<PathBuf> {
    let mut bases: Vec<PathBuf> = cgroup_mounts().into_iter().map(|(at, _, _)| at).collect();
    bases.extend(writable_dirs().into_iter().flat_map(|(_, dirs)| dirs));
    bases.sort();
    bases.dedup();
    bases
}

/// A new `--cgroup-parent` for one run: `container-workshop/test-<pid>-<n>`.
pub fn parent_for_a_run() -> String {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}/test-{}-{n}", kit::cgroup::WORKSHOP, std::process::id())
}

/// `parent` in every tree, where it exists: what is left of a run's corner.
pub fn left_in(parent: &str) -> Vec<PathBuf> {
    let mut left: Vec<PathBuf> = Vec::new();
    for at in bases().into_iter().map(|base| base.join(parent)).filter(|at| at.exists()) {
        left.extend(
            host::list_dir(&at).into_iter().map(|name| at.join(name)).filter(|p| p.is_dir()),
        );
        left.push(at);
    }
    left
}

/// The cgroups that the runtime with host PID `runtime` made under `parent`, as they are now.
pub fn of_runtime(parent: &str, runtime: i32) -> Vec<PathBuf> {
    let prefix = format!("runtime-{runtime}-");
    left_in(parent)
        .into_iter()
        .filter(|path| path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)))
        .collect()
}

/// Removes a run's corner in every tree, once its runtime has ended: the
/// cgroups in it (the kernel removes only those without processes, and a
/// killed container's last ones may take a moment to go), then the corner,
/// then `container-workshop` if no other run uses it.
pub fn remove(parent: &str) {
    for base in bases() {
        let at = base.join(parent);
        if !at.exists() {
            continue;
        }
        host::eventually(5.0, || {
            for name in host::list_dir(&at) {
                let _ = std::fs::remove_dir(at.join(name));
            }
            std::fs::remove_dir(&at).is_ok()
        });
        for above in Path::new(parent).ancestors().skip(1).filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::remove_dir(base.join(above)); // only if empty: others may use it
        }
    }
}

/// The CPU time (user + system) a process has used so far, in seconds,
/// from /proc/PID/stat (fields 14 and 15, in clock ticks).
pub fn cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks as f64 / per_second)
}

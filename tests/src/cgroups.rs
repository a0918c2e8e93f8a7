//! What the tests need for step08's cgroups: a corner of the cgroup trees
//! for each test, a look at them from the host, and a clean-up that leaves
//! nothing of ours behind.
//!
//! Each test runs step08 with `--cgroup-parent container-workshop/test-<name>-<pid>`
//! (and a containers' directory of its own for step07's overlay), so that it
//! can check that its corner ends up empty, and so that no other run cleans
//! up what it looks at.

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
/// its own: v2 if a cgroup2 tree has the memory, pids and cpu controllers, or
/// if no v1 hierarchy has any of them; else v1.
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

/// Step08 needs to make cgroups: as root, or rootless where a cgroup tree is
/// delegated to this user. Fails with what to do otherwise.
pub fn require_cgroups() {
    if privilege() == &Privilege::Root {
        return;
    }
    let mountinfo = host::mountinfo();
    let self_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let delegated = kit::cgroup::detect(&mountinfo, &self_cgroup).is_ok_and(|layout| {
        layout
            .hierarchies
            .iter()
            .all(|h| kit::cgroup::delegated(h, kit::cgroup::writable).is_some())
    });
    assert!(
        delegated,
        "this test makes cgroups, which needs root, or a cgroup tree delegated to this user \
         (systemd delegates one to each user's service manager). Run the tests as root:\n    \
         cargo test --config 'target.\"cfg(all())\".runner = \"sudo -E\"'\n\
         or inside a delegated scope:\n    systemd-run --user --scope -p Delegate=yes cargo test"
    );
}

/// One test's corner of the cgroup trees, and its containers' directory.
pub struct TestCgroups {
    /// `container-workshop/test-<name>-<pid>`, the `--cgroup-parent` of its runs.
    pub parent: String,
    containers: PathBuf,
}

impl TestCgroups {
    /// For a test that makes cgroups: fails first if this user cannot.
    pub fn new(test: &str) -> TestCgroups {
        require_cgroups();
        TestCgroups::corner(test)
    }

    /// For a test whose runs should make no cgroup: only the names.
    pub fn corner(test: &str) -> TestCgroups {
        let parent = format!("{}/test-{test}-{}", kit::cgroup::WORKSHOP, std::process::id());
        let containers = crate::scratch().join(format!("containers-step08-{test}"));
        let _ = std::fs::remove_dir_all(&containers);
        let cgroups = TestCgroups { parent, containers };
        cgroups.remove_all();
        cgroups
    }

    /// Step08's arguments: this test's corner, `options`, the Alpine rootfs, then `command`.
    pub fn args(&self, options: &[&str], command: &[&str]) -> Vec<String> {
        self.args_in(crate::alpine_rootfs(), options, command)
    }

    /// The same, with another rootfs.
    pub fn args_in(&self, rootfs: &Path, options: &[&str], command: &[&str]) -> Vec<String> {
        let mut args = vec!["--cgroup-parent".to_string(), self.parent.clone()];
        args.extend(["--containers-dir".to_string(), self.containers.display().to_string()]);
        args.extend(options.iter().map(|o| o.to_string()));
        args.push(rootfs.display().to_string());
        args.extend(command.iter().map(|c| c.to_string()));
        args
    }

    /// Makes the containers' directory and gives it to `uid`: for a rootless run as that user.
    pub fn give_containers_dir_to(&self, uid: u32) {
        std::fs::create_dir_all(&self.containers).expect("make the containers' directory");
        std::os::unix::fs::chown(&self.containers, Some(uid), Some(uid)).expect("chown it");
    }

    /// This test's parent in every cgroup tree of the host, whether it exists or not.
    pub fn parents(&self) -> Vec<PathBuf> {
        cgroup_mounts().into_iter().map(|(at, _, _)| at.join(&self.parent)).collect()
    }

    /// The cgroups that the runtime with host PID `runtime` made, as they are now.
    pub fn of_runtime(&self, runtime: i32) -> Vec<PathBuf> {
        let prefix = format!("runtime-{runtime}-");
        self.parents()
            .into_iter()
            .filter_map(|parent| std::fs::read_dir(parent).ok())
            .flat_map(|entries| entries.flatten().map(|e| e.path()))
            .filter(|path| {
                path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
            })
            .collect()
    }

    /// What is left of this test's corner: its parent in any tree, and the
    /// cgroups in it; and the per-container directories of the overlay.
    pub fn leftovers(&self) -> Vec<PathBuf> {
        let mut left: Vec<PathBuf> = self.parents().into_iter().filter(|p| p.exists()).collect();
        if let Ok(entries) = std::fs::read_dir(&self.containers) {
            left.extend(entries.flatten().map(|e| e.path()));
        }
        left
    }

    /// Fails unless the runs left nothing in the cgroup trees and on disk.
    pub fn expect_clean(&self, what: &str) {
        let left = self.leftovers();
        assert!(
            left.is_empty(),
            "step08: {what}, nothing of the container should be left; these are: {left:#?}\n\
             The runtime removes the container's cgroup when the container ends, and its \
             parents when they are empty (see {}, section (7)); after a `kill -9`, the next \
             run does (section (2)).",
            crate::Step::Step08Cgroups.chapter()
        );
    }

    /// Removes this test's corner: the cgroups in it (empty ones: the kernel
    /// refuses others), then the parent; and the containers' directory.
    fn remove_all(&self) {
        for parent in self.parents() {
            if let Ok(entries) = std::fs::read_dir(&parent) {
                for entry in entries.flatten().filter(|e| e.path().is_dir()) {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
            let _ = std::fs::remove_dir(&parent);
            if let Some(workshop) = parent.parent() {
                let _ = std::fs::remove_dir(workshop); // only if empty: others may use it
            }
        }
        let _ = std::fs::remove_dir_all(&self.containers);
    }
}

impl Drop for TestCgroups {
    fn drop(&mut self) {
        self.remove_all();
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

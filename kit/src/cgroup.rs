//! # cgroups: limits the kernel enforces (step08)
//!
//! Namespaces decide what a container can *see*; control groups decide how
//! much it may *use*. A cgroup is a directory in a special filesystem: make
//! one, write a limit into one of its files, write a process ID into its
//! `cgroup.procs`, and from then on the kernel counts and limits that process
//! and every child it forks. <https://man7.org/linux/man-pages/man7/cgroups.7.html>
//!
//! Step08 gives each container a fresh cgroup, in seven parts:
//! (1) find the cgroup filesystem (v2, or v1 on older machines) and the part
//! of it we may write to; (2) remove what a killed runtime left behind;
//! (3) make the container's cgroup; (4) write its limits; (5) the container's
//! first process joins it, first thing after the fork, before it runs anything
//! of the container's; (6) when the container ends, say which limit it ran
//! into; (7) remove the cgroup.
//!
//! The runtime reaches the cgroup through directory handles opened in (3):
//! after step05's `pivot_root` the runtime no longer sees the host's
//! `/sys/fs/cgroup`, and the handles still lead there (as step07's do to the
//! container's directory).

use std::io::{Read as _, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::unistd::{AccessFlags, Pid, faccessat};

use crate::article::{die, report};

// ANCHOR: options
/// The container's limits: step08's options, which later steps
/// `#[command(flatten)]` into their own. Each value is checked when it is
/// parsed, so a bad one stops the runtime before anything is made.
#[derive(Clone, Debug, Default, clap::Args)]
#[group(id = "limits")] // clap's name for the group, which step07's `Options` has taken
pub struct Options {
    /// Memory limit, in bytes or with K, M or G (powers of 1024), e.g. `64M`:
    /// past it, the kernel's OOM killer kills a process of the container
    #[arg(long, value_name = "BYTES", value_parser = parse_memory, allow_negative_numbers = true)]
    pub memory: Option<u64>,
    /// Most processes (and threads) the container may have at once, e.g.
    /// `20`: past it, fork(2) fails with EAGAIN
    #[arg(long, value_name = "N", value_parser = parse_pids, allow_negative_numbers = true)]
    pub pids: Option<u64>,
    /// CPU time the container may use, in CPUs, e.g. `0.5` (half of one CPU):
    /// past it, the kernel stops running it until the next period
    #[arg(long, value_name = "FRACTION", value_parser = parse_cpus, allow_negative_numbers = true)]
    pub cpus: Option<Cpus>,
    /// Where the container's cgroup goes: a relative path under the cgroup
    /// tree we may write to
    #[arg(long, value_name = "PATH", default_value = WORKSHOP, env = PARENT_ENV, value_parser = parse_parent)]
    pub cgroup_parent: String,
    /// Run with no cgroup at all, so without limits: for a rootless runtime
    /// to which no cgroup tree is delegated
    #[arg(long, conflicts_with_all = ["memory", "pids", "cpus"])]
    pub no_cgroup: bool,
    /// Say which cgroup version is used, and where the container's cgroup is
    #[arg(long)]
    pub verbose: bool,
}
// ANCHOR_END: options

/// The workshop's own corner of the cgroup trees: each container's cgroup is
/// made in it, and nothing else of ours is anywhere else.
pub const WORKSHOP: &str = "container-workshop";

/// The environment variable that sets `--cgroup-parent`: the tests give each
/// run a corner of its own with it.
pub const PARENT_ENV: &str = "WORKSHOP_CGROUP_PARENT";

/// The CPU period, in microseconds: the kernel's default, 100 ms. `--cpus
/// 0.5` lets the container run 50 ms in each period.
pub const PERIOD_US: u64 = 100_000;

/// `--cpus`, as the number the user gave and the quota it means.
#[derive(Clone, Debug, PartialEq)]
pub struct Cpus {
    pub given: String,
    /// Microseconds of CPU time per [`PERIOD_US`].
    pub quota_us: u64,
}

/// `64M`, `512k`, `1G`, or plain bytes. Less than 1M is refused: not even a
/// shell starts in that.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let usage = "give bytes, or a whole number with K, M or G (powers of 1024), e.g. 64M";
    let lower = text.trim().to_ascii_lowercase();
    let split = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let shift = match unit {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("`{text}` is not an amount of memory: {usage}")),
    };
    let Ok(number) = digits.parse::<u64>() else {
        return Err(format!("`{text}` is not an amount of memory: {usage}"));
    };
    let Some(bytes) = number.checked_mul(1 << shift) else {
        return Err(format!("`{text}` is more memory than can be counted in 64 bits"));
    };
    if bytes < 1 << 20 {
        return Err(format!(
            "`{text}` is too little memory to start even a shell: give 1M or more"
        ));
    }
    Ok(bytes)
}

/// A whole number of processes, at least 1 (the container's own first process).
pub fn parse_pids(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("`0` processes would not leave room for the container's first process: \
                       give 1 or more"
            .into()),
        Ok(n) => Ok(n),
        Err(_) => {
            Err(format!("`{text}` is not a number of processes: give a whole number, e.g. 20"))
        }
    }
}

/// A fraction of CPUs, from 0.01 (1 ms in each 100 ms period, the smallest
/// quota the kernel takes) up to the number of CPUs of this machine.
pub fn parse_cpus(text: &str) -> Result<Cpus, String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && (0.01..=cpus).contains(&n) => {
            Ok(Cpus { given: text.trim().to_string(), quota_us: (n * PERIOD_US as f64) as u64 })
        }
        Ok(n) if n > cpus => Err(format!("`{text}` CPUs is more than this machine has ({cpus})")),
        Ok(_) => Err(format!(
            "`{text}` CPUs is too little: give 0.01 or more (1 ms in each 100 ms), e.g. 0.5"
        )),
        Err(_) => Err(format!("`{text}` is not a number of CPUs: give a fraction, e.g. 0.5")),
    }
}

/// `--cgroup-parent`: one or more plain names separated by `/`, so that it
/// stays under the tree we may write to.
pub fn parse_parent(text: &str) -> Result<String, String> {
    let plain = |part: &str| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    if text.split('/').all(plain) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not a cgroup path we can use: give names made of letters, digits, `.`, \
             `_` and `-`, separated by `/`, e.g. {WORKSHOP}"
        ))
    }
}

impl Options {
    /// The controllers the limits asked for need, by their names in both versions.
    fn needed(&self) -> Vec<&'static str> {
        let asked = [
            ("memory", self.memory.is_some()),
            ("pids", self.pids.is_some()),
            ("cpu", self.cpus.is_some()),
        ];
        asked.into_iter().filter(|(_, asked)| *asked).map(|(name, _)| name).collect()
    }
}

/// The controllers step08 uses: one per limit.
pub const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// cgroup v2 (one tree, every controller in it) or v1 (one tree per controller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V2,
    V1,
}

/// One mounted cgroup tree (a *hierarchy*) that step08 uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted, e.g. `/sys/fs/cgroup` or `/sys/fs/cgroup/memory`.
    pub mount_point: PathBuf,
    /// v1: which of [`CONTROLLERS`] it has (`cpu,cpuacct` has `cpu`); v2: all
    /// those its root's `cgroup.controllers` lists.
    pub controllers: Vec<String>,
    /// This process's own cgroup in it, as a directory.
    pub own: PathBuf,
}

/// Which cgroup version this machine uses for step08's controllers, and its trees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub version: Version,
    pub hierarchies: Vec<Hierarchy>,
    /// Why this version, in words: for `--verbose`.
    pub why: String,
}

// ANCHOR: detect
/// (1) Finds the cgroup filesystems in `mountinfo` (/proc/self/mountinfo) and
/// this process's cgroups in `self_cgroup` (/proc/self/cgroup). v2 first: a
/// pure v2 machine has one `cgroup2` mount and no v1 controller. A *hybrid*
/// machine has v1 controllers and a v2 tree beside them, which is used only
/// if it holds all of [`CONTROLLERS`]; otherwise v1 is.
/// <https://man7.org/linux/man-pages/man7/cgroups.7.html>
pub fn detect(mountinfo: &str, self_cgroup: &str) -> Result<Layout> {
    // ANCHOR: exercise_detect (1) find the cgroup layout: the cgroup2 and cgroup mounts of proc_pid_mountinfo(5)
    let mut v2 = None;
    let mut v1: Vec<Hierarchy> = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else { continue };
        let (root, mount_point) = (fields[3], PathBuf::from(unescape(fields[4])));
        match (fields.get(dash + 1).copied(), fields.get(dash + 3)) {
            (Some("cgroup2"), _) if v2.is_none() => {
                let own = own_cgroup(self_cgroup, |names| names.is_empty());
                v2 = Some(Hierarchy {
                    own: inside(&mount_point, root, own),
                    controllers: vec![],
                    mount_point,
                });
            }
            (Some("cgroup"), Some(options)) => {
                let mine: Vec<String> = options
                    .split(',')
                    .filter(|o| {
                        CONTROLLERS.contains(o)
                            && !v1.iter().any(|h| h.controllers.iter().any(|c| c == o))
                    })
                    .map(String::from)
                    .collect();
                if !mine.is_empty() {
                    let own = own_cgroup(self_cgroup, |names| {
                        names.iter().any(|n| mine.contains(&n.to_string()))
                    });
                    v1.push(Hierarchy {
                        own: inside(&mount_point, root, own),
                        controllers: mine,
                        mount_point,
                    });
                }
            }
            _ => {}
        }
    }
    if let Some(mut unified) = v2 {
        let listed = std::fs::read_to_string(unified.mount_point.join("cgroup.controllers"))
            .unwrap_or_default();
        unified.controllers = CONTROLLERS
            .into_iter()
            .filter(|c| listed.split_whitespace().any(|l| l == *c))
            .map(String::from)
            .collect();
        let place = unified.mount_point.display().to_string();
        if v1.is_empty() || unified.controllers.len() == CONTROLLERS.len() {
            let why = format!("cgroup v2: the unified tree at {place}");
            return Ok(Layout { version: Version::V2, hierarchies: vec![unified], why });
        }
        let why = format!(
            "cgroup v1: a hybrid machine, whose v2 tree at {place} lacks controllers we use"
        );
        return Ok(Layout { version: Version::V1, hierarchies: v1, why });
    }
    if v1.is_empty() {
        bail!(
            "no cgroup filesystem is mounted, so the kernel cannot limit the container\n\
             hint: mount the v2 tree: `sudo mount -t cgroup2 none /sys/fs/cgroup`, or pass --no-cgroup"
        );
    }
    Ok(Layout {
        version: Version::V1,
        hierarchies: v1,
        why: "cgroup v1: no v2 tree is mounted".into(),
    })
    // ANCHOR_END: exercise_detect
}
// ANCHOR_END: detect

/// The path of this process's cgroup in /proc/self/cgroup (`ID:CONTROLLERS:PATH`
/// lines) on the first line whose controllers `matches`: an empty list is v2's line.
fn own_cgroup(self_cgroup: &str, matches: impl Fn(&[&str]) -> bool) -> String {
    self_cgroup
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, names, path) = (fields.next()?, fields.next()?, fields.next()?);
            let names: Vec<&str> = names.split(',').filter(|n| !n.is_empty()).collect();
            matches(&names).then(|| path.to_string())
        })
        .next()
        .unwrap_or_else(|| "/".into())
}

/// The directory of cgroup `own` in a tree whose root `root` is mounted at `mount_point`.
fn inside(mount_point: &Path, root: &str, own: String) -> PathBuf {
    let relative = own.strip_prefix(root).unwrap_or("/").trim_start_matches('/');
    mount_point.join(relative)
}

/// mountinfo writes a space in a path as `\040` (and tab, newline, backslash alike).
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        match u8::from_str_radix(rest.get(at + 1..at + 4).unwrap_or(""), 8) {
            Ok(byte) => {
                out.push(byte as char);
                rest = &rest[at + 4..];
            }
            Err(_) => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out + rest
}

// ANCHOR: delegated
/// (1) The cgroup under which we may make ours: the highest one, from the
/// tree's root down to our own, whose directory and `cgroup.procs` we may
/// write. As root that is the root of the tree. A user may write where
/// systemd *delegated* a subtree to them (the one of their `user@.service`);
/// moving a process needs write access to the `cgroup.procs` of a cgroup
/// above both where it is and where it goes, and ours is above both.
/// <https://man7.org/linux/man-pages/man7/cgroups.7.html> (Cgroups v2 delegation)
pub fn delegated(hierarchy: &Hierarchy, writable: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let mut candidates: Vec<&Path> = hierarchy
        .own
        .ancestors()
        .take_while(|dir| dir.starts_with(&hierarchy.mount_point))
        .collect();
    candidates.reverse(); // from the root down
    candidates.into_iter().find(|dir| writable(dir)).map(Path::to_path_buf)
}
// ANCHOR_END: delegated

/// Whether this process may make a cgroup in `dir` and move processes through
/// it. Root of a user namespace may not, unless the files belong to a user it
/// knows: those of the host's root are `nobody`'s there.
pub fn writable(dir: &Path) -> bool {
    let may =
        |path: &Path| faccessat(AT_FDCWD, path, AccessFlags::W_OK, AtFlags::AT_EACCESS).is_ok();
    may(dir) && may(&dir.join("cgroup.procs"))
}

/// Says that no cgroup is delegated to us, and what to do.
fn not_delegated(hierarchy: &Hierarchy) -> anyhow::Error {
    let me = nix::unistd::geteuid().as_raw();
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let who = match crate::overlay::outer_uid(&uid_map, me) {
        Some(outer) if outer != me => format!("uid {outer}, root of a user namespace"),
        _ => format!("uid {me}"),
    };
    anyhow!(
        "cannot make a cgroup for the container: none is delegated to this user ({who}): \
         from {} up to {}, this process may write to no cgroup\n\
         hint: as root (sudo), the runtime makes its cgroups under {}/{WORKSHOP}\n\
         hint: rootless, cgroups need a subtree delegated to you: systemd delegates one to \
         each user's service manager (user@.service); run inside it, e.g. `systemd-run --user \
         --scope -p Delegate=yes <this command>`\n\
         hint: or pass --no-cgroup to run the container without a cgroup, and so without limits\n\
         hint: `cargo xtask doctor` says which cgroups this machine has",
        hierarchy.own.display(),
        hierarchy.mount_point.display(),
        hierarchy.mount_point.display()
    )
}

/// The container's cgroup in one tree (a hierarchy): its directory, and the
/// handles to the cgroups above it up to the delegated one: enough to reach
/// it, and to remove it and its parents when they are empty, from anywhere,
/// even after pivot_root.
#[derive(Debug)]
struct InTree {
    /// Where it is on the host, for messages.
    path: PathBuf,
    /// Which of [`CONTROLLERS`] it has.
    controllers: Vec<String>,
    /// The delegated cgroup, then each level of `--cgroup-parent`, then the
    /// container's own cgroup, last.
    levels: Vec<Dir>,
    /// The names of `levels[1..]`, each in the one before.
    names: Vec<String>,
}

impl InTree {
    /// A handle on the container's own cgroup.
    fn dir(&self) -> &Dir {
        self.levels.last().expect("a cgroup has at least its own level")
    }

    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The container's cgroup: one directory on v2, one per controller's tree on
/// v1, none with `--no-cgroup`.
#[derive(Debug)]
pub struct Cgroup {
    /// None with `--no-cgroup`.
    pub version: Option<Version>,
    /// `runtime-<PID>-<start time>`: which runtime made it, provably (see [`owner_is_gone`]).
    pub name: String,
    trees: Vec<InTree>,
    limits: Options,
    /// The runtime's PID: only the runtime removes the cgroup (never a forked child).
    owner: u32,
    removed: bool,
}

/// The start time of process `pid` (field 22 of /proc/PID/stat, in clock
/// ticks since boot): with the PID, it names one process for the life of the
/// machine, which a PID alone does not (PIDs are reused).
/// <https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html>
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..]; // the name may hold spaces and ')'
    after_name.split(' ').nth(19)?.parse().ok()
}

// ANCHOR: stale
/// (2) A cgroup named `runtime-<PID>-<start>` whose runtime is gone: no
/// process has that PID now, or one has it that started at another time.
pub fn owner_is_gone(name: &str) -> bool {
    let Some((pid, start)) = name.strip_prefix("runtime-").and_then(|rest| rest.split_once('-'))
    else {
        return false; // not one of ours: leave it alone
    };
    match (pid.parse::<u32>(), start.parse::<u64>()) {
        (Ok(pid), Ok(start)) => start_time(pid) != Some(start),
        _ => false,
    }
}

/// (2) Removes the cgroups in `parent` left by runtimes that were killed
/// (`kill -9` gives no chance to clean up), and says what it did. A stale
/// cgroup that still holds processes is left as it is, with a hint: they are
/// not ours to kill.
pub fn remove_stale(parent: &Path) -> Vec<String> {
    // ANCHOR: exercise_stale (2) remove stale cgroups: each runtime-PID-START in parent whose PID is gone, rmdir(2)
    let mut said = Vec::new();
    let Ok(entries) = std::fs::read_dir(parent) else { return said };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_dir() || !owner_is_gone(&name) {
            continue;
        }
        let path = entry.path();
        let pid = name.split('-').nth(1).unwrap_or_default();
        let procs = std::fs::read_to_string(path.join("cgroup.procs")).unwrap_or_default();
        let procs: Vec<&str> = procs.split_whitespace().collect();
        said.push(match std::fs::remove_dir(&path) {
            Ok(()) => {
                format!("removed the cgroup {}: its runtime (PID {pid}) is gone", path.display())
            }
            Err(_) if !procs.is_empty() => format!(
                "left the cgroup {} of a runtime that is gone (PID {pid}): processes {} still \
                 run in it\nhint: see what they are with `ps -p {}`",
                path.display(),
                procs.join(" "),
                procs.join(",")
            ),
            Err(err) => format!("cannot remove the stale cgroup {}: {err}", path.display()),
        });
    }
    said
    // ANCHOR_END: exercise_stale
}
// ANCHOR_END: stale

impl Cgroup {
    // ANCHOR: create
    /// (1) to (4): finds the layout, cleans up after killed runtimes, makes
    /// the container's cgroup and writes its limits, while the host's
    /// /sys/fs/cgroup is in sight: before the namespaces, and step05's
    /// pivot_root. With `--no-cgroup`, a cgroup of nothing: (5) to (7) do nothing.
    pub fn create(options: &Options) -> Result<Cgroup> {
        if options.no_cgroup {
            return Ok(Cgroup::none(options));
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .context("failed to read /proc/self/mountinfo")?;
        let self_cgroup = std::fs::read_to_string("/proc/self/cgroup")
            .context("failed to read /proc/self/cgroup")?;
        let layout = detect(&mountinfo, &self_cgroup)?;
        let cgroup = Cgroup::make(&layout, options, writable)?;
        cgroup.write_limits()?;
        if options.verbose {
            report(&layout.why);
            for tree in &cgroup.trees {
                report(format_args!(
                    "the container's cgroup: {} ({})",
                    tree.path.display(),
                    tree.controllers.join(", ")
                ));
            }
        }
        Ok(cgroup)
    }
    // ANCHOR_END: create

    /// No cgroup at all: `--no-cgroup`.
    fn none(options: &Options) -> Cgroup {
        Cgroup {
            version: None,
            name: String::new(),
            trees: Vec::new(),
            limits: options.clone(),
            owner: std::process::id(),
            removed: true,
        }
    }

    /// (2) and (3): in each tree, removes stale cgroups and makes
    /// `<delegated>/<--cgroup-parent>/runtime-<PID>-<start>`, with a handle on
    /// each level. `writable` says where we may write (see [`delegated`]).
    pub fn make(
        layout: &Layout,
        options: &Options,
        writable: impl Fn(&Path) -> bool,
    ) -> Result<Cgroup> {
        let owner = std::process::id();
        let start = start_time(owner)
            .context("failed to read this process's start time in /proc/self/stat")?;
        for needed in options.needed() {
            if !layout.hierarchies.iter().any(|h| h.controllers.iter().any(|c| c == needed)) {
                let hint = match layout.version {
                    Version::V2 => {
                        "the cgroup.controllers file at the top of the tree lists the \
                         controllers it has"
                    }
                    Version::V1 => {
                        "no v1 hierarchy has it: `grep cgroup /proc/self/mountinfo` lists those \
                         mounted"
                    }
                };
                bail!(
                    "the {needed} controller is not available ({}), so the container cannot get \
                     the limit asked for\nhint: {hint}",
                    layout.why
                );
            }
        }
        let mut cgroup = Cgroup {
            version: Some(layout.version),
            name: format!("runtime-{owner}-{start}"),
            trees: Vec::new(),
            limits: options.clone(),
            owner,
            removed: false,
        };
        let mut bases = Vec::new();
        for hierarchy in &layout.hierarchies {
            let base = delegated(hierarchy, &writable).ok_or_else(|| not_delegated(hierarchy))?;
            let controllers = match layout.version {
                Version::V2 => available_controllers(&base, &options.needed())?,
                Version::V1 => hierarchy.controllers.clone(),
            };
            bases.push((base, controllers));
        }
        // Checked everywhere first: nothing is made unless it can be made everywhere.
        for (base, controllers) in bases {
            for said in remove_stale(&base.join(&options.cgroup_parent)) {
                report(said);
            }
            let version = layout.version;
            let tree = make(&base, &options.cgroup_parent, &cgroup.name, version, controllers)
                .inspect_err(|_| unmake(&base, &options.cgroup_parent, &cgroup.name))?;
            cgroup.trees.push(tree); // from here on, dropping `cgroup` removes it
        }
        Ok(cgroup)
    }

    /// The directory of the tree that has `controller`.
    fn tree(&self, controller: &str) -> Option<&InTree> {
        self.trees.iter().find(|tree| tree.has(controller))
    }

    /// Where the container's cgroup is: one path per tree.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.trees.iter().map(|tree| tree.path.clone()).collect()
    }
}

/// v2 only: the controllers the container's cgroup will have. A controller's
/// files appear in a cgroup only when its parent enabled it for its children
/// in `cgroup.subtree_control`, and a cgroup can enable only what its own
/// parent gave it, listed in its `cgroup.controllers`. [`make`] enables them.
/// <https://docs.kernel.org/admin-guide/cgroup-v2.html#enabling-and-disabling>
fn available_controllers(base: &Path, needed: &[&str]) -> Result<Vec<String>> {
    let listed = std::fs::read_to_string(base.join("cgroup.controllers"))
        .with_context(|| format!("failed to read {}/cgroup.controllers", base.display()))?;
    let available: Vec<String> = CONTROLLERS
        .into_iter()
        .filter(|c| listed.split_whitespace().any(|l| l == *c))
        .map(String::from)
        .collect();
    if let Some(missing) = needed.iter().find(|c| !available.iter().any(|a| a == *c)) {
        bail!(
            "the {missing} controller is not delegated to {} (its cgroup.controllers: {})\n\
             hint: which controllers systemd delegates to a user depends on its version and \
             configuration: see Delegate= in systemd.resource-control(5)",
            base.display(),
            listed.trim()
        );
    }
    Ok(available)
}

// ANCHOR: make
/// (3) Makes `base/parent/name` with mkdir(2), one level at a time, and
/// keeps a handle on each level, from `base` down. The kernel fills a new
/// cgroup directory with its files. On v2, each level above ours enables
/// `controllers` for its children (a cgroup holding processes could not: the
/// "no internal processes" rule; ours above hold none). Another runtime that
/// ends may remove an empty parent between our mkdirs: then we start again.
/// <https://man7.org/linux/man-pages/man2/mkdir.2.html>
fn make(
    base: &Path,
    parent: &str,
    name: &str,
    version: Version,
    controllers: Vec<String>,
) -> Result<InTree> {
    let path = base.join(parent).join(name);
    let fail = |err: std::io::Error| anyhow!("failed to make the cgroup {}: {err}", path.display());
    let names: Vec<String> = parent.split('/').chain([name]).map(String::from).collect();
    let enable: Vec<String> = controllers.iter().map(|c| format!("+{c}")).collect();
    'attempt: for _ in 0..10 {
        let mut levels = vec![Dir::open_ambient_dir(base, ambient_authority()).map_err(fail)?];
        for (index, level) in names.iter().enumerate() {
            let here = levels.last().expect("the base is open");
            if version == Version::V2 {
                let shown = base.join(names[..index].join("/"));
                write_file(here, &shown, "cgroup.subtree_control", &enable.join(" "))?;
            }
            // ANCHOR: exercise_make (3) make the cgroup: mkdir(2) each level, keep a handle on it (open(2) O_DIRECTORY)
            match here.create_dir(level) {
                Ok(()) => {}
                Err(err)
                    if err.kind() == std::io::ErrorKind::AlreadyExists
                        && index + 1 < names.len() => {} // a parent others share
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue 'attempt, // `here` was just removed
                Err(err) => return Err(fail(err)),
            }
            match here.open_dir(level) {
                Ok(dir) => levels.push(dir),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue 'attempt,
                Err(err) => return Err(fail(err)),
            }
            // ANCHOR_END: exercise_make
        }
        return Ok(InTree { path, controllers, levels, names });
    }
    bail!("failed to make the cgroup {}: its parent kept disappearing", path.display())
}
// ANCHOR_END: make

/// After (3) failed in one tree: removes what it made there before it failed,
/// from `base/parent/name` up, while empty (a parent another container uses is
/// not). By path, as (3) is done before pivot_root, with the host's tree in sight.
fn unmake(base: &Path, parent: &str, name: &str) {
    let own = base.join(parent).join(name);
    let _ = std::fs::remove_dir(&own); // perhaps never made
    for level in own.ancestors().skip(1).take_while(|level| *level != base) {
        if std::fs::remove_dir(level).is_err() {
            break;
        }
    }
}

/// Writes `value` to the file `name` of the cgroup at `dir` (`path` on the
/// host, for messages), in one write(2), as the kernel wants it.
fn write_file(dir: &Dir, path: &Path, name: &str, value: &str) -> Result<()> {
    let mut file = dir
        .open_with(name, OpenOptions::new().write(true))
        .with_context(|| format!("failed to open {}/{name}", path.display()))?;
    file.write_all(value.as_bytes())
        .with_context(|| format!("failed to write {value} to {}/{name}", path.display()))
}

/// Reads the file `name` of the cgroup at `dir`.
fn read_file(dir: &Dir, name: &str) -> std::io::Result<String> {
    let mut text = String::new();
    dir.open(name)?.read_to_string(&mut text)?;
    Ok(text)
}

/// The number after `key` on the `key N` line of a flat-keyed cgroup file
/// such as memory.events: `oom_kill 1`.
pub fn count(text: &str, key: &str) -> u64 {
    let value = |line: &str| {
        let (name, number) = line.split_once(' ')?;
        (name == key).then(|| number.trim().parse().ok())?
    };
    text.lines().find_map(value).unwrap_or(0)
}

impl Cgroup {
    // ANCHOR: limits
    /// (4) Writes the limits, each into its controller's file: the table in
    /// the book lists them for both versions. Swap is limited too, or a
    /// container over its memory limit would swap instead of being stopped.
    pub fn write_limits(&self) -> Result<()> {
        let limits = &self.limits;
        let write = |controller: &str, name: &str, value: String| match self.tree(controller) {
            Some(tree) => write_file(tree.dir(), &tree.path, name, &value),
            None => Ok(()), // asked for no limit: `make` checked
        };
        // Some files exist only with some kernels' options (swap accounting).
        let exists = |controller: &str, name: &str| {
            self.tree(controller).is_some_and(|tree| tree.dir().exists(name))
        };
        // ANCHOR: exercise_limits (4) write the limits: write(2) memory.max, pids.max, cpu.max (v2) or their v1 files
        match self.version {
            Some(Version::V2) => {
                if let Some(bytes) = limits.memory {
                    write("memory", "memory.max", bytes.to_string())?;
                    if exists("memory", "memory.swap.max") {
                        write("memory", "memory.swap.max", "0".into())?;
                    }
                }
                if let Some(n) = limits.pids {
                    write("pids", "pids.max", n.to_string())?;
                }
                if let Some(cpus) = &limits.cpus {
                    write("cpu", "cpu.max", format!("{} {PERIOD_US}", cpus.quota_us))?;
                }
            }
            Some(Version::V1) => {
                if let Some(bytes) = limits.memory {
                    write("memory", "memory.limit_in_bytes", bytes.to_string())?;
                    if exists("memory", "memory.memsw.limit_in_bytes") {
                        write("memory", "memory.memsw.limit_in_bytes", bytes.to_string())?;
                    }
                }
                if let Some(n) = limits.pids {
                    write("pids", "pids.max", n.to_string())?;
                }
                if let Some(cpus) = &limits.cpus {
                    write("cpu", "cpu.cfs_period_us", PERIOD_US.to_string())?;
                    write("cpu", "cpu.cfs_quota_us", cpus.quota_us.to_string())?;
                }
            }
            None => {} // --no-cgroup
        }
        Ok(())
        // ANCHOR_END: exercise_limits
    }
    // ANCHOR_END: limits

    // ANCHOR: join
    /// (5) In the container's first process, first thing after the fork: it
    /// moves itself into the container's cgroup, in every tree, by writing `0`
    /// to `cgroup.procs`, which means "the process that writes this". So it
    /// runs nothing of the container's outside its limits, and every process
    /// it forks, the command first, is born inside. It goes through the
    /// handles of (3), before step04's `start_clean` closes them. In the child
    /// between fork and exec: system calls only, no allocation, and a failure
    /// goes through step04's `die`.
    pub fn join(&self) {
        for tree in &self.trees {
            // ANCHOR: exercise_join (5) join the cgroup: write(2) "0" to cgroup.procs, through an openat(2) on the cgroup's handle
            let procs = openat(
                tree.dir(),
                c"cgroup.procs",
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            );
            let written = procs.and_then(|procs| nix::unistd::write(procs, b"0"));
            if let Err(err) = written {
                let path = tree.path.as_os_str().as_bytes();
                die(125, &[b"failed to join the cgroup ", path, b": ", err.desc().as_bytes()]);
            }
            // ANCHOR_END: exercise_join
        }
    }
    // ANCHOR_END: join

    // ANCHOR: report
    /// (6) After the container: which limits it ran into, read from the
    /// counters the kernel keeps. `oom_kill` counts the processes the OOM
    /// killer killed in this cgroup; pids' `max` counts the forks it refused.
    pub fn report(&self) -> Vec<String> {
        let mut said = Vec::new();
        let events = match self.version {
            Some(Version::V2) => "memory.events",
            _ => "memory.oom_control",
        };
        // ANCHOR: exercise_report (6) say which limit was hit: read(2) oom_kill in memory.events (v2) or memory.oom_control (v1), max in pids.events
        if let (Some(tree), Some(bytes)) = (self.tree("memory"), self.limits.memory) {
            let killed =
                read_file(tree.dir(), events).map(|text| count(&text, "oom_kill")).unwrap_or(0);
            if killed > 0 {
                said.push(format!(
                    "the container ran out of memory: it reached its limit (--memory {}) and the \
                     kernel's OOM killer killed {killed} of its processes",
                    human_bytes(bytes)
                ));
                if self.limits.verbose {
                    said.push(format!("(counted in {events}: oom_kill {killed})"));
                }
            }
        }
        if let (Some(tree), Some(max)) = (self.tree("pids"), self.limits.pids) {
            let refused =
                read_file(tree.dir(), "pids.events").map(|text| count(&text, "max")).unwrap_or(0);
            if refused > 0 {
                said.push(format!(
                    "the container reached its limit of {max} processes (--pids {max}): the \
                     kernel refused {refused} forks (pids.events: max {refused})"
                ));
            }
        }
        // ANCHOR_END: exercise_report
        said
    }
    // ANCHOR_END: report

    // ANCHOR: remove
    /// (7) Removes the container's cgroup, through the handles opened in (3).
    /// Processes still in it are killed first: the kernel removes only an
    /// empty cgroup. v2 kills them all at once with `cgroup.kill` (Linux
    /// 5.14+); v1 sends SIGKILL to each PID in `cgroup.procs`. Then the
    /// parents of `--cgroup-parent` go too, if no other container uses them.
    /// <https://man7.org/linux/man-pages/man2/rmdir.2.html>
    pub fn remove(&mut self) -> Result<()> {
        if self.removed || std::process::id() != self.owner {
            return Ok(()); // a forked child never removes its runtime's cgroup
        }
        self.removed = true;
        let deadline = Instant::now() + Duration::from_secs(5);
        for tree in &self.trees {
            let (levels, names) = (&tree.levels, &tree.names);
            let own = names.last().expect("the container's own name");
            let above = &levels[levels.len() - 2];
            // ANCHOR: exercise_remove (7) remove the cgroup: kill what is left (cgroup.kill), then rmdir(2) it, and its parents while empty
            loop {
                if tree.dir().exists("cgroup.kill") {
                    let _ = write_file(tree.dir(), &tree.path, "cgroup.kill", "1");
                } else {
                    let procs = read_file(tree.dir(), "cgroup.procs").unwrap_or_default();
                    for pid in procs.split_whitespace().filter_map(|p| p.parse().ok()) {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
                match above.remove_dir(own) {
                    Ok(()) => break,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => break,
                    // EBUSY: a killed process has not quite exited yet
                    Err(err)
                        if err.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(err) => bail!("failed to remove the cgroup {}: {err}", tree.path.display()),
                }
            }
            // The parents, from the bottom up, while they are empty.
            for (at, name) in levels[..levels.len() - 2].iter().zip(&names[..names.len() - 1]).rev()
            {
                if at.remove_dir(name).is_err() {
                    break; // ENOTEMPTY or EBUSY: another container's; leave it
                }
            }
            // ANCHOR_END: exercise_remove
        }
        Ok(())
    }
    // ANCHOR_END: remove

    // ANCHOR: end
    /// When the container has ended: (6) say which limits it ran into, and
    /// (7) remove its cgroup. A failure here is reported, and does not change
    /// the container's exit status.
    pub fn end(mut self) {
        for said in self.report() {
            report(said);
        }
        if let Err(err) = self.remove() {
            report(format_args!("{err:#}\nhint: the next run of this step removes it"));
        }
    }
    // ANCHOR_END: end
}

/// Whatever happens to the runtime after (3), the cgroup goes with it,
/// unless a `kill -9` gives no chance: then (2) of the next run removes it.
impl Drop for Cgroup {
    fn drop(&mut self) {
        if let Err(err) = self.remove() {
            report(format_args!("{err:#}"));
        }
    }
}

/// `67108864` as `64M`, the way `--memory` takes it.
pub fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b % (1 << 30) == 0 => format!("{}G", b >> 30),
        b if b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b if b % (1 << 10) == 0 => format!("{}K", b >> 10),
        b => b.to_string(),
    }
}

#[cfg(test)]
mod tests {
    //! The cgroup logic against fake cgroup trees: temporary directories with
    //! the files the kernel would show. What a fake cannot do (make a new
    //! cgroup's files, remove a directory with files in it) the test does in
    //! the kernel's place, and says so. The real trees are tested by running
    //! step08 (tests/tests/cgroups.rs).

    use super::*;
    use std::fs;

    fn args(line: &[&str]) -> Options {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            cgroup: Options,
        }
        Cli::try_parse_from(std::iter::once("step08").chain(line.iter().copied()))
            .unwrap_or_else(|err| panic!("{line:?} should parse: {err}"))
            .cgroup
    }

    #[test]
    fn memory_takes_bytes_and_suffixes() {
        assert_eq!(parse_memory("64M"), Ok(64 << 20));
        assert_eq!(parse_memory("64m"), Ok(64 << 20));
        assert_eq!(parse_memory("1G"), Ok(1 << 30));
        assert_eq!(parse_memory("2048k"), Ok(2 << 20));
        assert_eq!(parse_memory("1048576"), Ok(1 << 20));
        for bad in ["lots", "", "1.5G", "-1", "64X", "M", "0", "10K", "99999999999G"] {
            assert!(parse_memory(bad).is_err(), "--memory {bad:?} should be refused");
        }
        assert_eq!(human_bytes(64 << 20), "64M");
        assert_eq!(human_bytes(1 << 30), "1G");
        assert_eq!(human_bytes(1000), "1000");
    }

    #[test]
    fn pids_and_cpus_are_checked() {
        assert_eq!(parse_pids("20"), Ok(20));
        for bad in ["0", "-1", "many", "1.5"] {
            assert!(parse_pids(bad).is_err(), "--pids {bad:?} should be refused");
        }
        assert_eq!(parse_cpus("0.5").map(|c| c.quota_us), Ok(50_000));
        assert_eq!(parse_cpus("0.01").map(|c| c.quota_us), Ok(1_000));
        for bad in ["-1", "0", "0.001", "half", "NaN", "inf", "1000"] {
            assert!(parse_cpus(bad).is_err(), "--cpus {bad:?} should be refused");
        }
        assert_eq!(
            parse_parent("container-workshop/tests-1"),
            Ok("container-workshop/tests-1".into())
        );
        for bad in ["", "/abs", "a/../b", "a//b", "..", "a b"] {
            assert!(parse_parent(bad).is_err(), "--cgroup-parent {bad:?} should be refused");
        }
        let parsed = args(&["--memory", "64M", "--pids", "20", "--cpus", "0.5"]);
        assert_eq!(parsed.needed(), ["memory", "pids", "cpu"]);
        assert_eq!(parsed.cgroup_parent, WORKSHOP);
        assert!(args(&[]).needed().is_empty());
    }

    /// A mountinfo line for a cgroup filesystem mounted at `at`.
    fn mount_line(id: u32, at: &Path, fstype: &str, options: &str) -> String {
        format!("{id} 1 0:{id} / {} rw,nosuid - {fstype} cgroup {options}\n", at.display())
    }

    /// A fake v2 tree whose root offers `controllers`.
    fn fake_v2(controllers: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("a temp dir");
        for (file, text) in [
            ("cgroup.controllers", controllers),
            ("cgroup.subtree_control", ""),
            ("cgroup.procs", ""),
        ] {
            fs::write(root.path().join(file), text).expect("write a fake cgroup file");
        }
        root
    }

    #[test]
    fn detects_pure_v2() {
        let root = fake_v2("cpuset cpu io memory hugetlb pids rdma misc\n");
        let mountinfo = mount_line(30, root.path(), "cgroup2", "rw,nsdelegate");
        let layout =
            detect(&mountinfo, "0::/user.slice/user-1000.slice/session-2.scope\n").unwrap();
        assert_eq!(layout.version, Version::V2);
        assert_eq!(layout.hierarchies.len(), 1);
        assert_eq!(layout.hierarchies[0].controllers, ["memory", "pids", "cpu"]);
        assert_eq!(
            layout.hierarchies[0].own,
            root.path().join("user.slice/user-1000.slice/session-2.scope")
        );
    }

    /// This development machine: v1 controllers, and a v2 tree with hugetlb
    /// only; this process's memory cgroup is not the root one.
    #[test]
    fn detects_hybrid_as_v1_when_v2_lacks_controllers() {
        let unified = fake_v2("hugetlb\n");
        let (memory, pids, cpu) =
            (Path::new("/fake/memory"), Path::new("/fake/pids"), Path::new("/fake/cpu"));
        let mountinfo = [
            mount_line(1, cpu, "cgroup", "rw,cpu"),
            mount_line(2, Path::new("/fake/cpuacct"), "cgroup", "rw,cpuacct"),
            mount_line(3, memory, "cgroup", "rw,memory"),
            mount_line(4, pids, "cgroup", "rw,pids"),
            mount_line(5, Path::new("/fake/systemd"), "cgroup", "rw,name=systemd"),
            mount_line(6, unified.path(), "cgroup2", "rw"),
        ]
        .concat();
        let self_cgroup =
            "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/bffa\n2:cpuacct:/\n1:cpu:/\n0::/\n";
        let layout = detect(&mountinfo, self_cgroup).unwrap();
        assert_eq!(layout.version, Version::V1);
        let found: Vec<(&Path, &Path, Vec<String>)> = layout
            .hierarchies
            .iter()
            .map(|h| (h.mount_point.as_path(), h.own.as_path(), h.controllers.clone()))
            .collect();
        assert_eq!(
            found,
            [
                (cpu, cpu, vec!["cpu".to_string()]),
                (memory, Path::new("/fake/memory/process_api/bffa"), vec!["memory".to_string()]),
                (pids, pids, vec!["pids".to_string()]),
            ]
        );
        assert!(layout.why.contains("hybrid"), "{}", layout.why);
    }

    #[test]
    fn detects_hybrid_as_v2_when_v2_has_the_controllers() {
        let unified = fake_v2("memory pids cpu\n");
        let mountinfo = [
            mount_line(1, Path::new("/fake/cpu,cpuacct"), "cgroup", "rw,cpu,cpuacct"),
            mount_line(2, unified.path(), "cgroup2", "rw"),
        ]
        .concat();
        assert_eq!(detect(&mountinfo, "0::/\n").unwrap().version, Version::V2);
    }

    #[test]
    fn detects_pure_v1_and_no_cgroups() {
        let mountinfo =
            mount_line(1, Path::new("/sys/fs/cgroup/cpu,cpuacct"), "cgroup", "rw,cpu,cpuacct");
        let layout = detect(&mountinfo, "3:cpu,cpuacct:/docker/abc\n").unwrap();
        assert_eq!(layout.version, Version::V1);
        assert_eq!(layout.hierarchies[0].own, Path::new("/sys/fs/cgroup/cpu,cpuacct/docker/abc"));
        let err = detect("22 1 0:5 / /proc rw - proc proc rw\n", "0::/\n").unwrap_err();
        assert!(err.to_string().contains("no cgroup filesystem is mounted"), "{err:#}");
    }

    #[test]
    fn mountinfo_escapes_are_read() {
        assert_eq!(unescape(r"/mnt/my\040cgroups"), "/mnt/my cgroups");
        assert_eq!(unescape(r"/plain"), "/plain");
    }

    /// As root, the highest cgroup; as a user, the subtree systemd delegated;
    /// elsewhere, none, and the message says what to do.
    #[test]
    fn the_delegated_cgroup_is_the_highest_writable_one() {
        let user = Hierarchy {
            mount_point: "/sys/fs/cgroup".into(),
            controllers: vec![],
            own:
                "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/run-1.scope"
                    .into(),
        };
        assert_eq!(delegated(&user, |_| true), Some("/sys/fs/cgroup".into()));
        let systemd = |dir: &Path| {
            dir.starts_with("/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service")
        };
        assert_eq!(
            delegated(&user, systemd),
            Some("/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service".into())
        );
        assert_eq!(delegated(&user, |_| false), None);
        let message = format!("{:#}", not_delegated(&user));
        for needed in [
            "none is delegated",
            "user@.service",
            "systemd-run --user --scope -p Delegate=yes",
            "--no-cgroup",
        ] {
            assert!(message.contains(needed), "the message should say {needed:?}: {message}");
        }
    }

    /// Writes the files the kernel would put in a new cgroup `dir`.
    fn kernel_fills(dir: &Path, files: &[&str]) {
        for file in files {
            fs::write(dir.join(file), "").expect("write a fake cgroup file");
        }
    }

    /// Reads a fake cgroup file.
    fn read(path: impl AsRef<Path>) -> String {
        fs::read_to_string(path.as_ref())
            .unwrap_or_else(|err| panic!("{}: {err}", path.as_ref().display()))
    }

    /// (5) with a real fork: the child joins the cgroup, and exits with the
    /// status it got (0 if it went on, 125 from step04's `die` if not).
    fn fork_and_join(cgroup: &Cgroup) -> i32 {
        // SAFETY: the child makes system calls only (join, _exit), as after any fork
        // of a process with threads.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                cgroup.join();
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                match nix::sys::wait::waitpid(child, None).expect("wait for the child") {
                    nix::sys::wait::WaitStatus::Exited(_, code) => code,
                    status => panic!("the child ended with {status:?}"),
                }
            }
        }
    }

    /// The v2 path, start to end, in a fake unified tree.
    #[test]
    fn v2_in_a_fake_tree() {
        let root = fake_v2("cpuset cpu io memory pids\n");
        let mountinfo = mount_line(30, root.path(), "cgroup2", "rw");
        let layout = detect(&mountinfo, "0::/init.scope\n").unwrap();
        // `container-workshop` exists already (another container made it) with its files.
        let parent = root.path().join(WORKSHOP);
        fs::create_dir(&parent).unwrap();
        kernel_fills(&parent, &["cgroup.controllers", "cgroup.subtree_control", "cgroup.procs"]);
        let limits = args(&["--memory", "64M", "--pids", "20", "--cpus", "0.5"]);
        let mut cgroup = Cgroup::make(&layout, &limits, |_| true).unwrap();
        let dir = parent.join(&cgroup.name);
        assert_eq!(cgroup.paths(), std::slice::from_ref(&dir));
        assert!(
            cgroup.name.starts_with(&format!("runtime-{}-", std::process::id())),
            "{}",
            cgroup.name
        );
        assert!(!owner_is_gone(&cgroup.name), "our own cgroup is not stale");
        // (3) the controllers, enabled from the root down to our parent
        assert_eq!(read(root.path().join("cgroup.subtree_control")), "+memory +pids +cpu");
        assert_eq!(read(parent.join("cgroup.subtree_control")), "+memory +pids +cpu");
        // (4) the limits, in v2's files
        let files = ["memory.max", "memory.swap.max", "pids.max", "cpu.max", "cgroup.procs"];
        kernel_fills(&dir, &files);
        kernel_fills(&dir, &["memory.events", "pids.events", "cgroup.kill"]);
        cgroup.write_limits().unwrap();
        assert_eq!(read(dir.join("memory.max")), "67108864");
        assert_eq!(read(dir.join("memory.swap.max")), "0");
        assert_eq!(read(dir.join("pids.max")), "20");
        assert_eq!(read(dir.join("cpu.max")), "50000 100000");
        // (5) the child joins: "0" means the process that writes it
        assert_eq!(fork_and_join(&cgroup), 0, "the child should have gone on");
        assert_eq!(read(dir.join("cgroup.procs")), "0", "the child writes 0 to cgroup.procs");
        // (6) the kernel's counters, as a container that hit both limits leaves them
        fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        fs::write(dir.join("pids.events"), "max 7\n").unwrap();
        let said = cgroup.report().join("\n");
        assert!(
            said.contains("--memory 64M") && said.contains("killed 1 of its processes"),
            "{said}"
        );
        assert!(said.contains("refused 7 forks") && said.contains("--pids 20"), "{said}");
        // (7) cgroup.kill first. A fake directory with files in it cannot be
        // removed (the kernel's can): that error is the fake's.
        let err = cgroup.remove().unwrap_err();
        assert_eq!(read(dir.join("cgroup.kill")), "1", "remove() should write 1 to cgroup.kill");
        assert!(format!("{err:#}").contains("Directory not empty"), "{err:#}");
    }

    /// (3) failing halfway leaves nothing: here the new `container-workshop`
    /// has no `cgroup.subtree_control` (a fake's), so enabling the controllers
    /// for its children fails after its mkdir. The tree was as before.
    #[test]
    fn v2_make_failing_halfway_removes_what_it_made() {
        let root = fake_v2("memory pids cpu\n");
        let layout = detect(&mount_line(30, root.path(), "cgroup2", "rw"), "0::/\n").unwrap();
        let ls = |dir: &Path| {
            let mut names: Vec<_> =
                fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
            names.sort();
            names
        };
        let before = ls(root.path());
        let err = Cgroup::make(&layout, &args(&["--pids", "20"]), |_| true).unwrap_err();
        assert!(format!("{err:#}").contains("cgroup.subtree_control"), "{err:#}");
        assert_eq!(ls(root.path()), before, "{WORKSHOP} should be gone again");
    }

    /// (7) as the kernel removes a cgroup: its files go with it. Our level
    /// goes; the shared parent stays while another container is in it.
    #[test]
    fn v2_remove_goes_up_while_empty() {
        let root = fake_v2("memory pids cpu\n");
        let layout = detect(&mount_line(30, root.path(), "cgroup2", "rw"), "0::/\n").unwrap();
        let parent = root.path().join("container-workshop/tests");
        fs::create_dir_all(&parent).unwrap();
        for level in [root.path().join(WORKSHOP), parent.clone()] {
            kernel_fills(&level, &["cgroup.subtree_control"]);
        }
        let limits = args(&["--cgroup-parent", "container-workshop/tests"]);
        let mut cgroup = Cgroup::make(&layout, &limits, |_| true).unwrap();
        let other = parent.join("runtime-1-1"); // another container's, not stale for this test
        fs::create_dir(&other).unwrap();
        for level in [root.path().join(WORKSHOP), parent.clone()] {
            fs::remove_file(level.join("cgroup.subtree_control")).unwrap(); // as the kernel would, on rmdir
        }
        cgroup.remove().unwrap();
        assert!(!parent.join(&cgroup.name).exists(), "our cgroup should be gone");
        assert!(
            other.exists() && parent.exists(),
            "another container's cgroup and its parent stay"
        );
        fs::remove_dir(&other).unwrap();
    }

    /// The v1 path in fake hierarchies: one directory per controller.
    #[test]
    fn v1_in_fake_hierarchies() {
        let top = tempfile::tempdir().unwrap();
        let mut mountinfo = String::new();
        for (id, name) in ["memory", "pids", "cpu"].iter().enumerate() {
            let at = top.path().join(name);
            fs::create_dir(&at).unwrap();
            kernel_fills(&at, &["cgroup.procs"]);
            mountinfo += &mount_line(id as u32 + 1, &at, "cgroup", &format!("rw,{name}"));
        }
        let layout = detect(&mountinfo, "4:memory:/\n8:pids:/\n1:cpu:/\n").unwrap();
        assert_eq!(layout.version, Version::V1);
        let limits = args(&["--memory", "64M", "--pids", "20", "--cpus", "0.5"]);
        let mut cgroup = Cgroup::make(&layout, &limits, |_| true).unwrap();
        let dir = |controller: &str| top.path().join(controller).join(WORKSHOP).join(&cgroup.name);
        kernel_fills(
            &dir("memory"),
            &["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "cgroup.procs"],
        );
        kernel_fills(&dir("pids"), &["pids.max", "cgroup.procs"]);
        kernel_fills(&dir("cpu"), &["cpu.cfs_period_us", "cpu.cfs_quota_us", "cgroup.procs"]);
        cgroup.write_limits().unwrap();
        assert_eq!(read(dir("memory").join("memory.limit_in_bytes")), "67108864");
        assert_eq!(read(dir("memory").join("memory.memsw.limit_in_bytes")), "67108864");
        assert_eq!(read(dir("pids").join("pids.max")), "20");
        assert_eq!(read(dir("cpu").join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(dir("cpu").join("cpu.cfs_quota_us")), "50000");
        assert_eq!(fork_and_join(&cgroup), 0, "the child should have gone on");
        for controller in ["memory", "pids", "cpu"] {
            let procs = read(dir(controller).join("cgroup.procs"));
            assert_eq!(procs, "0", "{controller}: the child joins the cgroup in every hierarchy");
        }
        fs::write(
            dir("memory").join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        cgroup.limits.verbose = true;
        let said = cgroup.report().join("\n");
        assert!(said.contains("killed 2 of its processes"), "{said}");
        assert!(said.contains("(counted in memory.oom_control: oom_kill 2)"), "{said}");
        for controller in ["memory", "pids", "cpu"] {
            for entry in fs::read_dir(dir(controller)).unwrap() {
                fs::remove_file(entry.unwrap().path()).unwrap(); // as the kernel would, on rmdir
            }
        }
        cgroup.remove().unwrap();
        for controller in ["memory", "pids", "cpu"] {
            assert!(
                !top.path().join(controller).join(WORKSHOP).exists(),
                "{controller}: nothing of ours is left"
            );
        }
    }

    /// A controller the limits need and the tree lacks: refused before anything is made.
    #[test]
    fn a_missing_controller_is_refused_before_anything_is_made() {
        let root = fake_v2("memory pids\n");
        let layout = detect(&mount_line(30, root.path(), "cgroup2", "rw"), "0::/\n").unwrap();
        let err = Cgroup::make(&layout, &args(&["--cpus", "0.5"]), |_| true).unwrap_err();
        assert!(format!("{err:#}").contains("the cpu controller is not available"), "{err:#}");
        assert!(!root.path().join(WORKSHOP).exists());
    }

    /// Rootless on v2: the delegated cgroup is the user's, and lacks a
    /// controller the root has: refused, naming the delegation.
    #[test]
    fn a_controller_not_delegated_is_refused() {
        let root = fake_v2("memory pids cpu\n");
        let service = root.path().join("user.slice/user@1000.service");
        fs::create_dir_all(service.join("app.slice")).unwrap();
        kernel_fills(&service, &["cgroup.subtree_control", "cgroup.procs"]);
        fs::write(service.join("cgroup.controllers"), "memory pids\n").unwrap();
        let mountinfo = mount_line(30, root.path(), "cgroup2", "rw");
        let layout = detect(&mountinfo, "0::/user.slice/user@1000.service/app.slice\n").unwrap();
        let users = |dir: &Path| dir.starts_with(&service);
        let err = Cgroup::make(&layout, &args(&["--cpus", "0.5"]), users).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("the cpu controller is not delegated to"), "{message}");
        assert!(message.contains("Delegate="), "{message}");
        assert!(!service.join(WORKSHOP).exists(), "nothing should be made");
        // memory and pids are delegated: the cgroup is made in the user's tree
        // (whose container-workshop the kernel would fill with its files).
        fs::create_dir(service.join(WORKSHOP)).unwrap();
        kernel_fills(&service.join(WORKSHOP), &["cgroup.subtree_control"]);
        let mut cgroup = Cgroup::make(&layout, &args(&["--pids", "20"]), users).unwrap();
        assert_eq!(cgroup.paths(), [service.join(WORKSHOP).join(&cgroup.name)]);
        assert_eq!(read(service.join("cgroup.subtree_control")), "+memory +pids");
        cgroup.removed = true; // the fake's directory is removed with the temp dir
    }

    /// Without a delegated subtree: refused, and nothing made.
    #[test]
    fn no_delegation_is_refused_before_anything_is_made() {
        let root = fake_v2("memory pids cpu\n");
        let layout =
            detect(&mount_line(30, root.path(), "cgroup2", "rw"), "0::/user.slice\n").unwrap();
        let err = Cgroup::make(&layout, &args(&[]), |_| false).unwrap_err();
        assert!(format!("{err:#}").contains("none is delegated to this user"), "{err:#}");
        assert!(!root.path().join(WORKSHOP).exists());
    }

    /// (2) Only a cgroup of ours whose runtime is provably gone is removed.
    #[test]
    fn stale_cgroups_are_those_whose_runtime_is_gone() {
        let parent = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let start = start_time(me).unwrap();
        let alive = format!("runtime-{me}-{start}");
        let reused = format!("runtime-{me}-{}", start + 1); // our PID, another process's start
        let names =
            [alive.as_str(), &reused, "runtime-999999999-1", "runtime-999999998-1", "not-ours"];
        for name in names {
            fs::create_dir(parent.path().join(name)).unwrap();
        }
        // Its processes still run: only the kernel's rmdir would say EBUSY; here the file does.
        fs::write(parent.path().join("runtime-999999998-1/cgroup.procs"), "4242\n").unwrap();
        let said = remove_stale(parent.path()).join("\n");
        let left: Vec<String> = {
            let mut names: Vec<String> = fs::read_dir(parent.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into())
                .collect();
            names.sort();
            names
        };
        assert_eq!(left, ["not-ours", alive.as_str(), "runtime-999999998-1"]);
        assert!(said.contains(&format!("{reused}: its runtime (PID {me}) is gone")), "{said}");
        assert!(
            said.contains("runtime-999999999-1: its runtime (PID 999999999) is gone"),
            "{said}"
        );
        assert!(said.contains("processes 4242 still run in it"), "{said}");
        assert!(
            owner_is_gone("runtime-999999999-1")
                && !owner_is_gone("not-ours")
                && !owner_is_gone(&alive)
        );
    }

    /// (5) A child that cannot join the cgroup does not go on: it dies with
    /// 125, as the runtime's failures do, and says which cgroup. With
    /// `--no-cgroup` there is nothing to join, and it goes on.
    #[test]
    fn a_failed_join_stops_the_child() {
        let root = fake_v2("memory pids cpu\n");
        let layout = detect(&mount_line(30, root.path(), "cgroup2", "rw"), "0::/\n").unwrap();
        fs::create_dir(root.path().join(WORKSHOP)).unwrap();
        kernel_fills(&root.path().join(WORKSHOP), &["cgroup.subtree_control"]);
        let mut cgroup = Cgroup::make(&layout, &args(&[]), |_| true).unwrap();
        // No cgroup.procs in the fake: opening it fails, as EACCES would.
        assert_eq!(fork_and_join(&cgroup), 125, "the child should have stopped, with 125");
        cgroup.removed = true; // the fake's directory is removed with the temp dir
        let none = Cgroup::create(&args(&["--no-cgroup"])).unwrap();
        assert!(none.paths().is_empty() && none.version.is_none());
        assert_eq!(fork_and_join(&none), 0, "with --no-cgroup, nothing to join");
    }
}

//! `cargo xtask doctor`: can this machine run the steps? If not, what to do.
//!
//! The work is split in two, so the judgement can be unit-tested:
//! [`Facts::gather`] reads the machine (files in `/proc`, a few system calls,
//! one test process), and pure functions turn facts into checklist [`Line`]s.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::run::Step;

/// How a checklist line starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// ✓ fine.
    Ok,
    /// ! worth knowing, may need action.
    Warn,
    /// ✗ a problem; the lines after it say what to do.
    Fail,
    /// · for your information.
    Info,
}

/// One line of the checklist, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub mark: Mark,
    pub text: String,
    pub hints: Vec<String>,
}

impl Line {
    fn new(mark: Mark, text: impl Into<String>) -> Line {
        Line { mark, text: text.into(), hints: Vec::new() }
    }

    fn hint(mut self, hint: impl Into<String>) -> Line {
        self.hints.push(hint.into());
        self
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.mark {
            Mark::Ok => "✓",
            Mark::Warn => "!",
            Mark::Fail => "✗",
            Mark::Info => "·",
        };
        writeln!(f, "{mark} {}", self.text)?;
        for hint in &self.hints {
            writeln!(f, "    → {hint}")?;
        }
        Ok(())
    }
}

/// The outcome of actually trying to create a user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A user namespace, and a mount inside it, worked.
    Works,
    /// Creating the user namespace failed.
    NoUserNamespace(String),
    /// The user namespace worked, but mounting inside it did not.
    NoMount(String),
}

/// Which cgroup layout the machine uses (cgroups(7)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cgroups {
    /// Only cgroup v2, mounted at `/sys/fs/cgroup`.
    V2,
    /// Only v1 controllers, in a tmpfs at `/sys/fs/cgroup`.
    V1,
    /// v1 controllers, and v2 at `/sys/fs/cgroup/unified`.
    Hybrid,
    /// None of the above (no `/sys/fs/cgroup`, or something else there).
    Unknown,
}

/// The kind of filesystem at a path, as far as cgroups go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    Cgroup2,
    Tmpfs,
    Other,
    Missing,
}

/// The `unshare` command found on `PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unshare {
    /// util-linux's, with its version line.
    UtilLinux(String),
    /// Another one (BusyBox's), at this path.
    Other(PathBuf),
    Missing,
}

/// What we know about `./rootfs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootfsFacts {
    pub present: bool,
    /// `bin/sh` exists (as a file or a symlink: in Alpine it is a link to busybox).
    pub has_sh: bool,
    /// `proc` is a real directory (the steps mount proc on it).
    pub proc_is_dir: bool,
    /// Mount points at or under the rootfs, deepest first.
    pub mounted: Vec<PathBuf>,
}

/// Everything the doctor looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The kernel release, as `uname -r` prints it.
    pub kernel: String,
    /// The CPU architecture, as `std::env::consts::ARCH` names it (`x86_64`, `aarch64`).
    pub arch: String,
    /// Effective uid 0.
    pub root: bool,
    /// `sudo` is on `PATH`.
    pub sudo: bool,
    /// Contents of `/proc/sys/user/max_user_namespaces`, if readable.
    pub max_user_namespaces: Option<String>,
    /// Contents of `/proc/sys/kernel/unprivileged_userns_clone` (Debian), if present.
    pub unprivileged_userns_clone: Option<String>,
    /// Contents of `/proc/sys/kernel/apparmor_restrict_unprivileged_userns` (Ubuntu), if present.
    pub apparmor_restrict: Option<String>,
    /// The uid the probe ran as (65534 when we are root), and what happened.
    pub probe: (u32, Probe),
    pub cgroups: Cgroups,
    /// The controllers the v2 tree offers (its root's `cgroup.controllers`:
    /// `/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a hybrid machine).
    pub v2_controllers: Option<String>,
    /// Whether `/` is a shared mount.
    pub root_shared: Option<bool>,
    pub rootfs: RootfsFacts,
    pub unshare: Unshare,
}

impl Facts {
    /// Can the steps get root here somehow: as root, through sudo, or rootless?
    pub fn can_run_steps(&self) -> bool {
        !self.commands_for("stepNN").is_empty()
    }

    /// The commands that run step `name` here, with how they get root.
    pub fn commands_for(&self, name: &str) -> Vec<String> {
        let mut commands = Vec::new();
        if self.root {
            commands.push(format!("cargo xtask run {name} (as root)"));
        } else if self.sudo {
            commands.push(format!("cargo xtask run {name} (through sudo)"));
        }
        if self.probe.1 == Probe::Works {
            commands.push(format!("cargo xtask run {name} --rootless"));
        }
        commands
    }
}

/// The whole checklist, in order.
pub fn checks(facts: &Facts) -> Vec<Line> {
    let other_way = facts.root || facts.sudo;
    let mut lines = vec![
        Line::new(Mark::Ok, format!("Linux, kernel {}", facts.kernel)),
        privileges(facts.root, facts.sudo, facts.probe.1 == Probe::Works),
    ];
    let mut userns = vec![
        userns_settings(
            facts.max_user_namespaces.as_deref(),
            facts.unprivileged_userns_clone.as_deref(),
            facts.apparmor_restrict.as_deref(),
        ),
        userns_probe(facts.probe.0, &facts.probe.1),
    ];
    // Without user namespaces only --rootless is lost; as root or with sudo that is a warning.
    for line in &mut userns {
        if line.mark == Mark::Fail && other_way {
            line.mark = Mark::Warn;
        }
    }
    lines.append(&mut userns);
    lines.push(cgroups(facts.cgroups, facts.v2_controllers.as_deref()));
    lines.push(architecture(&facts.arch));
    lines.push(shared_root(facts.root_shared));
    lines.push(rootfs(
        &facts.rootfs,
        facts.root,
        crate::download::pinned_sha512(&facts.arch).is_some(),
    ));
    lines.push(unshare(&facts.unshare));
    lines
}

/// One line per step: can it run here, how, and if not, why.
pub fn steps(facts: &Facts) -> Vec<Line> {
    let rootfs_ok = facts.rootfs.has_sh && facts.rootfs.proc_is_dir;
    let pinned = crate::download::pinned_sha512(&facts.arch).is_some();
    Step::ALL
        .iter()
        .map(|&step| {
            let name = step.short();
            let commands = facts.commands_for(name);
            if commands.is_empty() {
                return Line::new(Mark::Fail, format!("{name} cannot run here: it needs root"))
                    .hint("work as root, install sudo, or allow unprivileged user namespaces (see above)");
            }
            let mut line = Line::new(Mark::Ok, format!("{name} can run here: {}", commands.join(", or ")));
            if matches!(step, Step::Step07Overlay | Step::Step08Cgroups) && !rootless_overlay(&facts.kernel) && commands.iter().any(|c| c.ends_with("--rootless")) {
                line.mark = Mark::Warn;
                line = line.hint(format!("not with --rootless: an overlay in a user namespace needs Linux 5.11 or later, and this is {}", facts.kernel));
            }
            if step == Step::Step08Cgroups && commands.iter().any(|c| c.ends_with("--rootless")) {
                line = line.hint("with --rootless, it needs a cgroup tree delegated to you (run it under `systemd-run --user --scope -p Delegate=yes`), or --no-cgroup to run without a cgroup, and so without limits");
            }
            if step.needs_rootfs() && !rootfs_ok {
                if pinned {
                    line.text += " (the first run makes ./rootfs)";
                } else {
                    line.mark = Mark::Warn;
                    line = line.hint("it needs ./rootfs first: cargo xtask rootfs --from-tar FILE");
                }
            }
            line
        })
        .collect()
}

/// Whether a kernel of this release lets a user namespace mount an overlay
/// (Linux 5.11 or later), as step07 --rootless needs. Unreadable: we assume so.
pub fn rootless_overlay(kernel: &str) -> bool {
    let mut numbers = kernel.split(|c: char| !c.is_ascii_digit()).map(str::parse::<u32>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= (5, 11),
        _ => true,
    }
}

/// What the doctor found, and did, in a directory of per-container
/// directories (step07 and later, `kit::overlay`): `container-<pid>`
/// directories, each locked with flock(2) by its runtime while it runs, and
/// holding a `keep` file when its layer is kept on purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Containers {
    pub dir: PathBuf,
    pub exists: bool,
    /// Left by runtimes that were killed: removed now.
    pub removed: Vec<String>,
    /// In use by a running container.
    pub running: Vec<String>,
    /// Layers kept with --keep-layer.
    pub kept: Vec<String>,
    /// What went wrong, if something did.
    pub error: Option<String>,
}

/// Where the per-container directories of this user's runs are: root's in
/// /run/workshop-containers; rootless ones in $XDG_RUNTIME_DIR/workshop-containers,
/// else /tmp/workshop-containers-<uid> (as kit::overlay decides).
pub fn containers_dir(root: bool, xdg_runtime_dir: Option<&std::ffi::OsStr>, uid: u32) -> PathBuf {
    match xdg_runtime_dir.map(Path::new) {
        _ if root => PathBuf::from("/run/workshop-containers"),
        Some(dir) if dir.is_absolute() => dir.join("workshop-containers"),
        _ => PathBuf::from(format!("/tmp/workshop-containers-{uid}")),
    }
}

/// The checklist lines about the containers' directory.
pub fn containers(found: &Containers) -> Vec<Line> {
    let dir = found.dir.display();
    let mut lines = Vec::new();
    if let Some(error) = &found.error {
        lines.push(
            Line::new(Mark::Warn, format!("cannot look for leftover containers in {dir}: {error}"))
                .hint("as root: sudo cargo xtask doctor"),
        );
    } else if !found.removed.is_empty() {
        lines.push(Line::new(
            Mark::Ok,
            format!(
                "removed {} leftover container director{} in {dir}, left by runtimes that were killed: {}",
                found.removed.len(),
                if found.removed.len() == 1 { "y" } else { "ies" },
                found.removed.join(", ")
            ),
        ));
    } else if found.exists {
        lines.push(Line::new(Mark::Ok, format!("no leftover container directories in {dir}")));
    } else {
        lines.push(Line::new(
            Mark::Info,
            format!("no containers' directory yet ({dir}): step07 makes it"),
        ));
    }
    if !found.running.is_empty() {
        lines.push(Line::new(
            Mark::Info,
            format!("in use by running containers in {dir}: {}", found.running.join(", ")),
        ));
    }
    if !found.kept.is_empty() {
        let sudo = if found.dir.starts_with("/run/workshop-containers") { "sudo " } else { "" };
        let mut line = Line::new(
            Mark::Info,
            format!("container layers kept with --keep-layer in {dir}: {}", found.kept.join(", ")),
        );
        for name in &found.kept {
            line = line.hint(format!(
                "{sudo}rm -r {}   (when you are done with it)",
                found.dir.join(name).display()
            ));
        }
        lines.push(line);
    }
    lines
}

/// What to do on an OS that is not Linux (macOS, most likely).
pub fn not_linux(os: &str) -> Line {
    let name = match os {
        "macos" => "macOS",
        "windows" => "Windows",
        other => other,
    };
    Line::new(
        Mark::Fail,
        format!("this is {name}, not Linux: containers are made of Linux kernel features (namespaces, chroot, /proc), so the steps need a Linux kernel"),
    )
    .hint("use a Linux VM, for example with multipass: `multipass launch --name workshop`, then `multipass shell workshop`")
    .hint("or with lima: `limactl start`, then `lima`")
    .hint("then get the workshop inside the VM and run `cargo xtask doctor` there")
}

/// Who we are, and how the steps can get root.
pub fn privileges(root: bool, sudo: bool, rootless_works: bool) -> Line {
    match (root, sudo) {
        (true, _) => Line::new(Mark::Ok, "running as root (euid 0): the steps run directly"),
        (false, true) => Line::new(Mark::Ok, "not root, and sudo is installed: `cargo xtask run` runs the steps through sudo"),
        (false, false) => {
            Line::new(if rootless_works { Mark::Warn } else { Mark::Fail }, "not root, and sudo is not installed")
                .hint("run the steps with --rootless (needs user namespaces, below), or install sudo, or work as root")
        }
    }
}

/// The kernel's switches for unprivileged user namespaces, from their `/proc/sys` files.
pub fn userns_settings(max: Option<&str>, clone: Option<&str>, apparmor: Option<&str>) -> Line {
    let (max, clone, apparmor) =
        (max.map(str::trim), clone.map(str::trim), apparmor.map(str::trim));
    let mut problems = Vec::new();
    let mut hints: Vec<String> = Vec::new();
    if max == Some("0") {
        problems.push("disabled (user.max_user_namespaces = 0)");
        hints.push(
            "sudo sysctl user.max_user_namespaces=10000   (allows them until the next reboot)"
                .to_owned(),
        );
    }
    if clone == Some("0") {
        problems.push("disabled for ordinary users (kernel.unprivileged_userns_clone = 0, Debian)");
        hints.push(
            "sudo sysctl kernel.unprivileged_userns_clone=1   (until the next reboot)".to_owned(),
        );
    }
    if apparmor == Some("1") {
        problems.push("restricted by AppArmor (kernel.apparmor_restrict_unprivileged_userns = 1, Ubuntu 23.10 and later)");
        hints.push(
            "sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0   (until the next reboot)"
                .to_owned(),
        );
    }
    if problems.is_empty() {
        let limit = max.map(|m| format!(" (max_user_namespaces = {m})")).unwrap_or_default();
        return Line::new(
            Mark::Ok,
            format!("unprivileged user namespaces: allowed by the kernel settings{limit}"),
        );
    }
    hints.push("or skip --rootless: run the steps and the tests with sudo".to_owned());
    Line {
        mark: Mark::Fail,
        text: format!("unprivileged user namespaces: {}", problems.join("; ")),
        hints,
    }
}

/// Whether `uid` appears inside the user namespace whose `/proc/self/uid_map`
/// is `uid_map` (lines of "inside outside count").
pub fn is_mapped(uid_map: &str, uid: u32) -> bool {
    uid_map.lines().any(|line| {
        let numbers: Vec<u64> = line.split_whitespace().filter_map(|n| n.parse().ok()).collect();
        matches!(numbers[..], [inside, _, count] if (inside..inside + count).contains(&u64::from(uid)))
    })
}

/// The result of trying it for real.
pub fn userns_probe(uid: u32, probe: &Probe) -> Line {
    match probe {
        Probe::Works => Line::new(Mark::Ok, format!("a user namespace with a mount inside works (tried as uid {uid}): --rootless works")),
        Probe::NoUserNamespace(err) => Line::new(Mark::Fail, format!("creating a user namespace as uid {uid} fails: {err}"))
            .hint("--rootless will not work here; see the line above, or run the steps with sudo"),
        Probe::NoMount(err) => Line::new(Mark::Fail, format!("a user namespace works as uid {uid}, but mounting inside it fails: {err}"))
            .hint("an LSM (AppArmor, SELinux) probably restricts user namespaces; see the line above, or run the steps with sudo"),
    }
}

/// Which cgroup layout `/sys/fs/cgroup` and `/sys/fs/cgroup/unified` show.
pub fn classify_cgroups(root: FsKind, unified: FsKind) -> Cgroups {
    match (root, unified) {
        (FsKind::Cgroup2, _) => Cgroups::V2,
        (FsKind::Tmpfs, FsKind::Cgroup2) => Cgroups::Hybrid,
        (FsKind::Tmpfs, _) => Cgroups::V1,
        _ => Cgroups::Unknown,
    }
}

/// The cgroup layout, and which of it step08 uses for its limits (the
/// rule of `kit::cgroup::detect`: v2 when its tree has the memory, pids and
/// cpu controllers, or when there is nothing else).
pub fn cgroups(cgroups: Cgroups, v2_controllers: Option<&str>) -> Line {
    let listed = v2_controllers.unwrap_or_default();
    let has_ours =
        ["memory", "pids", "cpu"].iter().all(|c| listed.split_whitespace().any(|l| l == *c));
    match cgroups {
        Cgroups::V2 if has_ours => Line::new(Mark::Ok, "cgroups: v2 only (unified hierarchy at /sys/fs/cgroup): step08 makes its containers' cgroups there"),
        Cgroups::V2 => Line::new(Mark::Warn, format!("cgroups: v2 only (unified hierarchy at /sys/fs/cgroup), but its controllers are `{}`: step08's limits need memory, pids and cpu", listed.trim()))
            .hint("step08 then refuses the limits it cannot set; its other runs work, and --no-cgroup runs without a cgroup"),
        Cgroups::V1 => Line::new(Mark::Ok, "cgroups: v1 only (one hierarchy per controller under /sys/fs/cgroup): step08 makes its containers' cgroups in the memory, pids and cpu hierarchies"),
        Cgroups::Hybrid if has_ours => Line::new(Mark::Ok, "cgroups: hybrid (v1 controllers, and v2 at /sys/fs/cgroup/unified): step08 uses the v2 tree, which has memory, pids and cpu"),
        Cgroups::Hybrid => Line::new(Mark::Ok, "cgroups: hybrid (v1 controllers, and v2 at /sys/fs/cgroup/unified without memory, pids and cpu): step08 uses the v1 hierarchies"),
        Cgroups::Unknown => Line::new(Mark::Warn, "cgroups: not found at /sys/fs/cgroup: step08 cannot limit containers here")
            .hint("mount the v2 tree (`sudo mount -t cgroup2 none /sys/fs/cgroup`), or run step08 with --no-cgroup"),
    }
}

pub fn architecture(arch: &str) -> Line {
    if crate::download::pinned_sha512(arch).is_some() {
        Line::new(
            Mark::Ok,
            format!(
                "architecture {arch}: the article's Alpine {} tarball is pinned for it",
                crate::download::ALPINE_VERSION
            ),
        )
    } else {
        Line::new(Mark::Warn, format!("architecture {arch}: no Alpine tarball is pinned for it"))
            .hint("make ./rootfs from a tarball of your own: cargo xtask rootfs --from-tar FILE (e.g. from `docker container export`)")
    }
}

pub fn shared_root(shared: Option<bool>) -> Line {
    let text = match shared {
        Some(true) => {
            "/ is a shared mount (systemd's default): mounts made in a new mount namespace would \
                       show up on the host too, which is why step 04 first makes every mount private"
        }
        Some(false) => {
            "/ is a private mount here (no systemd?); on most machines it is shared, which is why \
                        step 04 makes every mount private first"
        }
        None => "cannot tell whether / is a shared mount",
    };
    Line::new(Mark::Info, text)
}

/// The state of `./rootfs`.
pub fn rootfs(rootfs: &RootfsFacts, root: bool, pinned: bool) -> Line {
    let make = if pinned { "cargo xtask rootfs" } else { "cargo xtask rootfs --from-tar FILE" };
    if !rootfs.mounted.is_empty() {
        let points: Vec<&Path> = rootfs.mounted.iter().map(PathBuf::as_path).collect();
        let list: Vec<String> = points.iter().map(|p| crate::display_path(p)).collect();
        let mut line = Line::new(
            Mark::Fail,
            format!(
                "mounted on the host inside ./rootfs: {} (left by `mount -t proc proc /proc` in step 01?)",
                list.join(", ")
            ),
        );
        for command in crate::mounts::umount_commands_for(&points, root) {
            line = line.hint(command);
        }
        return line;
    }
    if !rootfs.present {
        let on_host: Vec<&str> =
            Step::ALL.iter().filter(|s| !s.needs_rootfs()).map(|s| s.short()).collect();
        let text =
            format!("no rootfs at ./rootfs (every step but {} needs one)", on_host.join(", "));
        return Line::new(Mark::Fail, text)
            .hint(format!("{make}   (`cargo xtask run` also makes it)"));
    }
    if !rootfs.has_sh {
        return Line::new(Mark::Fail, "./rootfs has no bin/sh: it is not a usable root filesystem")
            .hint(format!("{make} --force"));
    }
    if !rootfs.proc_is_dir {
        return Line::new(
            Mark::Fail,
            "./rootfs/proc is not a directory (the steps mount proc there)",
        )
        .hint("mkdir rootfs/proc");
    }
    Line::new(Mark::Ok, "rootfs at ./rootfs (bin/sh and proc/ are there)")
}

pub fn unshare(unshare: &Unshare) -> Line {
    match unshare {
        Unshare::UtilLinux(version) => Line::new(Mark::Ok, format!("{version}: step 02 compares itself with it")),
        Unshare::Other(path) => Line::new(Mark::Warn, format!("{} is not util-linux's unshare (BusyBox's?)", path.display()))
            .hint("step 02 compares itself with util-linux's: install util-linux (`apt install util-linux`, `dnf install util-linux`)"),
        Unshare::Missing => Line::new(Mark::Warn, "no unshare command: step 02 compares itself with util-linux's")
            .hint("install util-linux (`apt install util-linux`, `dnf install util-linux`)"),
    }
}

/// Prints the checklist and the per-step summary; returns the exit code
/// (0 when the steps can run here).
pub fn doctor() -> anyhow::Result<i32> {
    #[cfg(target_os = "linux")]
    {
        let facts = Facts::gather();
        for line in checks(&facts) {
            crate::show_raw!("{line}");
        }
        let uid = nix::unistd::getuid().as_raw();
        let xdg = std::env::var_os("XDG_RUNTIME_DIR");
        let found = clean_containers(&containers_dir(facts.root, xdg.as_deref(), uid));
        for line in containers(&found) {
            crate::show_raw!("{line}");
        }
        crate::show!();
        crate::show!("steps:");
        for line in steps(&facts) {
            crate::show_raw!("{line}");
        }
        Ok(if facts.can_run_steps() { 0 } else { 1 })
    }
    #[cfg(not(target_os = "linux"))]
    {
        crate::show_raw!("{}", not_linux(std::env::consts::OS));
        Ok(1)
    }
}

#[cfg(target_os = "linux")]
pub use gather::clean_containers;

#[cfg(target_os = "linux")]
mod gather {
    use super::*;
    use std::fs;
    use std::io;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    /// `nobody`: an unprivileged uid to try user namespaces as, when we are root.
    const NOBODY: u32 = 65534;

    impl Facts {
        /// Reads this machine.
        pub fn gather() -> Facts {
            let read = |path: &str| fs::read_to_string(path).ok().map(|s| s.trim().to_owned());
            let root = crate::is_root();
            let mounts = crate::mounts::current().unwrap_or_default();
            Facts {
                kernel: nix::sys::utsname::uname()
                    .map(|u| u.release().to_string_lossy().into_owned())
                    .unwrap_or_else(|_| "(unknown)".to_owned()),
                arch: std::env::consts::ARCH.to_owned(),
                root,
                sudo: crate::find_in_path("sudo").is_some(),
                max_user_namespaces: read("/proc/sys/user/max_user_namespaces"),
                unprivileged_userns_clone: read("/proc/sys/kernel/unprivileged_userns_clone"),
                apparmor_restrict: read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
                probe: probe(root),
                cgroups: classify_cgroups(
                    fs_kind("/sys/fs/cgroup"),
                    fs_kind("/sys/fs/cgroup/unified"),
                ),
                v2_controllers: read("/sys/fs/cgroup/cgroup.controllers")
                    .or_else(|| read("/sys/fs/cgroup/unified/cgroup.controllers")),
                root_shared: crate::mounts::root_is_shared(&mounts),
                rootfs: rootfs_facts(&crate::workspace_root().join("rootfs"), &mounts),
                unshare: find_unshare(),
            }
        }
    }

    fn fs_kind(path: &str) -> FsKind {
        use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, TMPFS_MAGIC, statfs};
        match statfs(path).map(|s| s.filesystem_type()) {
            Ok(kind) if kind == CGROUP2_SUPER_MAGIC => FsKind::Cgroup2,
            Ok(kind) if kind == TMPFS_MAGIC => FsKind::Tmpfs,
            Ok(_) => FsKind::Other,
            Err(_) => FsKind::Missing,
        }
    }

    /// Tries for real: runs `/bin/true` in a new user namespace (as `nobody`
    /// if we are root, so the answer is about ordinary users), first alone,
    /// then with a mount inside, as the steps do.
    fn probe(root: bool) -> (u32, Probe) {
        // Root inside a user namespace may have no `nobody` to become.
        let uid_map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        let as_nobody = root && is_mapped(&uid_map, NOBODY);
        let (uid, gid) = if as_nobody {
            (NOBODY, NOBODY)
        } else {
            (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw())
        };
        let root = as_nobody;
        let attempt = |with_mount: bool| -> io::Result<()> {
            let program =
                if Path::new("/bin/true").exists() { "/bin/true" } else { "/usr/bin/true" };
            let mut cmd = Command::new(program);
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
            if root {
                cmd.uid(uid).gid(gid);
                // Changing uid makes a process "not dumpable", which makes its
                // /proc/self files belong to root: it could not write its own
                // uid_map. A process that started as that user is dumpable.
                let dumpable = || {
                    // SAFETY: a plain system call.
                    match unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) } {
                        0 => Ok(()),
                        _ => Err(io::Error::last_os_error()),
                    }
                };
                // SAFETY: the hook only calls prctl(2).
                unsafe { cmd.pre_exec(dumpable) };
            }
            crate::rootless::map_root_to(&mut cmd, uid, gid);
            if with_mount {
                // Harmless: changes propagation in the new mount namespace only.
                let make_private = || {
                    let flags = libc::MS_REC | libc::MS_PRIVATE;
                    // SAFETY: a plain system call with a static path and null pointers.
                    let rc = unsafe {
                        libc::mount(
                            std::ptr::null(),
                            c"/".as_ptr(),
                            std::ptr::null(),
                            flags,
                            std::ptr::null(),
                        )
                    };
                    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
                };
                // SAFETY: the hook only calls mount(2).
                unsafe { cmd.pre_exec(make_private) };
            }
            let status = cmd.status()?;
            if status.success() {
                Ok(())
            } else {
                Err(io::Error::other(format!("the test process failed ({status})")))
            }
        };
        let probe = match attempt(false) {
            Err(err) => Probe::NoUserNamespace(err.to_string()),
            Ok(()) => match attempt(true) {
                Err(err) => Probe::NoMount(err.to_string()),
                Ok(()) => Probe::Works,
            },
        };
        (uid, probe)
    }

    fn rootfs_facts(dir: &Path, mounts: &[crate::mounts::Mount]) -> RootfsFacts {
        let mounted = match dir.canonicalize() {
            Ok(dir) => crate::mounts::mounted_at_or_under(mounts, &dir)
                .iter()
                .map(|m| m.mount_point.clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        RootfsFacts {
            present: dir.is_dir(),
            has_sh: fs::symlink_metadata(dir.join("bin/sh")).is_ok(),
            proc_is_dir: fs::symlink_metadata(dir.join("proc")).is_ok_and(|m| m.is_dir()),
            mounted,
        }
    }

    /// Removes the per-container directories in `dir` that no runtime holds
    /// (their runtime was killed) and that are not kept, as the next step07
    /// run would; reports the others. The layout is `kit::overlay`'s; the test
    /// `step07_doctor_removes_what_a_killed_runtime_left` checks the two agree.
    pub fn clean_containers(dir: &Path) -> Containers {
        let mut found =
            Containers { dir: dir.to_path_buf(), exists: dir.exists(), ..Containers::default() };
        if !found.exists {
            return found;
        }
        if let Err(err) = look_in(dir, &mut found) {
            found.error = Some(err.to_string());
        }
        found
    }

    fn look_in(dir: &Path, found: &mut Containers) -> io::Result<()> {
        // While we look, no runtime makes its directory here (it takes the same lock).
        let busy = fs::File::open(dir)?;
        busy.lock()?;
        let mut names: Vec<String> = fs::read_dir(dir)?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| is_container_name(name) && dir.join(name).is_dir())
            .collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let lock = fs::File::open(&path)?;
            if lock.try_lock().is_err() {
                found.running.push(name);
            } else if path.join("keep").exists() {
                found.kept.push(name);
            } else {
                remove_tree(&path)?;
                found.removed.push(name);
            }
        }
        Ok(())
    }

    /// `container-4242`, or `container-4242-2`.
    fn is_container_name(name: &str) -> bool {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        name.strip_prefix("container-").is_some_and(|rest| match rest.split_once('-') {
            Some((pid, n)) => digits(pid) && digits(n),
            None => digits(rest),
        })
    }

    /// Removes a container's directory. A rootless container's files are
    /// ours, but overlayfs makes `work/work` with mode 000, and a container
    /// may make such directories too: without root, open them up first.
    fn remove_tree(path: &Path) -> io::Result<()> {
        fn open_up(path: &Path) -> io::Result<()> {
            use std::os::unix::fs::PermissionsExt;
            let meta = fs::symlink_metadata(path)?;
            if meta.is_dir() {
                fs::set_permissions(
                    path,
                    fs::Permissions::from_mode(meta.permissions().mode() | 0o700),
                )?;
                for entry in fs::read_dir(path)? {
                    open_up(&entry?.path())?;
                }
            }
            Ok(())
        }
        if !crate::is_root() {
            open_up(path)?;
        }
        fs::remove_dir_all(path)
    }

    fn find_unshare() -> Unshare {
        let Some(path) = crate::find_in_path("unshare") else { return Unshare::Missing };
        let output = Command::new(&path)
            .arg("--version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        match output {
            Ok(out) if String::from_utf8_lossy(&out.stdout).contains("util-linux") => {
                Unshare::UtilLinux(
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .next()
                        .unwrap_or("unshare")
                        .trim()
                        .to_owned(),
                )
            }
            _ => Unshare::Other(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        Facts {
            kernel: "6.8.0".into(),
            arch: "x86_64".into(),
            root: false,
            sudo: true,
            max_user_namespaces: Some("63432".into()),
            unprivileged_userns_clone: None,
            apparmor_restrict: None,
            probe: (1000, Probe::Works),
            cgroups: Cgroups::V2,
            v2_controllers: Some("cpuset cpu io memory hugetlb pids rdma misc".into()),
            root_shared: Some(true),
            rootfs: RootfsFacts { present: true, has_sh: true, proc_is_dir: true, mounted: vec![] },
            unshare: Unshare::UtilLinux("unshare from util-linux 2.39.3".into()),
        }
    }

    #[test]
    fn apparmor_restriction_is_reported_with_the_sysctl() {
        let line = userns_settings(Some("63432\n"), None, Some("1\n"));
        assert_eq!(line.mark, Mark::Fail);
        assert!(line.text.contains("restricted"), "{line}");
        assert!(
            line.hints.iter().any(
                |h| h.starts_with("sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0")
            ),
            "{line}"
        );
        assert!(line.hints.iter().any(|h| h.contains("with sudo")), "{line}");
    }

    #[test]
    fn other_userns_switches() {
        assert_eq!(userns_settings(Some("63432"), Some("1"), Some("0")).mark, Mark::Ok);
        assert_eq!(userns_settings(None, None, None).mark, Mark::Ok);
        let debian = userns_settings(Some("63432"), Some("0"), None);
        assert!(debian.text.contains("unprivileged_userns_clone = 0"), "{debian}");
        assert!(debian.hints[0].starts_with("sudo sysctl kernel.unprivileged_userns_clone=1"));
        let off = userns_settings(Some("0"), None, None);
        assert!(off.text.contains("disabled"), "{off}");
    }

    #[test]
    fn uid_maps() {
        let initial = "         0          0 4294967295\n";
        assert!(is_mapped(initial, 65534));
        let rootless = "         0       1000          1\n";
        assert!(is_mapped(rootless, 0));
        assert!(!is_mapped(rootless, 65534));
        assert!(!is_mapped("", 0));
    }

    #[test]
    fn cgroup_layouts() {
        assert_eq!(classify_cgroups(FsKind::Cgroup2, FsKind::Missing), Cgroups::V2);
        assert_eq!(classify_cgroups(FsKind::Tmpfs, FsKind::Cgroup2), Cgroups::Hybrid);
        assert_eq!(classify_cgroups(FsKind::Tmpfs, FsKind::Missing), Cgroups::V1);
        assert_eq!(classify_cgroups(FsKind::Missing, FsKind::Missing), Cgroups::Unknown);
        // This development machine: hybrid, and its v2 tree has hugetlb only.
        let hybrid = cgroups(Cgroups::Hybrid, Some("hugetlb"));
        assert!(
            hybrid.text.contains("hybrid") && hybrid.text.contains("step08 uses the v1"),
            "{hybrid}"
        );
        let v2 = cgroups(Cgroups::V2, Some("cpuset cpu io memory pids"));
        assert!(v2.mark == Mark::Ok && v2.text.contains("step08 makes"), "{v2}");
        assert_eq!(cgroups(Cgroups::V2, Some("memory pids")).mark, Mark::Warn);
        assert!(
            cgroups(Cgroups::Hybrid, Some("cpu memory pids")).text.contains("uses the v2 tree")
        );
        assert_eq!(cgroups(Cgroups::Unknown, None).mark, Mark::Warn);
    }

    #[test]
    fn macos_gets_vm_instructions() {
        let line = not_linux("macos");
        let text = line.to_string();
        assert!(text.starts_with("✗ this is macOS, not Linux"), "{text}");
        assert!(
            text.contains("multipass launch --name workshop")
                && text.contains("multipass shell workshop"),
            "{text}"
        );
        assert!(text.contains("limactl start") && text.contains("`lima`"), "{text}");
    }

    #[test]
    fn a_healthy_machine_runs_every_step() {
        let facts = healthy();
        assert!(checks(&facts).iter().all(|l| l.mark != Mark::Fail), "{:?}", checks(&facts));
        let steps = steps(&facts);
        assert_eq!(steps.len(), Step::ALL.len());
        assert!(steps.iter().all(|l| l.mark == Mark::Ok));
        assert_eq!(
            steps[3].text,
            "step04 can run here: cargo xtask run step04 (through sudo), or cargo xtask run step04 --rootless"
        );
    }

    #[test]
    fn no_root_no_sudo_no_userns_means_no_steps() {
        let facts = Facts {
            sudo: false,
            apparmor_restrict: Some("1".into()),
            probe: (1000, Probe::NoMount("Permission denied (os error 13)".into())),
            ..healthy()
        };
        assert!(!facts.can_run_steps());
        let checks = checks(&facts);
        assert_eq!(checks.iter().filter(|l| l.mark == Mark::Fail).count(), 3, "{checks:?}");
        assert!(steps(&facts).iter().all(|l| l.mark == Mark::Fail && !l.hints.is_empty()));
    }

    #[test]
    fn as_root_userns_problems_are_only_warnings() {
        let facts = Facts {
            root: true,
            probe: (65534, Probe::NoUserNamespace("Operation not permitted (os error 1)".into())),
            ..healthy()
        };
        let checks = checks(&facts);
        assert!(checks.iter().all(|l| l.mark != Mark::Fail), "{checks:?}");
        assert!(checks.iter().any(|l| l.mark == Mark::Warn && l.text.contains("uid 65534")));
        assert!(steps(&facts)[0].text.contains("as root"));
    }

    #[test]
    fn rootfs_problems_say_what_to_do() {
        let missing = rootfs(&RootfsFacts::default(), false, true);
        assert_eq!(missing.mark, Mark::Fail);
        assert!(missing.hints[0].starts_with("cargo xtask rootfs"));
        let mounted = RootfsFacts {
            present: true,
            has_sh: true,
            proc_is_dir: true,
            mounted: vec![PathBuf::from("/home/me/ws/rootfs/proc")],
        };
        assert_eq!(rootfs(&mounted, false, true).hints, ["sudo umount /home/me/ws/rootfs/proc"]);
        assert_eq!(rootfs(&mounted, true, true).hints, ["umount /home/me/ws/rootfs/proc"]);
        let no_proc = RootfsFacts { proc_is_dir: false, ..mounted.clone() };
        let no_proc = RootfsFacts { mounted: vec![], ..no_proc };
        assert!(rootfs(&no_proc, true, true).text.contains("proc is not a directory"));
    }

    #[test]
    fn rootless_overlay_needs_linux_5_11() {
        assert!(rootless_overlay("6.8.0-45-generic") && rootless_overlay("5.11.0"));
        assert!(!rootless_overlay("5.10.0-28-amd64") && !rootless_overlay("4.19.0"));
        let facts = Facts { kernel: "5.10.0-28-amd64".into(), ..healthy() };
        let step07 = steps(&facts).into_iter().find(|l| l.text.starts_with("step07")).unwrap();
        assert_eq!(step07.mark, Mark::Warn);
        assert!(step07.hints[0].contains("Linux 5.11 or later, and this is 5.10.0-28-amd64"));
        let as_root =
            Facts { root: true, probe: (65534, Probe::NoUserNamespace("x".into())), ..facts };
        assert!(steps(&as_root).iter().all(|l| l.mark == Mark::Ok), "no --rootless, no warning");
    }

    #[test]
    fn container_leftovers_are_reported() {
        assert_eq!(containers_dir(true, None, 0), Path::new("/run/workshop-containers"));
        let xdg = Some(std::ffi::OsStr::new("/run/user/1000"));
        assert_eq!(
            containers_dir(false, xdg, 1000),
            Path::new("/run/user/1000/workshop-containers")
        );
        assert_eq!(containers_dir(false, None, 1000), Path::new("/tmp/workshop-containers-1000"));
        let dir = PathBuf::from("/run/workshop-containers");
        let removed = Containers {
            dir: dir.clone(),
            exists: true,
            removed: vec!["container-41".into(), "container-42".into()],
            kept: vec!["container-7".into()],
            ..Containers::default()
        };
        let lines = containers(&removed);
        assert_eq!(lines[0].mark, Mark::Ok);
        assert_eq!(
            lines[0].text,
            "removed 2 leftover container directories in /run/workshop-containers, left by \
             runtimes that were killed: container-41, container-42"
        );
        assert_eq!(
            lines[1].hints,
            ["sudo rm -r /run/workshop-containers/container-7   (when you are done with it)"]
        );
        let clean = Containers { dir: dir.clone(), exists: true, ..Containers::default() };
        assert_eq!(
            containers(&clean)[0].text,
            "no leftover container directories in /run/workshop-containers"
        );
        let none = Containers { dir, ..Containers::default() };
        assert_eq!(containers(&none)[0].mark, Mark::Info);
    }

    #[test]
    fn missing_rootfs_on_an_unpinned_arch_needs_from_tar() {
        let facts = Facts { arch: "riscv64".into(), rootfs: RootfsFacts::default(), ..healthy() };
        let step01 = &steps(&facts)[0];
        assert_eq!(step01.mark, Mark::Warn);
        assert!(step01.hints[0].contains("--from-tar"));
        assert_eq!(steps(&facts)[2].mark, Mark::Ok, "step 03 needs no rootfs");
    }
}

//! # pivot_root: the container's root, sealed (step05)
//!
//! chroot(2) changes what `/` means for one process, and nothing else: the
//! host's whole tree is still mounted in the container's mount namespace,
//! and a process that is root inside can climb back out (step05's chapter
//! shows the escape). pivot_root(2) changes the namespace itself: the rootfs
//! becomes the namespace's root mount, and the host's old root is then
//! detached, so that no path, `..` or otherwise, leads to the host any more.
//!
//! In the runtime, after step04's private remount: (1) [`bind_on_itself`],
//! then step05's (2) to (5) ([`crate::dev`]), then (6) [`pivot_into`]; and in
//! the child, once its proc is mounted, (7) [`detach_old_root`] (see
//! [`start_sealed`] for why there). The fork between them is step04's, with
//! the child as an argument ([`fork_and_wait`]), so that later steps fork
//! children of their own the same way.
//!
//! pivot_root moves the root of *every* process of the mount namespace whose
//! root was the old one, and the runtime shares the container's namespace:
//! after (6) and (7) the runtime no longer sees the host's files either. A
//! runtime that must reach the host afterwards (a directory to remove, a
//! cgroup to fill) opens it before, as a directory handle, and works relative
//! to it.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{ForkResult, chdir, fork, pivot_root};

use crate::article;

// ANCHOR: bind
/// (1) pivot_root moves mounts, not directories: its new root must be a mount
/// point. Binding the rootfs on itself makes it one, without changing a file.
/// Not recursive (no `MS_REC`): whatever the host has mounted under the rootfs
/// (a proc that step01 left behind, say) stays out of the container.
/// <https://man7.org/linux/man-pages/man2/mount.2.html>
pub fn bind_on_itself(rootfs: &Path) -> Result<()> {
    // ANCHOR: exercise_bind (1) make the rootfs a mount point: mount(2) it on itself, MS_BIND
    mount(Some(rootfs), rootfs, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .with_context(|| format!("failed to bind-mount {} on itself", rootfs.display()))
    // ANCHOR_END: exercise_bind
}
// ANCHOR_END: bind

// ANCHOR: pivot
/// (6) The rootfs becomes the root mount of the namespace, and our root. With
/// `"."` for both arguments, from inside the rootfs, the old root is stacked on
/// top of the new one at `/` instead of being moved into a directory of the
/// rootfs: no directory to make, so the rootfs may be read-only, and none
/// left over. (7) unmounts it from there.
/// <https://man7.org/linux/man-pages/man2/pivot_root.2.html>
pub fn pivot_into(rootfs: &Path) -> Result<()> {
    chdir(rootfs).with_context(|| format!("failed to chdir into {}", rootfs.display()))?;
    // ANCHOR: exercise_pivot (6) make the rootfs the root mount: pivot_root(2) with "." and "."
    pivot_root(".", ".").map_err(|err| why_pivot_root_failed(err, rootfs))
    // ANCHOR_END: exercise_pivot
}
// ANCHOR_END: pivot

// ANCHOR: fork
/// What runs in the child after [`fork_and_wait`]'s fork: it gets exec's
/// arguments, built before the fork, and never returns. step05's is
/// [`container`]; step06's is its init.
pub type Child = fn(&[*const libc::c_char]) -> !;

/// step04's (4), with the child as an argument: build exec's arguments while
/// we may still allocate, block Ctrl-C and Ctrl-\ (the container handles
/// them; we must not die of them), fork, and wait for the child, whose status
/// becomes ours (step04's `wait_for`). step05 passes [`container`]; later
/// steps pass children of their own.
/// <https://man7.org/linux/man-pages/man2/fork.2.html>
pub fn fork_and_wait(command: &[CString], child: Child) -> Result<ExitCode> {
    fork_and_wait_with(command, || {}, child)
}

/// The same fork, where the child does `first` before anything else: nothing
/// up to step07; step08's child joins the container's cgroup there, before it
/// runs a single instruction of the container's. Async-signal-safe calls only,
/// as everywhere in the child.
pub fn fork_and_wait_with(
    command: &[CString],
    first: impl FnOnce(),
    child: Child,
) -> Result<ExitCode> {
    let argv: Vec<_> = command.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
    SigSet::from_iter([Signal::SIGINT, Signal::SIGQUIT]).thread_block()?;
    // SAFETY: we are single-threaded, and the child only makes async-signal-safe calls.
    match unsafe { fork() }.context("failed to fork")? {
        ForkResult::Child => {
            first();
            child(&argv)
        }
        ForkResult::Parent { child } => article::wait_for(child),
    }
}
// ANCHOR_END: fork

// ANCHOR: container
/// step05's child: step04's, with (7) between its proc and its exec, so that
/// the command never runs with the host's tree still in reach.
pub fn container(argv: &[*const libc::c_char]) -> ! {
    start_sealed();
    let err = article::exec(argv);
    // SAFETY: argv[0] points into a live CString.
    article::exec_failed(unsafe { CStr::from_ptr(argv[0]) }, err)
}

/// The child's start, before it runs anything: step04's `start_clean` and
/// `mount_proc`, then (7). Rootless, the kernel lets a user namespace mount a
/// new proc only while a proc it could see anyway is mounted in the mount
/// namespace (proc would otherwise reveal what the host hid): the host's,
/// under the old root. So the proc comes first, and only then the detach.
/// Async-signal-safe calls only: failures go through step04's `die`.
/// <https://man7.org/linux/man-pages/man7/mount_namespaces.7.html>
pub fn start_sealed() {
    article::start_clean();
    if let Err(err) = article::mount_proc() {
        article::die(125, &[b"failed to mount proc on /proc: ", err.desc().as_bytes()]);
    }
    if let Err(err) = detach_old_root() {
        article::die(125, &[b"failed to detach the old root: ", err.desc().as_bytes()]);
    }
}
// ANCHOR_END: container

// ANCHOR: detach
/// (7) The old root is stacked on top of the new one, at `/`. umount2(".")
/// looks `.` up from the new root and up the mounts stacked there, and so
/// unmounts the old root (pivot_root(2) explains it). `MNT_DETACH` takes it
/// out of the namespace at once, with the host's mounts under it, busy or not.
/// Then step into the new root, as after chroot. In the child after the fork:
/// system calls only, no allocation.
/// <https://man7.org/linux/man-pages/man2/umount2.2.html>
pub fn detach_old_root() -> nix::Result<()> {
    // ANCHOR: exercise_detach (7) drop the host's tree: umount2(2) "." MNT_DETACH, chdir("/")
    umount2(".", MntFlags::MNT_DETACH)?;
    chdir("/")
    // ANCHOR_END: exercise_detach
}
// ANCHOR_END: detach

/// pivot_root's errors, each with what to do about it. EINVAL stands for five
/// different mistakes: our mount table tells which.
fn why_pivot_root_failed(err: Errno, rootfs: &Path) -> anyhow::Error {
    let what = format!("pivot_root into {} failed: {err}", rootfs.display());
    match err {
        Errno::EPERM => anyhow!("{what}\nhint: pivot_root needs CAP_SYS_ADMIN: run with sudo"),
        Errno::EBUSY => anyhow!(
            "{what}\nhint: {} is on the same mount as our root, which cannot move onto itself: \
             (1) should bind-mount it on itself first, to make it a mount of its own",
            rootfs.display()
        ),
        Errno::EINVAL => {
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            // We are in the rootfs (`pivot_into` went there): its path, as mountinfo shows it.
            let here = std::env::current_dir().unwrap_or_else(|_| rootfs.into());
            anyhow!("{what}\nhint: {}", explain_einval(&mountinfo, &here.to_string_lossy()))
        }
        _ => anyhow!(what),
    }
}

/// Which of pivot_root's EINVAL cases `mountinfo` shows, for a new root at
/// `new_root`, and what to do about it.
fn explain_einval(mountinfo: &str, new_root: &str) -> String {
    let mounts: Vec<Mount> = mountinfo.lines().filter_map(Mount::parse).collect();
    let at = |path: &str| mounts.iter().rev().find(|m| m.mount_point == path);
    match (at("/"), at(new_root)) {
        (None, _) => "our root is not a mount point: is this running inside a chroot (step01's?)? \
             pivot_root replaces the namespace's root mount, which a chroot hides"
            .to_string(),
        (Some(root), _) if root.fs_type == "rootfs" => {
            "the root is the kernel's initial ramfs (rootfs), which pivot_root cannot move: run \
             the workshop on a system booted to a real root filesystem, e.g. a VM"
                .to_string()
        }
        (_, None) => {
            format!("{new_root} is not a mount point: (1) should bind-mount it on itself first")
        }
        (Some(root), Some(new)) => {
            let parent = mounts.iter().find(|m| m.id == new.parent);
            match [Some(new), parent, Some(root)].into_iter().flatten().find(|m| m.shared) {
                Some(shared) => format!(
                    "the mount at {} is shared, and pivot_root moves no shared mount: make \
                     every mount private first (step04's make_mounts_private)",
                    shared.mount_point
                ),
                None => "see the EINVAL cases of pivot_root(2)".to_string(),
            }
        }
    }
}

/// The few fields of a line of /proc/self/mountinfo (proc(5)) that tell why
/// pivot_root refused.
struct Mount {
    id: u32,
    parent: u32,
    mount_point: String,
    shared: bool,
    fs_type: String,
}

impl Mount {
    fn parse(line: &str) -> Option<Mount> {
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split(' ').collect();
        Some(Mount {
            id: fields.first()?.parse().ok()?,
            parent: fields.get(1)?.parse().ok()?,
            mount_point: fields.get(4)?.replace("\\040", " "),
            shared: fields.iter().skip(6).any(|tag| tag.starts_with("shared:")),
            fs_type: after.split(' ').next()?.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Mount, explain_einval};

    #[test]
    fn mountinfo_lines_are_read() {
        let line = "36 35 98:0 /mnt1 /mnt\\040x rw,noatime master:1 shared:2 - ext3 /dev/root rw";
        let mount = Mount::parse(line).unwrap();
        assert_eq!((mount.id, mount.parent), (36, 35));
        assert_eq!(mount.mount_point, "/mnt x");
        assert!(mount.shared);
        assert_eq!(mount.fs_type, "ext3");
        let private = Mount::parse("1 0 0:1 / / rw - rootfs rootfs rw").unwrap();
        assert!(!private.shared);
        assert_eq!(private.fs_type, "rootfs");
    }

    /// The root, and the rootfs bound on itself: what pivot_root wants.
    const ROOT: &str = "20 1 8:1 / / rw - ext4 /dev/sda1 rw";
    const BOUND: &str = "30 20 8:1 /srv/rootfs /srv/rootfs rw - ext4 /dev/sda1 rw";

    #[test]
    fn each_einval_gets_its_hint() {
        let cases = [
            // (1) forgotten: the rootfs is no mount point.
            (ROOT.to_string(), "is not a mount point: (1) should bind-mount it"),
            // step04's private remount forgotten: the rootfs's mount is shared.
            (
                format!("{}\n{}", ROOT, BOUND.replace(" rw - ", " rw shared:4 - ")),
                "the mount at /srv/rootfs is shared",
            ),
            (
                format!("{}\n{BOUND}", ROOT.replace(" rw - ", " rw shared:1 - ")),
                "the mount at / is shared",
            ),
            // Run inside a chroot: our root is no mount point.
            (BOUND.to_string(), "inside a chroot"),
            // Booted from an initramfs.
            ("1 0 0:1 / / rw - rootfs rootfs rw".to_string(), "initial ramfs"),
            // Nothing we know of.
            (format!("{ROOT}\n{BOUND}"), "see the EINVAL cases"),
        ];
        for (mountinfo, expected) in cases {
            let hint = explain_einval(&mountinfo, "/srv/rootfs");
            assert!(hint.contains(expected), "{mountinfo}\n=> {hint}\nshould say {expected:?}");
        }
    }
}

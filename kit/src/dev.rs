//! # dev: a /dev of the container's own (step05)
//!
//! Programs expect a few files in /dev: `/dev/null` above all (busybox's sh
//! opens it for every background job), `/dev/urandom`, `/dev/tty`, a devpts
//! for terminals, `/dev/shm`. The rootfs's /dev is an empty directory, and the
//! host's holds every disk of the machine. So the runtime builds one, as runc
//! does by default, in four parts: (2) an empty tmpfs on the rootfs's /dev,
//! (3) the host's six harmless devices bound into it, (4) a devpts of the
//! container's own, (5) /dev/shm and the /proc/self/fd links.
//!
//! It happens before pivot_root, while the host's /dev is still there to
//! bind from, and after the rootfs was bound on itself, so that these mounts
//! are on the mount that becomes `/` (mounted on the plain directory, they
//! would stay behind, under it).

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, symlink};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::mount::{MsFlags, mount};

/// The host's devices a container gets: runc's defaults. Each is harmless to
/// share: it reaches no disk, no hardware, no other process's terminal
/// (`tty` is whatever terminal the opening process controls).
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// The rootfs's /dev must be a directory of its own. (2) mounts on it, and
/// mount(2) follows symlinks: a `dev -> /somewhere` link would put the
/// container's /dev on the host's /somewhere, and (3) would create files there.
pub fn check_rootfs(rootfs: &Path) -> Result<()> {
    let dev = rootfs.join("dev");
    if !dev.symlink_metadata().is_ok_and(|meta| meta.is_dir()) {
        bail!(
            "{} must be a directory (not missing, not a symlink): (2) mounts the container's \
             /dev there",
            dev.display()
        );
    }
    Ok(())
}

// ANCHOR: make_dev
/// Steps (2) to (5): the container's /dev, on `rootfs`'s /dev.
pub fn make_dev(rootfs: &Path) -> Result<()> {
    let dev = rootfs.join("dev");
    mount_tmpfs(&dev)?; // (2) an empty tmpfs, ours
    for name in DEVICES {
        bind_device(&dev, name)?; // (3) the host's harmless devices
    }
    mount_devpts(&dev)?; // (4) terminals of the container's own
    shm_and_links(&dev) // (5) the rest of a usual /dev
}
// ANCHOR_END: make_dev

// ANCHOR: tmpfs
/// (2) A tmpfs is a filesystem in memory: empty when mounted, gone when
/// unmounted. On the rootfs's /dev, it hides the directory's files and keeps
/// ours out of the rootfs. `nosuid`, and the options runc uses.
/// <https://man7.org/linux/man-pages/man5/tmpfs.5.html>
fn mount_tmpfs(dev: &Path) -> Result<()> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME;
    // ANCHOR: exercise_tmpfs (2) an empty /dev: mount(2) a "tmpfs" on DEV, "mode=755,size=65536k"
    mount(Some("tmpfs"), dev, Some("tmpfs"), flags, Some("mode=755,size=65536k"))
        .with_context(|| format!("failed to mount a tmpfs on {}", dev.display()))
    // ANCHOR_END: exercise_tmpfs
}
// ANCHOR_END: tmpfs

// ANCHOR: bind_device
/// (3) A device file is a number the kernel maps to a driver, and making one,
/// mknod(2), takes real root: in a user namespace (rootless) it fails. A bind
/// mount works in both: an empty file, with the host's device mounted on it.
/// <https://man7.org/linux/man-pages/man2/mount.2.html>
fn bind_device(dev: &Path, name: &str) -> Result<()> {
    let host = Path::new("/dev").join(name);
    if !host.metadata().is_ok_and(|meta| meta.file_type().is_char_device()) {
        bail!(
            "the host has no device {} to lend the container: it is missing or not a \
             character device\nhint: is this running in a container whose /dev is bare?",
            host.display()
        );
    }
    let file = dev.join(name);
    // ANCHOR: exercise_bind_device (3) a host device: create DEV/NAME, mount(2) /dev/NAME on it
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(&file)
        .with_context(|| format!("failed to create {}", file.display()))?;
    mount(Some(&host), &file, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .with_context(|| format!("failed to bind {} on {}", host.display(), file.display()))
    // ANCHOR_END: exercise_bind_device
}
// ANCHOR_END: bind_device

// ANCHOR: devpts
/// (4) Terminals (ssh sessions, `script`, `tmux`) are pseudo-terminal pairs
/// made through /dev/ptmx, the slave side showing up in /dev/pts. A *new
/// instance* of devpts lists only the container's own, and /dev/ptmx must be
/// that instance's `pts/ptmx`. `ptmxmode=0666` lets every user open it. No
/// `gid=5` (the tty group), which runc sets as root: rootless, in a user
/// namespace that maps only our own group, gid 5 does not exist, and mount
/// fails with EINVAL.
/// <https://man7.org/linux/man-pages/man4/pts.4.html>
fn mount_devpts(dev: &Path) -> Result<()> {
    let pts = dev.join("pts");
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    // ANCHOR: exercise_devpts (4) terminals: mount(2) a new devpts on DEV/pts, symlink(2) DEV/ptmx
    make_dir(&pts, 0o755)?;
    let options = "newinstance,ptmxmode=0666,mode=0620";
    mount(Some("devpts"), &pts, Some("devpts"), flags, Some(options)).map_err(|err| {
        let what = format!("failed to mount a devpts on {}: {err}", pts.display());
        match err {
            Errno::ENODEV => anyhow!("{what}\nhint: this kernel was built without devpts"),
            _ => anyhow!(what),
        }
    })?;
    make_link("pts/ptmx", &dev.join("ptmx"))
    // ANCHOR_END: exercise_devpts
}
// ANCHOR_END: devpts

// ANCHOR: shm_and_links
/// (5) /dev/shm, where POSIX shared memory lives (shm_open(3)): a tmpfs of its
/// own, writable by all, sticky, no devices, no programs. Then the links
/// that let a program name its own open files: /dev/fd/N, /dev/stdin...
/// They point into /proc/self, which the container's own proc will fill.
/// <https://man7.org/linux/man-pages/man3/shm_open.3.html>
fn shm_and_links(dev: &Path) -> Result<()> {
    let shm = dev.join("shm");
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    // ANCHOR: exercise_shm_and_links (5) the rest of /dev: mount(2) DEV/shm, symlink(2) DEV/fd...
    make_dir(&shm, 0o755)?;
    mount(Some("shm"), &shm, Some("tmpfs"), flags, Some("mode=1777,size=65536k"))
        .with_context(|| format!("failed to mount a tmpfs on {}", shm.display()))?;
    for (target, name) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ] {
        make_link(target, &dev.join(name))?;
    }
    Ok(())
    // ANCHOR_END: exercise_shm_and_links
}
// ANCHOR_END: shm_and_links

/// mkdir(2), saying which directory failed.
fn make_dir(path: &Path, mode: u32) -> Result<()> {
    DirBuilder::new()
        .mode(mode)
        .create(path)
        .with_context(|| format!("failed to create {}", path.display()))
}

/// symlink(2) `link` -> `target`, saying which link failed.
fn make_link(target: &str, link: &Path) -> Result<()> {
    symlink(target, link).with_context(|| format!("failed to link {} to {target}", link.display()))
}

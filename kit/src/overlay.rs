//! # Overlay: an image that stays pristine (step07)
//!
//! Up to step06 the container writes straight into ROOTFS: `rm -rf /bin`
//! inside breaks it for every later run, and two containers started from one
//! ROOTFS see each other's files. From step07 on, ROOTFS is a read-only
//! *image*. The container's `/` is an overlay (overlayfs): the image is its
//! lower layer, and whatever the container writes or deletes lands in an
//! upper layer that belongs to this container alone:
//!
//! (1) make the container's directory, with `upper/` and `work/` in it, and
//!     keep a handle on it that still reaches it after the root has changed;
//! (2) mount the overlay over ROOTFS, in the container's own mount namespace;
//! (3) when the container ends, remove its directory, as `docker run --rm` does;
//! (4) or keep its layer (`--keep-layer`) and show what it holds: the diff
//!     against the image, which `docker diff` shows and `docker commit` packs
//!     into a new image layer.
//!
//! Where the per-container directories live: `/run/workshop-containers` as
//! root, `$XDG_RUNTIME_DIR/workshop-containers` rootless (or `--containers-dir`).
//! Both are run-time directories, emptied at every boot. Each container's is
//! `container-<PID of its runtime>`, locked with flock(2) while the runtime
//! lives: one that nobody holds is the leftover of a runtime that was killed,
//! and the next run removes it (so does `cargo xtask doctor`), and says so.
//!
//! <https://docs.kernel.org/filesystems/overlayfs.html>

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt as _, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, FileTypeExt, Metadata, MetadataExt};
use nix::{errno::Errno, mount::MsFlags, mount::mount};

use crate::article::{program_name, report};

/// The overlay's options, for step07 and every step after it, which
/// `#[command(flatten)]` them into their own.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Options {
    /// Keep the container's layer (its upper directory) when it ends, and show what it changed.
    #[arg(long)]
    pub keep_layer: bool,
    /// Make the per-container directories in DIR [default: /run/workshop-containers, or
    /// $XDG_RUNTIME_DIR/workshop-containers rootless].
    #[arg(long, value_name = "DIR", env = CONTAINERS_DIR_ENV)]
    pub containers_dir: Option<PathBuf>,
}

/// The environment variable that sets `--containers-dir`: the tests give
/// each run a directory of its own with it.
pub const CONTAINERS_DIR_ENV: &str = "WORKSHOP_CONTAINERS_DIR";

/// Where root's containers get their directories: /run holds run-time state
/// and is emptied at boot (hier(7)), as runc's /run/runc and docker's /run/docker.
pub const ROOT_CONTAINERS_DIR: &str = "/run/workshop-containers";

/// A per-container directory is `container-<PID of the runtime>`.
pub const PREFIX: &str = "container-";

/// A file in a per-container directory: keep it after its runtime is gone (`--keep-layer`).
pub const KEEP: &str = "keep";

/// Linux 5.11 is the first to let the root of a user namespace mount an
/// overlay, and gave overlayfs the `userxattr` option that makes it possible.
pub const ROOTLESS_OVERLAY_SINCE: (u32, u32) = (5, 11);

/// Linux 5.10 gave overlayfs the `volatile` option.
pub const VOLATILE_SINCE: (u32, u32) = (5, 10);

/// The container's directory, from (1) to (3) or (4). Dropped without
/// [`Layer::end`] (an error before the container ran), it removes itself.
pub struct Layer {
    /// The image, ROOTFS, as an absolute path.
    rootfs: PathBuf,
    /// A handle on the directory of all containers, opened in (1): it still
    /// reaches that directory after the runtime's root has changed.
    containers: Dir,
    /// Its path, for messages only: after the root changes, it means nothing.
    containers_path: PathBuf,
    /// This container's directory, `container-<pid>`, in `containers`.
    name: String,
    dir: Dir,
    /// The flock(2) on `dir` that says "in use" while we live.
    _lock: File,
    /// The image (ROOTFS) as it was before the overlay covered it, for (4).
    image: Option<Dir>,
    /// Rootless: in a user namespace, where overlayfs keeps its marks in
    /// `user.` extended attributes instead of `trusted.` ones.
    rootless: bool,
    keep: bool,
    ended: bool,
}

impl Layer {
    // ANCHOR: create
    /// (1) The container's directory: finds or makes the containers' directory,
    /// removes what killed runtimes left there, and makes this container's,
    /// with `upper/` (its layer) and `work/` (overlayfs's scratch space).
    pub fn create(options: &Options, rootfs: &Path) -> Result<Layer> {
        let rootless = rootless()?;
        if rootless {
            check_kernel_for_rootless(&kernel_release())?;
        }
        let containers_path = match &options.containers_dir {
            Some(dir) => std::path::absolute(dir).context("failed to find --containers-dir")?,
            None => default_containers_dir(rootless),
        };
        let rootfs = overlay_paths(rootfs, &containers_path)?;
        check_upper_filesystem(&containers_path)?;
        let containers = open_containers_dir(&containers_path, options.containers_dir.is_none())?;
        let (name, dir, lock) = claim(&containers, &containers_path)?;
        let keep = options.keep_layer;
        let layer = Layer {
            rootfs,
            containers,
            containers_path,
            name,
            dir,
            _lock: lock,
            image: None,
            rootless,
            keep,
            ended: false,
        };
        if keep {
            layer.dir.write(KEEP, b"").context("failed to mark the layer to keep")?;
        }
        if rootless {
            let upper = layer.dir.open_dir("upper").and_then(|upper| readable(&upper));
            check_user_xattrs(
                &upper.context("failed to open the upper directory")?,
                &layer.containers_path,
            )?;
        }
        Ok(layer)
    }
    // ANCHOR_END: create

    /// The container's directory, as the host sees it.
    pub fn path(&self) -> PathBuf {
        self.containers_path.join(&self.name)
    }

    // ANCHOR: mount_over
    /// (2) The overlay, mounted over ROOTFS: from now on, in this mount
    /// namespace, ROOTFS shows the image with this container's layer on top.
    /// Call it after the mounts are private, so the host never sees it.
    pub fn mount(&mut self) -> Result<()> {
        let rootfs = &self.rootfs;
        // A handle on the image itself, before the overlay covers it, for (4).
        let image = Dir::open_ambient_dir(rootfs, ambient_authority())
            .with_context(|| format!("failed to open the rootfs {}", rootfs.display()))?;
        self.match_root(&image)?;
        self.image = Some(image);
        let mut flags = Vec::new();
        if self.rootless {
            flags.push("userxattr");
        }
        if !self.keep && kernel_at_least(&kernel_release(), VOLATILE_SINCE) {
            flags.push("volatile");
        }
        let (upper, work) = (self.path().join("upper"), self.path().join("work"));
        mount_overlay(&self.rootfs, &upper, &work, &flags)
            .map_err(|err| explain_mount_failure(err, self.rootless, &self.containers_path))
    }
    // ANCHOR_END: mount_over

    // ANCHOR: end
    /// When the container has ended: (3) remove its directory, or (4) keep its
    /// layer and show what is in it. A failure here is reported, and does not
    /// change the container's exit status; nor does a closed stderr (step04's
    /// `report`).
    pub fn end(mut self) {
        self.ended = true;
        if !self.keep {
            if let Err(err) = remove_container_dir(&self.containers, &self.name) {
                report(format_args!(
                    "failed to remove {}: {err}\nhint: the next run, or `cargo xtask doctor`, \
                     removes it",
                    self.path().display()
                ));
            }
            return;
        }
        let upper = self.path().join("upper");
        report(format_args!("the container's layer is kept in {}", upper.display()));
        match self.changes() {
            Ok(changes) if changes.is_empty() => {
                report("it is empty: the container changed nothing in the image")
            }
            Ok(changes) => {
                report("what the container changed in the image, as `docker diff` shows it:");
                for change in changes {
                    let _ = writeln!(io::stderr(), "{change}");
                }
            }
            Err(err) => report(format_args!("failed to read the layer: {err}")),
        }
    }
    // ANCHOR_END: end

    /// The merged `/` takes its owner and mode from the upper directory: give
    /// it the image's, or the container's `/` would be, say, 0700 and root's.
    fn match_root(&self, image: &Dir) -> Result<()> {
        let root = image.dir_metadata()?;
        let upper = self.dir.open_dir("upper").and_then(|upper| readable(&upper));
        let upper = upper.context("failed to open the upper directory")?;
        upper
            .set_permissions(std::fs::Permissions::from_mode(root.mode() & 0o7777))
            .context("failed to give the upper directory the mode of the image's /")?;
        // The owner too, when we may: rootless, the image's may be no one we know.
        let _ = std::os::unix::fs::fchown(&upper, Some(root.uid()), Some(root.gid()));
        Ok(())
    }

    /// (4) What the upper directory holds, path by path, sorted. overlayfs's
    /// scratch space, `work/`, is of no use any more: it goes first.
    pub fn changes(&self) -> io::Result<Vec<Change>> {
        let _ = self.dir.remove_dir_all("work");
        let mut changes = Vec::new();
        let opaque_name =
            if self.rootless { "user.overlay.opaque" } else { "trusted.overlay.opaque" };
        let upper = self.dir.open_dir("upper")?;
        diff(&upper, self.image.as_ref(), Path::new("/"), opaque_name, &mut changes)?;
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }
}

impl Drop for Layer {
    fn drop(&mut self) {
        if !self.ended {
            let _ = remove_container_dir(&self.containers, &self.name);
        }
    }
}

// ANCHOR: claim
/// (1) With the containers' directory locked, so that one runtime at a time
/// does it: remove what killed runtimes left there, then make this
/// container's directory. Returns its name, a handle on it, and its lock.
fn claim(containers: &Dir, path: &Path) -> Result<(String, Dir, File)> {
    let busy = readable(containers)?;
    let shown = path.display();
    busy.lock().with_context(|| format!("failed to lock the containers' directory {shown}"))?;
    let removed = remove_stale(containers)
        .with_context(|| format!("failed to remove the leftovers of killed runtimes in {shown}"))?;
    for stale in removed {
        report(format_args!(
            "removed {}, left behind by a runtime that did not finish (killed?)",
            path.join(stale).display()
        ));
    }
    let name = free_name(containers, std::process::id());
    let made = make_container_dir(containers, &name).inspect_err(|err| {
        // Half made (`upper/` on a full disk, say): no Layer owns it yet to
        // remove it, so it goes here, unless someone else had made it first.
        if err.kind() != io::ErrorKind::AlreadyExists {
            let _ = containers.remove_dir_all(&name);
        }
    });
    let (dir, lock) = made.with_context(|| {
        format!("failed to make the container's directory {}", path.join(&name).display())
    })?;
    Ok((name, dir, lock))
}
// ANCHOR_END: claim

// ANCHOR: make_container_dir
/// (1) Make `name` in the containers' directory, lock it for as long as we
/// live, and make `upper/` and `work/` in it. flock(2) locks belong to the
/// open file, and the kernel drops them when the runtime dies, however it
/// dies: a directory that nobody holds is a leftover. The handles are
/// relative to the directory, not to `/`: they still work after the root changes.
fn make_container_dir(containers: &Dir, name: &str) -> io::Result<(Dir, File)> {
    // ANCHOR: exercise_container_dir (1) the container's directory: mkdir(2) NAME, lock it with flock(2), mkdir(2) upper and work in it
    containers.create_dir(name)?;
    let dir = containers.open_dir(name)?;
    let lock = readable(&dir)?;
    lock.try_lock()?;
    dir.create_dir("upper")?;
    dir.create_dir("work")?;
    Ok((dir, lock))
    // ANCHOR_END: exercise_container_dir
}
// ANCHOR_END: make_container_dir

// ANCHOR: mount_overlay
/// (2) An overlay on ROOTFS: `lowerdir` is the image, read-only; `upperdir`
/// receives every change; `workdir`, on the same filesystem as `upperdir`,
/// is where overlayfs prepares a change before it moves it into place.
/// `flags` are options without a value: `userxattr` in a user namespace,
/// where overlayfs must keep its marks in `user.overlay.*` extended
/// attributes (only the host's root may write `trusted.*` ones); `volatile`
/// for a layer that is thrown away, so that unmounting it does not first
/// sync the whole filesystem under it (Linux 5.10 or later).
/// <https://man7.org/linux/man-pages/man2/mount.2.html>
fn mount_overlay(rootfs: &Path, upper: &Path, work: &Path, flags: &[&str]) -> nix::Result<()> {
    // ANCHOR: exercise_mount_overlay (2) mount the overlay: mount(2) "overlay" on ROOTFS, options lowerdir=,upperdir=,workdir=, then the flags
    let [lower, upper, work] = [rootfs, upper, work].map(escape);
    let mut options = format!("lowerdir={lower},upperdir={upper},workdir={work}");
    for flag in flags {
        options = options + "," + flag;
    }
    mount(Some("overlay"), rootfs, Some("overlay"), MsFlags::empty(), Some(options.as_str()))
    // ANCHOR_END: exercise_mount_overlay
}
// ANCHOR_END: mount_overlay

/// A path as an overlayfs option value: a `,` would end the option, a `:`
/// separate lower directories, so both are escaped with `\`, and so is `\`.
pub fn escape(path: &Path) -> String {
    let mut escaped = String::new();
    for c in path.to_string_lossy().chars() {
        if matches!(c, '\\' | ',' | ':') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

// ANCHOR: remove
/// (3) Remove the container's directory and all in it, through the handle on
/// the containers' directory taken in (1): after pivot_root, no path of the
/// host's leads there any more. cap-std's `remove_dir_all` works relative to
/// that handle, with openat(2) and unlinkat(2), and never follows a symlink
/// the container may have left in its layer.
fn remove_container_dir(containers: &Dir, name: &str) -> io::Result<()> {
    // ANCHOR: exercise_remove (3) remove the container's directory: unlinkat(2) all of it, relative to the handle (remove_dir_all)
    containers.remove_dir_all(name)
    // ANCHOR_END: exercise_remove
}
// ANCHOR_END: remove

// ANCHOR: change
/// One line of the diff between the container's layer and its image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: Kind,
    /// The path inside the container, e.g. `/etc/motd`.
    pub path: PathBuf,
}

/// What an entry of the upper directory means, with `docker diff`'s letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `A`: not in the image.
    Added,
    /// `C`: in the image too, and shown from the layer instead (a copied-up file or directory).
    Changed,
    /// `C`, opaque: a directory made where the image has one, whose
    /// contents it hides: the container removed it and made it again.
    Replaced,
    /// `D`: a *whiteout*, a character device 0/0, hides the image's file.
    Deleted,
}

/// (4) Reads one entry of the upper directory: `meta` as lstat(2) gives it,
/// whether the image has the same path, and whether it is a directory marked
/// opaque (the `overlay.opaque` extended attribute is `y`).
/// <https://docs.kernel.org/filesystems/overlayfs.html#whiteouts-and-opaque-directories>
fn kind(meta: &Metadata, in_image: bool, opaque: bool) -> Kind {
    // ANCHOR: exercise_kind (4) read the kept layer: a whiteout is a character device 0/0, see stat(2); then opaque, in the image, or added
    if meta.file_type().is_char_device() && meta.rdev() == 0 {
        Kind::Deleted
    } else if opaque {
        Kind::Replaced
    } else if in_image {
        Kind::Changed
    } else {
        Kind::Added
    }
    // ANCHOR_END: exercise_kind
}
// ANCHOR_END: change

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match self.kind {
            Kind::Added => write!(f, "A {path}"),
            Kind::Changed => write!(f, "C {path}"),
            Kind::Replaced => write!(f, "C {path}   (opaque: the image's {path} is hidden)"),
            Kind::Deleted => write!(f, "D {path}"),
        }
    }
}

/// Walks `upper` (the directory `at` in the container) and adds a [`Change`]
/// per entry, comparing with `image`.
fn diff(
    upper: &Dir,
    image: Option<&Dir>,
    at: &Path,
    opaque_name: &str,
    out: &mut Vec<Change>,
) -> io::Result<()> {
    for entry in upper.entries()? {
        let entry = entry?;
        let path = at.join(entry.file_name());
        let meta = entry.metadata()?;
        let relative = path.strip_prefix("/").unwrap_or(&path);
        let in_image = image.is_some_and(|image| image.symlink_metadata(relative).is_ok());
        let subdir = if meta.is_dir() { Some(entry.open_dir()?) } else { None };
        let opaque = subdir.as_ref().is_some_and(|dir| is_opaque(dir, opaque_name));
        out.push(Change { kind: kind(&meta, in_image, opaque), path: path.clone() });
        if let Some(dir) = subdir {
            // Below an opaque directory, the image shows nothing.
            diff(&dir, image.filter(|_| !opaque), &path, opaque_name, out)?;
        }
    }
    Ok(())
}

fn is_opaque(dir: &Dir, opaque_name: &str) -> bool {
    let mut value = [0u8; 8];
    let Ok(dir) = readable(dir) else { return false };
    rustix::fs::fgetxattr(dir, opaque_name, &mut value[..])
        .is_ok_and(|n| value[..n].starts_with(b"y"))
}

/// cap-std's directory handles are `O_PATH` ones, good for finding files
/// relative to them, not for locking the directory, changing its mode or
/// reading its attributes: this opens the directory itself, read-only.
fn readable(dir: &Dir) -> io::Result<File> {
    dir.open_with(".", cap_std::fs::OpenOptions::new().read(true)).map(|file| file.into_std())
}

// ANCHOR: stale
/// Removes the directories that killed runtimes left in `containers`: those
/// named like ours, that no runtime holds locked, and not marked to keep.
/// Returns their names. The caller holds the lock on `containers` itself.
pub fn remove_stale(containers: &Dir) -> io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for entry in containers.entries()? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(String::from) else { continue };
        if !is_container_name(&name) || !entry.file_type()?.is_dir() {
            continue;
        }
        let Ok(dir) = entry.open_dir() else { continue };
        let lock = readable(&dir)?;
        if lock.try_lock().is_err() || dir.exists(KEEP) {
            continue; // a runtime is using it, or a layer kept on purpose
        }
        containers.remove_dir_all(&name)?;
        removed.push(name);
    }
    removed.sort();
    Ok(removed)
}
// ANCHOR_END: stale

/// `container-4242`, or `container-4242-2` when a kept layer has the name already.
pub fn is_container_name(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.strip_prefix(PREFIX).is_some_and(|rest| match rest.split_once('-') {
        Some((pid, n)) => digits(pid) && digits(n),
        None => digits(rest),
    })
}

/// `container-<pid>`, or with `-2`, `-3`… if a kept layer has that name.
fn free_name(containers: &Dir, pid: u32) -> String {
    let base = format!("{PREFIX}{pid}");
    (1..)
        .map(|n| if n == 1 { base.clone() } else { format!("{base}-{n}") })
        .find(|name| !containers.exists(name))
        .expect("some name is free")
}

/// Whether we run in a user namespace other than the host's: rootless, as
/// `cargo xtask run --rootless` runs the steps. The host's maps every uid to
/// itself, `0 0 4294967295` (user_namespaces(7)); runc tells them apart the same way.
fn rootless() -> Result<bool> {
    let uid_map = std::fs::read_to_string("/proc/self/uid_map")
        .context("failed to read /proc/self/uid_map")?;
    Ok(!is_initial_uid_map(&uid_map))
}

/// Whether `uid_map` is the host's: every uid, mapped to itself.
pub fn is_initial_uid_map(uid_map: &str) -> bool {
    let lines: Vec<Vec<&str>> = uid_map.lines().map(|l| l.split_whitespace().collect()).collect();
    matches!(&lines[..], [line] if line[..] == ["0", "0", "4294967295"])
}

/// The uid outside that uid `inside` stands for, from a uid_map.
pub fn outer_uid(uid_map: &str, inside: u32) -> Option<u32> {
    uid_map.lines().find_map(|line| {
        let numbers: Vec<u32> = line.split_whitespace().filter_map(|n| n.parse().ok()).collect();
        match numbers[..] {
            [first, outer, count] if (first..first.saturating_add(count)).contains(&inside) => {
                Some(outer + (inside - first))
            }
            _ => None,
        }
    })
}

/// The running kernel's release, as `uname -r` prints it.
fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether a kernel of this release (`uname -r`) is `version` or later. A
/// release we cannot read is given the benefit of the doubt: mount(2) will say.
pub fn kernel_at_least(release: &str, version: (u32, u32)) -> bool {
    let mut numbers = release.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>());
    match (numbers.next(), numbers.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= version,
        _ => true,
    }
}

/// Whether a kernel of this release lets a user namespace mount an overlay.
pub fn kernel_allows_rootless_overlay(release: &str) -> bool {
    kernel_at_least(release, ROOTLESS_OVERLAY_SINCE)
}

/// Refuses a rootless overlay on a kernel that cannot mount one, saying why.
pub fn check_kernel_for_rootless(release: &str) -> Result<()> {
    if kernel_allows_rootless_overlay(release) {
        return Ok(());
    }
    let (major, minor) = ROOTLESS_OVERLAY_SINCE;
    bail!(
        "this is Linux {release}, and a rootless overlay needs Linux {major}.{minor} or later: \
         older kernels let only the host's root mount overlayfs\n\
         hint: run {} as root (with sudo), not rootless",
        program_name().to_string_lossy()
    )
}

/// Where the per-container directories go without `--containers-dir`.
fn default_containers_dir(rootless: bool) -> PathBuf {
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let uid = outer_uid(&uid_map, nix::unistd::geteuid().as_raw()).unwrap_or(0);
    containers_dir_for(rootless, std::env::var_os("XDG_RUNTIME_DIR").as_deref(), uid)
}

// ANCHOR: where
/// Root's containers go in /run/workshop-containers. A rootless runtime's go
/// in `$XDG_RUNTIME_DIR/workshop-containers`: the user's own run-time
/// directory, private, emptied at logout and at boot (rootless runc and
/// podman keep their state there too). Without it (`su`, `sudo -u`),
/// `/tmp/workshop-containers-<uid>`, checked to be ours, as tmux does.
pub fn containers_dir_for(rootless: bool, xdg_runtime_dir: Option<&OsStr>, uid: u32) -> PathBuf {
    match xdg_runtime_dir.map(Path::new) {
        _ if !rootless => PathBuf::from(ROOT_CONTAINERS_DIR),
        Some(dir) if dir.is_absolute() => dir.join("workshop-containers"),
        _ => PathBuf::from(format!("/tmp/workshop-containers-{uid}")),
    }
}
// ANCHOR_END: where

/// ROOTFS as an absolute path, after checking, before anything is made,
/// that overlayfs can take it and the containers' directory: as text (its
/// options are text), and the one not inside the other.
fn overlay_paths(rootfs: &Path, containers: &Path) -> Result<PathBuf> {
    let canonical = rootfs
        .canonicalize()
        .with_context(|| format!("failed to find the rootfs {}", rootfs.display()))?;
    if containers.starts_with(&canonical) || containers.starts_with(std::path::absolute(rootfs)?) {
        bail!(
            "{} is inside the rootfs {}: a container's layer cannot live in its own image\n\
             hint: choose a place outside it with --containers-dir",
            containers.display(),
            canonical.display()
        );
    }
    for path in [&canonical, containers] {
        if path.to_str().is_none() {
            bail!("overlayfs takes paths as text, and {} is not UTF-8", path.display());
        }
    }
    Ok(canonical)
}

/// Makes the containers' directory if need be (0700: only its owner looks
/// in), and opens it. A default one must be a real directory that we own:
/// in /tmp, another user could have made it first to read our containers' files.
fn open_containers_dir(path: &Path, is_default: bool) -> Result<Dir> {
    if path.exists() && !path.is_dir() {
        bail!("{} is not a directory: the containers' directories go there", path.display());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("failed to make the containers' directory {}", path.display()))?;
    let meta = std::fs::symlink_metadata(path)?;
    let me = nix::unistd::geteuid().as_raw();
    if is_default && (!meta.is_dir() || meta.uid() != me) {
        bail!(
            "{} is not a directory of ours (it belongs to uid {}, or is a symlink): refusing to \
             keep containers' files there\nhint: remove it, or choose another place with \
             --containers-dir",
            path.display(),
            meta.uid()
        );
    }
    Dir::open_ambient_dir(path, ambient_authority())
        .with_context(|| format!("failed to open the containers' directory {}", path.display()))
}

/// The upper directory cannot be on an overlay itself (the kernel refuses),
/// which happens when the runtime runs in a container whose `/` is one.
/// Checked before the containers' directory is made: on the filesystem of
/// its nearest ancestor that exists, where it would be made.
fn check_upper_filesystem(path: &Path) -> Result<()> {
    use nix::sys::statfs::{OVERLAYFS_SUPER_MAGIC, statfs};
    let existing = path.ancestors().find(|dir| dir.exists()).unwrap_or(Path::new("/"));
    let kind = statfs(existing).map(|s| s.filesystem_type());
    if kind.is_ok_and(|kind| kind == OVERLAYFS_SUPER_MAGIC) {
        bail!(
            "{} is on an overlay filesystem, and overlayfs cannot use a directory there as a \
             container's upper layer (are we running inside a container?)\n\
             hint: choose a directory on tmpfs or ext4 with --containers-dir, e.g. /dev/shm/containers",
            path.display()
        );
    }
    Ok(())
}

/// Rootless, overlayfs keeps its marks in `user.` extended attributes, and
/// some filesystems cannot hold them (tmpfs before Linux 6.6): try one.
fn check_user_xattrs(upper: &File, path: &Path) -> Result<()> {
    let probe = "user.workshop-probe";
    match rustix::fs::fsetxattr(upper, probe, b"y", rustix::fs::XattrFlags::empty()) {
        Ok(()) => {
            let _ = rustix::fs::fremovexattr(upper, probe);
            Ok(())
        }
        Err(err) => bail!(
            "{} is on a filesystem that cannot hold `user.` extended attributes ({err}), where a \
             rootless overlay marks the directories a container replaced (tmpfs can only since \
             Linux 6.6)\nhint: choose a directory on a disk filesystem such as ext4 with \
             --containers-dir, e.g. ~/.cache/workshop-containers",
            path.display()
        ),
    }
}

/// What a failed overlay mount most likely means, and what to do.
fn explain_mount_failure(err: Errno, rootless: bool, containers: &Path) -> anyhow::Error {
    let why = match err {
        Errno::ENODEV => {
            "this kernel has no overlay filesystem\nhint: `sudo modprobe overlay` loads it"
                .to_string()
        }
        Errno::EPERM if rootless => format!(
            "this kernel does not let a user namespace mount an overlay (Linux {}.{} or later \
             can, unless a security module forbids it)\nhint: run as root (with sudo), not rootless",
            ROOTLESS_OVERLAY_SINCE.0, ROOTLESS_OVERLAY_SINCE.1
        ),
        // overlayfs makes its own directories in `work/` as it mounts.
        Errno::ENOSPC | Errno::EDQUOT => format!(
            "the filesystem of {} is full\n\
             hint: free some space there, or choose another place with --containers-dir",
            containers.display()
        ),
        Errno::EINVAL => format!(
            "the kernel refused the overlay: maybe the filesystem of {} cannot hold an upper layer\n\
             hint: `sudo dmesg | tail` shows the kernel's reason\n\
             hint: choose a directory on tmpfs or ext4 with --containers-dir",
            containers.display()
        ),
        _ => String::new(),
    };
    let separator = if why.is_empty() { "" } else { ": " };
    anyhow::anyhow!("failed to mount the overlay: {err}{separator}{why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_s_uid_map_is_the_whole_range() {
        assert!(is_initial_uid_map("         0          0 4294967295\n"));
        assert!(!is_initial_uid_map("         0       1000          1\n"));
        assert!(!is_initial_uid_map("0 0 65536\n"));
        assert!(!is_initial_uid_map(""));
        assert_eq!(outer_uid("         0       1000          1\n", 0), Some(1000));
        assert_eq!(outer_uid("0 0 4294967295\n", 1000), Some(1000));
        assert_eq!(outer_uid("0 100000 65536\n", 7), Some(100007));
        assert_eq!(outer_uid("0 1000 1\n", 5), None);
    }

    #[test]
    fn rootless_overlay_needs_linux_5_11() {
        for old in ["5.10.0-28-amd64", "4.19.0", "5.4.0-150-generic", "3.10.0-1160.el7.x86_64"] {
            assert!(!kernel_allows_rootless_overlay(old), "{old}");
            let err = format!("{:#}", check_kernel_for_rootless(old).unwrap_err());
            assert!(err.contains(&format!("this is Linux {old}")), "{err}");
            assert!(err.contains("needs Linux 5.11 or later"), "{err}");
            assert!(err.contains("\nhint: run "), "{err}");
        }
        for new in ["5.11.0", "5.15.0-105-generic", "6.18.44-fc-v1045", "10.0"] {
            assert!(kernel_allows_rootless_overlay(new), "{new}");
            assert!(check_kernel_for_rootless(new).is_ok());
        }
        assert!(kernel_allows_rootless_overlay(""), "unknown: let mount(2) decide");
        assert!(kernel_at_least("5.10.0-28-amd64", VOLATILE_SINCE));
        assert!(!kernel_at_least("5.4.0-150-generic", VOLATILE_SINCE));
    }

    #[test]
    fn where_the_containers_go() {
        let xdg = Some(OsStr::new("/run/user/1000"));
        assert_eq!(containers_dir_for(false, xdg, 0), Path::new("/run/workshop-containers"));
        assert_eq!(
            containers_dir_for(true, xdg, 1000),
            Path::new("/run/user/1000/workshop-containers")
        );
        assert_eq!(
            containers_dir_for(true, None, 1000),
            Path::new("/tmp/workshop-containers-1000")
        );
        let relative = Some(OsStr::new("run/user/1000"));
        assert_eq!(
            containers_dir_for(true, relative, 1000),
            Path::new("/tmp/workshop-containers-1000")
        );
    }

    #[test]
    fn container_directory_names() {
        for ours in ["container-4242", "container-1", "container-4242-2"] {
            assert!(is_container_name(ours), "{ours}");
        }
        for other in [
            "container-",
            "container-x",
            "container-42-",
            "containers-42",
            "42",
            "my-container-1",
            "container-4-2-1",
        ] {
            assert!(!is_container_name(other), "{other}");
        }
    }

    #[test]
    fn overlay_options_escape_their_separators() {
        assert_eq!(escape(Path::new("/srv/rootfs")), "/srv/rootfs");
        assert_eq!(escape(Path::new("/a,b:c\\d")), "/a\\,b\\:c\\\\d");
    }

    #[test]
    fn changes_read_like_docker_diff() {
        let change = |kind, path: &str| Change { kind, path: PathBuf::from(path) }.to_string();
        assert_eq!(change(Kind::Added, "/hello.txt"), "A /hello.txt");
        assert_eq!(change(Kind::Changed, "/etc"), "C /etc");
        assert_eq!(change(Kind::Deleted, "/etc/motd"), "D /etc/motd");
        assert_eq!(
            change(Kind::Replaced, "/media"),
            "C /media   (opaque: the image's /media is hidden)"
        );
    }

    #[test]
    fn stale_directories_go_and_the_others_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let containers = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        let (_live, _lock) = make_container_dir(&containers, "container-1").unwrap();
        let (stale, lock) = make_container_dir(&containers, "container-2").unwrap();
        stale.write("upper/file", b"x").unwrap();
        stale.create_dir("work/work").unwrap();
        drop((stale, lock)); // as if its runtime was killed
        let (kept, lock) = make_container_dir(&containers, "container-3").unwrap();
        kept.write(KEEP, b"").unwrap();
        drop((kept, lock));
        std::fs::create_dir(tmp.path().join("not-a-container")).unwrap();
        assert_eq!(remove_stale(&containers).unwrap(), ["container-2"]);
        let mut left: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["container-1", "container-3", "not-a-container"]);
        assert_eq!(free_name(&containers, 3), "container-3-2");
        assert_eq!(free_name(&containers, 4), "container-4");
    }
}

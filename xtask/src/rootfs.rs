//! `cargo xtask rootfs`: a root filesystem for the container, at `./rootfs`.
//!
//! A container's `/` is just a directory on the host holding a Linux
//! userland. The article extracts Alpine's minirootfs with `tar`; this does
//! the same, with the care a tool that may run as root owes the machine:
//!
//! - it refuses `/`, every system directory and anything under one (`/usr/local`,
//!   `/var/lib`, `/etc/ssl`, `/media`, a `lost+found`), the workspace and the home
//!   directory or anything holding them, mount points, and directories with
//!   something mounted in them (a `proc` left mounted by step 01);
//! - it refuses a directory that another user owns or may write to: they could
//!   swap its contents while root extracts into it;
//! - it writes only into a new or empty directory, or one it filled itself
//!   (the stamp says so); `--force` extracts again over such a directory, and
//!   never over files this tool did not write;
//! - it holds the directory open, and locked, from the checks to the end:
//!   [`crate::extract`] works relative to that handle, so a directory renamed
//!   or swapped for a symlink meanwhile changes nothing, and a second
//!   `cargo xtask rootfs` waits for the first;
//! - it remembers what it extracted in a stamp file *beside* the rootfs
//!   (`.rootfs.xtask-stamp`), written to a new file and renamed into place,
//!   never through a symlink: the container's `/` stays exactly the tarball's,
//!   and a second run sees there is nothing to do.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use cap_std::fs::Dir;

use crate::download;
use crate::extract::{self, Summary};

/// Where a rootfs comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The article's Alpine 3.20.3 minirootfs for this machine's architecture,
    /// checksum-verified (see [`crate::alpine_tarball`]).
    Alpine,
    /// Any rootfs tarball, gzip-compressed or not, such as the output of
    /// `docker container export`. Used as it is: not checksum-verified.
    Tarball(PathBuf),
}

/// How [`prepare_with`] may treat the destination and the tarball.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Extract again into a directory this tool filled before (from this
    /// tarball or another one). Never allows writing into a directory it did not fill.
    pub force: bool,
    /// Keep setuid/setgid bits and create device nodes, as the tarball says (see
    /// [`extract::Options`]).
    pub keep_setuid_and_devices: bool,
}

/// The result of [`prepare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The rootfs directory (absolute).
    pub dest: PathBuf,
    /// Where it came from: a file name or path.
    pub source: String,
    /// Whether the tarball was checked against a pinned SHA-512 (Alpine's is; `--from-tar` is not).
    pub verified: bool,
    /// The SHA-512 of the tarball.
    pub sha512: String,
    /// What was extracted; `None` if `dest` already held this source and nothing was done.
    pub extracted: Option<Summary>,
}

impl fmt::Display for Prepared {
    /// A few lines for the terminal: what is where, from which tarball, and
    /// how we know it is all there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dest = shown(&self.dest);
        match &self.extracted {
            None => writeln!(
                f,
                "rootfs: {dest} is already there (nothing to do; `{}` extracts it again)",
                rootfs_command(&self.dest, self.tarball().as_deref(), true)
            )?,
            Some(_) => writeln!(f, "rootfs: ready at {dest}")?,
        }
        let check =
            if self.verified { "checksum verified" } else { "your tarball: not checksum-verified" };
        writeln!(f, "  source:  {} ({check})", self.source)?;
        writeln!(f, "  sha512:  {}…", &self.sha512[..self.sha512.len().min(16)])?;
        if let Some(summary) = &self.extracted {
            writeln!(f, "  entries: {}", summary.entries)?;
            // How we know the tarball was whole: a pinned SHA-512 proves it
            // byte for byte; any other tarball shows it by its own end marker.
            if self.verified {
                writeln!(
                    f,
                    "  whole:   yes: its SHA-512 is the pinned one, byte for byte the release"
                )?;
            } else {
                writeln!(f, "  whole:   yes: {}", summary.complete)?;
            }
            if !summary.owners_kept {
                writeln!(
                    f,
                    "  note:    owners not kept (only root can give files away): the files are yours, which is fine for the steps"
                )?;
            }
            if !summary.setuid_dropped.is_empty() {
                writeln!(
                    f,
                    "  setuid:  dropped the setuid/setgid bits of {} (anyone on this machine could run them from here); \
                     --keep-setuid-and-devices keeps them",
                    some_of(&summary.setuid_dropped)
                )?;
            }
            if !summary.devices_skipped.is_empty() {
                writeln!(
                    f,
                    "  devices: left out {} device node(s), {} (the container gets its /dev from the runtime); \
                     --keep-setuid-and-devices makes them",
                    summary.devices_skipped.len(),
                    some_of(&summary.devices_skipped)
                )?;
            }
            for skipped in &summary.skipped {
                writeln!(f, "  skipped: {skipped}")?;
            }
        }
        Ok(())
    }
}

impl Prepared {
    fn tarball(&self) -> Option<PathBuf> {
        (!self.verified).then(|| PathBuf::from(&self.source))
    }
}

/// `a, b, c` or `a, b, c and 7 more`.
fn some_of(paths: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = paths.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if paths.len() > SHOWN {
        text += &format!(" and {} more", paths.len() - SHOWN);
    }
    text
}

/// `./rootfs` for a directory in the workspace, else the absolute path.
fn shown(dest: &Path) -> String {
    match crate::display_path(dest) {
        absolute if absolute.starts_with('/') => absolute,
        relative => format!("./{relative}"),
    }
}

/// The `cargo xtask rootfs` command line that works on `dest` (and `tarball`),
/// as a learner would type it from the workspace root: hints name a command that exists.
pub fn rootfs_command(dest: &Path, tarball: Option<&Path>, force: bool) -> String {
    let mut command = "cargo xtask rootfs".to_owned();
    let dest = crate::display_path(dest);
    if dest != "rootfs" {
        command += &format!(" --dest {}", crate::shell_quote(&dest));
    }
    if let Some(tarball) = tarball {
        command += &format!(" --from-tar {}", crate::shell_quote(&crate::display_path(tarball)));
    }
    if force {
        command += " --force";
    }
    command
}

/// [`prepare_with`] with only `force` chosen.
pub fn prepare(dest: &Path, source: &Source, force: bool) -> Result<Prepared> {
    prepare_with(dest, source, &Options { force, ..Options::default() })
}

/// Puts a rootfs from `source` at `dest` (created if missing), unless it is
/// already there. With `options.force`, extracts again over a rootfs this
/// tool put there before (from this source or another).
///
/// Refuses system directories, mount points, directories with anything
/// mounted inside, directories another user owns or may write to, and
/// non-empty directories this tool did not fill (with or without `force`).
pub fn prepare_with(dest: &Path, source: &Source, options: &Options) -> Result<Prepared> {
    let dest = resolve(dest)?;
    // What we are going to extract. For Alpine the checksum is pinned, so we
    // know it before downloading anything: a second run needs no network.
    let (description, sha512) = match source {
        Source::Alpine => {
            let pinned = download::Pinned::alpine(download::ALPINE_MIRROR, std::env::consts::ARCH)?;
            (pinned.file_name, pinned.sha512)
        }
        Source::Tarball(tarball) => {
            let tarball = crate::from_workspace_root(tarball);
            // Before anything is made: a file that is not a tarball leaves nothing behind.
            extract::check_tarball(&tarball)?;
            (tarball.display().to_string(), download::sha512_file(&tarball)?)
        }
    };
    let tarball_arg = match source {
        Source::Alpine => None,
        Source::Tarball(tarball) => Some(crate::from_workspace_root(tarball)),
    };
    let place = Place::open(&dest)?;
    refuse_mounted(&place.dest)?;
    let _lock = place.lock()?;
    let dest = place.dest.clone();
    let stamp = place.read_stamp();
    // Ours: the stamp names this very directory (device and inode), not just its path.
    let ours = stamp.as_ref().is_some_and(|s| s.directory == Some(place.identity));
    let same = stamp.as_ref().is_some_and(|s| s.sha512 == sha512);
    let complete = stamp.as_ref().is_some_and(|s| s.complete);
    let prepared = |extracted| Prepared {
        dest: dest.clone(),
        source: description.clone(),
        verified: *source == Source::Alpine,
        sha512: sha512.clone(),
        extracted,
    };

    let empty = place.is_empty()?;
    if same && complete && !empty && !options.force {
        // (A stamp from before stamps named their directory counts here: nothing is written.)
        return Ok(prepared(None));
    }
    if !empty && !ours {
        bail!(
            "{} is not empty, and `cargo xtask rootfs` did not fill it: it never extracts over \
             files it did not write (not even with --force)\n\
             hint: choose a new or empty directory: `{}`",
            dest.display(),
            rootfs_command(&sibling_suggestion(&dest), tarball_arg.as_deref(), false)
        );
    }
    if !empty && !same && !options.force {
        let other = stamp.as_ref().map_or("another tarball", |s| s.source.as_str());
        bail!(
            "{} already holds another rootfs, from {other}\n\
             hint: `{}` extracts this one over it (the tarball's files replace the ones there)\n\
             hint: or choose another directory with --dest",
            dest.display(),
            rootfs_command(&dest, tarball_arg.as_deref(), true)
        );
    }
    if !empty && same && !complete && !options.force {
        crate::say!("note: finishing an earlier, interrupted extraction into {}", dest.display());
    }

    let tarball = match source {
        Source::Alpine => download::alpine_tarball()?,
        Source::Tarball(tarball) => crate::from_workspace_root(tarball),
    };
    // The stamp says "unfinished" until the extraction is done: an interrupted
    // run is finished by the next one, without --force.
    let mut stamp = Stamp {
        source: description.clone(),
        sha512: sha512.clone(),
        complete: false,
        directory: Some(place.identity),
    };
    place.write_stamp(&stamp)?;
    let extract_options =
        extract::Options { keep_setuid_and_devices: options.keep_setuid_and_devices };
    let summary = extract::extract_into(&tarball, &place.dir, &dest, &extract_options)
        .with_context(|| {
            format!(
                "the rootfs at {} is unfinished\n\
                 hint: once the cause is fixed, `{}` finishes it",
                dest.display(),
                rootfs_command(&dest, tarball_arg.as_deref(), false)
            )
        })?;
    stamp.complete = true;
    place.write_stamp(&stamp)?;
    Ok(prepared(Some(summary)))
}

/// `rootfs` beside `dest`, or `rootfs2` if `dest` is `rootfs`: a directory to suggest.
fn sibling_suggestion(dest: &Path) -> PathBuf {
    let name = if dest.file_name().is_some_and(|n| n == "rootfs") { "rootfs2" } else { "rootfs" };
    dest.with_file_name(name)
}

/// Whether `dest` holds a rootfs we can use as it is: something is there, and
/// it is not an unfinished extraction. (`cargo xtask run` only makes the
/// rootfs when this is false.)
pub fn is_ready(dest: &Path) -> bool {
    let unfinished =
        stamp_path(dest).ok().and_then(|p| Stamp::read_path(&p)).is_some_and(|s| !s.complete);
    dest.is_dir() && fs::read_dir(dest).is_ok_and(|mut e| e.next().is_some()) && !unfinished
}

/// `dest` made absolute (relative to the workspace root), its parent created
/// and symlinks resolved, as `/proc/self/mountinfo` shows paths. Refuses
/// system locations before creating anything.
fn resolve(dest: &Path) -> Result<PathBuf> {
    let dest = crate::from_workspace_root(dest);
    let dest = if dest.exists() { dest.canonicalize()? } else { resolve_missing(&dest) };
    if dest.parent().is_none() || dest.file_name().is_none() {
        return Err(refusal(&dest, "it is the root directory"));
    }
    if let Some(why) = forbidden(&dest) {
        return Err(refusal(&dest, &why));
    }
    let parent = dest.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    Ok(dest)
}

/// The path `dest` will have: its deepest existing ancestor with symlinks
/// resolved, then the rest, `..` taken lexically (nothing there exists yet).
fn resolve_missing(dest: &Path) -> PathBuf {
    let existing = dest.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"));
    let mut path = existing.canonicalize().unwrap_or_else(|_| existing.to_path_buf());
    for part in dest.strip_prefix(existing).unwrap_or(Path::new("")).components() {
        match part {
            Component::Normal(name) => path.push(name),
            Component::ParentDir => {
                path.pop();
            }
            _ => {}
        }
    }
    path
}

fn refusal(dest: &Path, why: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "refusing {}: {why}: extracting there would overwrite this machine's own files, \
         or put BusyBox's programs and musl's libraries where the system looks for its own\n\
         hint: give the rootfs a directory of its own, such as ./rootfs",
        dest.display()
    )
}

/// Directory trees that belong to the system, refused at any depth (the
/// Filesystem Hierarchy Standard's, and the places distributions add).
const SYSTEM_TREES: &[&str] = &[
    "/bin",
    "/boot",
    "/cdrom",
    "/dev",
    "/efi",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/lost+found",
    "/media",
    "/nix",
    "/opt",
    "/proc",
    "/run",
    "/sbin",
    "/snap",
    "/sys",
    "/usr",
    "/var",
];

/// Directories refused themselves, though a directory of your own inside them is fine.
const SYSTEM_DIRS: &[&str] = &["/home", "/mnt", "/root", "/srv", "/tmp", "/var/tmp"];

/// Why `dest` (absolute, symlinks resolved) is no place for a rootfs, if it is not.
pub fn forbidden(dest: &Path) -> Option<String> {
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let holds = |inner: &Path| canonical(inner).starts_with(dest);
    if dest == Path::new("/") {
        return Some("it is the root directory".to_owned());
    }
    if dest.components().any(|c| c.as_os_str() == "lost+found") {
        return Some("it is in a lost+found directory, which fsck(8) fills".to_owned());
    }
    // Scratch space of its own under /var/tmp is fine, like under /tmp.
    let under_var_tmp = dest.starts_with("/var/tmp") && dest != Path::new("/var/tmp");
    for tree in SYSTEM_TREES {
        for tree in [Path::new(tree).to_path_buf(), canonical(Path::new(tree))] {
            if dest.starts_with(&tree) && !under_var_tmp {
                return Some(format!("it is a system directory (under {})", tree.display()));
            }
        }
    }
    let home_of_someone = dest.parent() == Some(Path::new("/home"));
    if SYSTEM_DIRS.iter().any(|dir| canonical(Path::new(dir)) == dest) || home_of_someone {
        return Some("it is a system directory".to_owned());
    }
    if holds(crate::workspace_root()) {
        return Some("it holds the workspace".to_owned());
    }
    if std::env::var_os("HOME").is_some_and(|home| holds(Path::new(&home))) {
        return Some("it holds your home directory".to_owned());
    }
    None
}

/// The destination, held open: its parent (where the stamp goes) and the
/// directory itself, both as handles, so nothing is looked up by path again.
struct Place {
    dest: PathBuf,
    parent: Dir,
    name: String,
    dir: Dir,
    /// The directory's device and inode: the stamp names it by them.
    identity: (u64, u64),
    /// An open file description of `dir` for flock(2).
    lock_handle: fs::File,
}

impl Place {
    /// Opens `dest` (creating it if missing) and checks who owns it.
    fn open(dest: &Path) -> Result<Place> {
        let (Some(parent_path), Some(name)) = (dest.parent(), dest.file_name()) else {
            return Err(refusal(dest, "it has no parent directory"));
        };
        let name = name.to_str().map(str::to_owned).with_context(|| {
            format!("{} is not valid UTF-8: choose a plainer name", dest.display())
        })?;
        let parent = Dir::open_ambient_dir(parent_path, cap_std::ambient_authority())
            .with_context(|| format!("cannot open {}", parent_path.display()))?;
        // Where the parent really is now: a path that was swapped for a
        // symlink since we resolved it shows here.
        let dest = match real_path(&parent) {
            Some(real) => real.join(&name),
            None => dest.to_path_buf(),
        };
        if let Some(why) = forbidden(&dest) {
            return Err(refusal(&dest, &why));
        }
        match extract::create_dir(&parent, Path::new(&name)) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => {
                return Err(err).with_context(|| format!("cannot create {}", dest.display()));
            }
        }
        let lock_handle = extract::open_readable_dir(&parent, Path::new(&name)).map_err(|err| {
            match parent.symlink_metadata(&name) {
                Ok(meta) if meta.is_symlink() => anyhow::anyhow!(
                    "refusing {}: it is a symlink, which could point anywhere by the time we write\n\
                     hint: give the real directory: --dest {}",
                    dest.display(),
                    dest.canonicalize().unwrap_or_else(|_| dest.clone()).display()
                ),
                Ok(meta) if !meta.is_dir() => {
                    anyhow::anyhow!("{} exists and is not a directory", dest.display())
                }
                _ => anyhow::Error::new(err).context(format!("cannot open {}", dest.display())),
            }
        })?;
        let meta =
            lock_handle.metadata().with_context(|| format!("cannot inspect {}", dest.display()))?;
        refuse_foreign(&dest, meta.uid(), meta.gid(), meta.mode())?;
        let dir = Dir::from_std_file(
            lock_handle.try_clone().with_context(|| format!("cannot open {}", dest.display()))?,
        );
        Ok(Place { dest, parent, name, dir, identity: (meta.dev(), meta.ino()), lock_handle })
    }

    /// Takes the lock on the directory (flock(2)): a second `cargo xtask
    /// rootfs` into the same directory waits here, and says for whom.
    fn lock(&self) -> Result<&fs::File> {
        match self.lock_handle.try_lock() {
            Ok(()) => return Ok(&self.lock_handle),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("cannot lock {}", self.dest.display()));
            }
        }
        let holder = lock_holder(self.identity.1)
            .map(|(pid, name)| format!("process {pid} ({name})"))
            .unwrap_or_else(|| "another process".to_owned());
        crate::say!(
            "waiting: {holder} holds the lock on {}: another `cargo xtask rootfs` is extracting there",
            self.dest.display()
        );
        self.lock_handle.lock().with_context(|| format!("cannot lock {}", self.dest.display()))?;
        Ok(&self.lock_handle)
    }

    fn is_empty(&self) -> Result<bool> {
        let mut entries =
            self.dir.entries().with_context(|| format!("cannot read {}", self.dest.display()))?;
        Ok(entries.next().is_none())
    }

    fn stamp_name(&self) -> String {
        format!(".{}.xtask-stamp", self.name)
    }

    /// The stamp beside the directory, if there is one we wrote: a regular
    /// file, not a symlink, owned by us.
    fn read_stamp(&self) -> Option<Stamp> {
        let file = extract::open_nofollow(&self.parent, Path::new(&self.stamp_name())).ok()?;
        Stamp::read_file(file)
    }

    /// Writes the stamp to a new file (`O_CREAT | O_EXCL | O_NOFOLLOW`: never
    /// through a symlink someone planted), then renames it into place.
    fn write_stamp(&self, stamp: &Stamp) -> Result<()> {
        let name = self.stamp_name();
        let temp = format!("{name}.{}.tmp", std::process::id());
        let shown = self.dest.with_file_name(&name);
        let written = (|| -> io::Result<()> {
            let _ = self.parent.remove_file(&temp); // ours, from a run that was killed
            let mut file = extract::create_new(&self.parent, Path::new(&temp), 0o644)?;
            file.write_all(stamp.text().as_bytes())?;
            self.parent.rename(&temp, &self.parent, &name)
        })();
        if written.is_err() {
            let _ = self.parent.remove_file(&temp);
        }
        written.with_context(|| format!("cannot write {}", shown.display()))
    }
}

/// Where a directory handle really is, from `/proc/self/fd` (Linux).
fn real_path(dir: &Dir) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())).ok().filter(|p| p.is_absolute())
}

/// Refuses a directory another user owns or may write to: they could swap
/// its contents for symlinks while we extract, or plant a stamp.
fn refuse_foreign(dest: &Path, uid: u32, gid: u32, mode: u32) -> Result<()> {
    let me = nix::unistd::geteuid();
    refuse_foreign_for(dest, (uid, gid, mode), me.as_raw(), private_group_of(me))
}

/// The group only `uid` is in (its own, as most distributions make one per user), if any.
fn private_group_of(uid: nix::unistd::Uid) -> Option<u32> {
    let user = nix::unistd::User::from_uid(uid).ok()??;
    let group = nix::unistd::Group::from_gid(user.gid).ok()??;
    (group.name == user.name && group.mem.iter().all(|m| *m == user.name))
        .then_some(user.gid.as_raw())
}

/// [`refuse_foreign`] for a directory with `(uid, gid, mode)`, checked for
/// user `me` whose private group (if any) is `private_group`.
pub fn refuse_foreign_for(
    dest: &Path,
    (uid, gid, mode): (u32, u32, u32),
    me: u32,
    private_group: Option<u32>,
) -> Result<()> {
    let name = |uid: u32| {
        nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map_or_else(|| format!("uid {uid}"), |u| format!("{} (uid {uid})", u.name))
    };
    let why = if uid != me {
        format!("it belongs to {}, not to you ({})", name(uid), name(me))
    } else if mode & 0o002 != 0 {
        "every user may write to it".to_owned()
    } else if mode & 0o020 != 0 && private_group != Some(gid) {
        format!("the users of group {gid} may write to it")
    } else {
        return Ok(());
    };
    bail!(
        "refusing {}: {why}; whoever can write there could swap what is inside for links \
         while the rootfs is extracted into it\n\
         hint: give the rootfs a directory of your own, that only you can write to, such as ./rootfs",
        dest.display()
    )
}

/// The process holding a flock(2) on the inode `ino`, from `/proc/locks`.
fn lock_holder(ino: u64) -> Option<(u32, String)> {
    let locks = fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        // `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF` (proc_locks(5))
        let fields: Vec<&str> = line.split_whitespace().collect();
        let kind = fields.get(1)?;
        let pid: u32 = fields.get(4)?.parse().ok()?;
        let inode: u64 = fields.get(5)?.rsplit(':').next()?.parse().ok()?;
        (*kind == "FLOCK" && inode == ino).then(|| {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            (pid, comm.trim().to_owned())
        })
    })
}

/// Refuses a `dest` that is a mount point or has mounts under it: we would
/// write into (and maybe over) whatever is mounted there.
#[cfg(target_os = "linux")]
fn refuse_mounted(dest: &Path) -> Result<()> {
    let mounts = crate::mounts::current()?;
    let found = crate::mounts::mounted_at_or_under(&mounts, dest);
    if found.is_empty() {
        return Ok(());
    }
    let what = if found.iter().any(|m| m.mount_point == dest) {
        "it is a mount point"
    } else {
        "something is mounted inside it"
    };
    let mut message = format!("refusing to extract into {}: {what}:", dest.display());
    for mount in &found {
        message += &format!("\n  {} ({})", mount.mount_point.display(), mount.fs_type);
    }
    if found.iter().any(|m| m.fs_type == "proc") {
        message += "\n(`mount -t proc proc /proc` in a plain chroot, as in step 01, mounts proc on the host, and it stays)";
    }
    message += "\nhint: unmount first:";
    for command in crate::mounts::umount_commands(&found) {
        message += &format!("\nhint:   {command}");
    }
    bail!(message)
}

/// Without mountinfo, at least refuse a mount point: its device differs from its parent's.
#[cfg(not(target_os = "linux"))]
fn refuse_mounted(dest: &Path) -> Result<()> {
    if let (Ok(meta), Some(parent)) = (fs::metadata(dest), dest.parent())
        && fs::metadata(parent).is_ok_and(|p| p.dev() != meta.dev())
    {
        bail!("refusing to extract into {}: it is a mount point", dest.display());
    }
    Ok(())
}

/// `rootfs` → `.rootfs.xtask-stamp` in the same parent directory.
pub fn stamp_path(dest: &Path) -> Result<PathBuf> {
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        bail!("{} has no parent directory for the stamp file", dest.display());
    };
    Ok(parent.join(format!(".{}.xtask-stamp", name.to_string_lossy())))
}

/// What `cargo xtask rootfs` extracted into a directory, kept beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    source: String,
    sha512: String,
    /// False while extracting: the directory is not finished.
    complete: bool,
    /// The directory's device and inode: a stamp only vouches for the very
    /// directory it was written for, not for whatever has its name later.
    directory: Option<(u64, u64)>,
}

impl Stamp {
    /// The stamp at `path`, if there is a readable one of ours.
    fn read_path(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::OpenOptionsExt;
        let file =
            fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).ok()?;
        Stamp::read_file(file)
    }

    /// The stamp in `file`, if it is a small regular file of ours.
    fn read_file(file: fs::File) -> Option<Stamp> {
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.uid() != nix::unistd::geteuid().as_raw() {
            return None;
        }
        let mut text = String::new();
        file.take(64 * 1024).read_to_string(&mut text).ok()?;
        Stamp::parse(&text)
    }

    fn parse(text: &str) -> Option<Stamp> {
        let field = |key: &str| text.lines().find_map(|line| line.strip_prefix(key)).map(str::trim);
        let directory = field("directory:").and_then(|d| {
            let (dev, ino) = d.split_once(':')?;
            Some((dev.parse().ok()?, ino.parse().ok()?))
        });
        Some(Stamp {
            source: field("source:")?.to_owned(),
            sha512: field("sha512:")?.to_owned(),
            complete: field("complete:")? == "yes",
            directory,
        })
    }

    fn text(&self) -> String {
        let mut text = format!(
            "# Written by `cargo xtask rootfs` about the directory beside it. Delete both to start over.\n\
             source: {}\nsha512: {}\ncomplete: {}\n",
            self.source,
            self.sha512,
            if self.complete { "yes" } else { "no" }
        );
        if let Some((dev, ino)) = self.directory {
            text += &format!("directory: {dev}:{ino}\n");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A tiny rootfs tarball: `bin/sh` (holding `marker`), `etc/os-release`.
    fn tarball(dir: &Path, marker: &[u8]) -> PathBuf {
        let name = format!("rootfs-{}.tar", String::from_utf8_lossy(marker));
        crate::fixtures::TarBuilder::new()
            .file("bin/sh", 0o755, marker)
            .file("etc/os-release", 0o755, b"ID=test\n")
            .write_to(&dir.join(name))
    }

    #[test]
    fn extracts_then_does_nothing_the_second_time() {
        let scratch = tempfile::tempdir().unwrap();
        let tar = tarball(scratch.path(), b"one");
        let dest = scratch.path().join("rootfs");
        let first = prepare(&dest, &Source::Tarball(tar.clone()), false).unwrap();
        assert_eq!(first.extracted.as_ref().map(|s| s.entries), Some(2));
        assert_eq!(fs::read(dest.join("bin/sh")).unwrap(), b"one");
        let stamp = fs::read_to_string(scratch.path().join(".rootfs.xtask-stamp")).unwrap();
        assert!(stamp.contains(&first.sha512) && stamp.contains("complete: yes"), "{stamp}");
        assert!(
            !dest.join(".rootfs.xtask-stamp").exists(),
            "the rootfs stays exactly the tarball's"
        );

        fs::write(dest.join("bin/sh"), b"changed").unwrap();
        let second = prepare(&dest, &Source::Tarball(tar.clone()), false).unwrap();
        assert_eq!(second.extracted, None);
        assert!(second.to_string().contains("already there"));
        assert_eq!(fs::read(dest.join("bin/sh")).unwrap(), b"changed", "nothing was done");

        let forced = prepare(&dest, &Source::Tarball(tar), true).unwrap();
        assert!(forced.extracted.is_some());
        assert_eq!(fs::read(dest.join("bin/sh")).unwrap(), b"one");
    }

    /// Issue 8 §3, "where it may write": `--force` never unpacks over files
    /// this tool did not write.
    #[test]
    fn refuses_directories_it_did_not_fill_even_forced() {
        let scratch = tempfile::tempdir().unwrap();
        let tar = tarball(scratch.path(), b"one");
        let dest = scratch.path().join("mine");
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("notes.txt"), b"my notes").unwrap();
        for force in [false, true] {
            let text =
                crate::report(&prepare(&dest, &Source::Tarball(tar.clone()), force).unwrap_err());
            assert!(
                text.contains("did not fill it") && text.contains("not even with --force"),
                "{text}"
            );
            assert!(!dest.join("bin").exists(), "force: {force}");
            assert_eq!(fs::read_dir(&dest).unwrap().count(), 1);
        }

        // A stamp that names another directory does not make this one ours.
        let stamp = scratch.path().join(".mine.xtask-stamp");
        let sha = download::sha512_file(&tar).unwrap();
        fs::write(&stamp, format!("source: x\nsha512: {sha}\ncomplete: no\ndirectory: 1:2\n"))
            .unwrap();
        let text = crate::report(&prepare(&dest, &Source::Tarball(tar), true).unwrap_err());
        assert!(text.contains("did not fill it"), "{text}");
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 1);

        // An empty directory is fine without --force.
        let empty = scratch.path().join("empty");
        fs::create_dir(&empty).unwrap();
        prepare(&empty, &Source::Tarball(tarball(scratch.path(), b"two")), false).unwrap();
    }

    #[test]
    fn another_source_needs_force() {
        let scratch = tempfile::tempdir().unwrap();
        let dest = scratch.path().join("rootfs");
        prepare(&dest, &Source::Tarball(tarball(scratch.path(), b"one")), false).unwrap();
        let two = tarball(scratch.path(), b"two");
        let text =
            crate::report(&prepare(&dest, &Source::Tarball(two.clone()), false).unwrap_err());
        assert!(text.contains("already holds another rootfs"), "{text}");
        assert!(text.contains("hint: `cargo xtask rootfs --dest "), "{text}");
        prepare(&dest, &Source::Tarball(two), true).unwrap();
        assert_eq!(fs::read(dest.join("bin/sh")).unwrap(), b"two");
    }

    #[test]
    fn an_interrupted_extraction_is_finished_without_force() {
        let scratch = tempfile::tempdir().unwrap();
        let tar = tarball(scratch.path(), b"one");
        let dest = scratch.path().join("rootfs");
        prepare(&dest, &Source::Tarball(tar.clone()), false).unwrap();
        let stamp = scratch.path().join(".rootfs.xtask-stamp");
        fs::write(
            &stamp,
            fs::read_to_string(&stamp).unwrap().replace("complete: yes", "complete: no"),
        )
        .unwrap();
        fs::remove_file(dest.join("etc/os-release")).unwrap();
        assert!(!is_ready(&dest));
        let again = prepare(&dest, &Source::Tarball(tar), false).unwrap();
        assert!(again.extracted.is_some());
        assert!(dest.join("etc/os-release").exists());
        assert!(is_ready(&dest));
    }

    /// A tarball that is never read: should a refusal below ever fail to
    /// come, the run stops at opening it, before writing anything.
    fn never_read() -> Source {
        Source::Tarball(PathBuf::from("/nonexistent/never-read.tar"))
    }

    #[test]
    fn refuses_the_root_directory_and_files() {
        for precious in ["/", "/usr", "/tmp", ".."] {
            let text =
                crate::report(&prepare(Path::new(precious), &never_read(), true).unwrap_err());
            assert!(
                text.starts_with("xtask: refusing /") && text.contains("hint: give the rootfs"),
                "{text}"
            );
        }
        let text =
            crate::report(&prepare(crate::workspace_root(), &never_read(), true).unwrap_err());
        assert!(text.contains("overwrite this machine's own files"), "{text}");
        let scratch = tempfile::tempdir().unwrap();
        let file = scratch.path().join("file");
        fs::write(&file, b"").unwrap();
        let text = crate::report(
            &prepare(&file, &Source::Tarball(tarball(scratch.path(), b"x")), true).unwrap_err(),
        );
        assert!(text.contains("is not a directory"), "{text}");
    }

    /// Issue 8 §3, "where it may write": every system location, not only the
    /// top-level ones, is refused before anything is created there.
    #[test]
    fn refuses_every_system_location() {
        for dest in [
            "/usr/local",
            "/usr/local/lib/new-rootfs",
            "/var/lib",
            "/var/lib/new-rootfs",
            "/etc/ssl",
            "/media",
            "/lost+found",
            "/opt",
            "/boot/efi",
            "/var/tmp",
            "/home",
            "/home/someone",
            "/root",
            "/srv",
            "/mnt",
        ] {
            let text = crate::report(&prepare(Path::new(dest), &never_read(), true).unwrap_err());
            assert!(text.starts_with(&format!("xtask: refusing {dest}")), "{dest}: {text}");
            assert!(text.contains("hint: give the rootfs a directory of its own"), "{text}");
        }
        assert!(!Path::new("/usr/local/lib/new-rootfs").exists(), "nothing was created");
        assert!(!Path::new("/var/lib/new-rootfs").exists(), "nothing was created");
        let scratch = tempfile::tempdir().unwrap();
        let lost = scratch.path().join("lost+found/rootfs");
        let text = crate::report(&prepare(&lost, &never_read(), true).unwrap_err());
        assert!(text.contains("lost+found"), "{text}");
        // A directory of your own is fine, under /tmp or /var/tmp too.
        for fine in ["/var/tmp/rootfs", "/tmp/x/rootfs", "/home/someone/rootfs", "/srv/rootfs"] {
            assert_eq!(forbidden(Path::new(fine)), None, "{fine}");
        }
    }

    /// Issue 8 §3, "symlink races": a directory another user owns, or may
    /// write to, is refused.
    #[test]
    fn refuses_a_directory_another_user_owns_or_may_write() {
        let scratch = tempfile::tempdir().unwrap();
        let tar = tarball(scratch.path(), b"one");
        let me = nix::unistd::geteuid().as_raw();
        let dest = scratch.path().join("shared");
        fs::create_dir(&dest).unwrap();

        // The decision, for a directory of another uid (no root needed).
        let text =
            crate::report(&refuse_foreign_for(&dest, (me + 1, 0, 0o40755), me, None).unwrap_err());
        assert!(text.contains("it belongs to") && text.contains("not to you"), "{text}");
        assert!(refuse_foreign_for(&dest, (me, 1000, 0o40775), me, Some(1000)).is_ok());
        let text = crate::report(
            &refuse_foreign_for(&dest, (me, 1000, 0o40775), me, Some(1001)).unwrap_err(),
        );
        assert!(text.contains("group 1000 may write"), "{text}");

        // World-writable, for real.
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o777)).unwrap();
        let text =
            crate::report(&prepare(&dest, &Source::Tarball(tar.clone()), false).unwrap_err());
        assert!(text.contains("every user may write to it"), "{text}");
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);

        // Owned by someone else, for real: only root can give a directory away.
        if crate::is_root() {
            fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).unwrap();
            std::os::unix::fs::chown(&dest, Some(65534), Some(65534)).unwrap();
            let text = crate::report(&prepare(&dest, &Source::Tarball(tar), false).unwrap_err());
            assert!(text.contains("it belongs to") && text.contains("uid 65534"), "{text}");
            assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
        } else {
            crate::say!(
                "note: the half of this test that gives a directory to another user needs root \
                 (run `sudo -E cargo test -p xtask`); the decision itself was checked above"
            );
        }
    }

    /// Issue 8 §3, "the stamp file follows symlinks": the stamp is never
    /// written through a symlink planted where it goes.
    #[test]
    fn the_stamp_is_never_written_through_a_symlink() {
        let scratch = tempfile::tempdir().unwrap();
        let victim = scratch.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, scratch.path().join(".rootfs.xtask-stamp")).unwrap();
        let dest = scratch.path().join("rootfs");
        prepare(&dest, &Source::Tarball(tarball(scratch.path(), b"one")), false).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        let stamp = scratch.path().join(".rootfs.xtask-stamp");
        assert!(fs::symlink_metadata(&stamp).unwrap().is_file(), "replaced, not followed");
        assert!(fs::read_to_string(&stamp).unwrap().contains("complete: yes"));
        let leftovers: Vec<_> = fs::read_dir(scratch.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// Issue 8 §3, "concurrent runs": several runs at once into one
    /// directory all succeed; one extracts, the others wait and find it done.
    #[test]
    fn concurrent_runs_wait_for_each_other() {
        let scratch = tempfile::tempdir().unwrap();
        let tar = tarball(scratch.path(), b"one");
        let dest = scratch.path().join("rootfs");
        let runs: Vec<_> = (0..6)
            .map(|_| {
                let (tar, dest) = (tar.clone(), dest.clone());
                std::thread::spawn(move || prepare(&dest, &Source::Tarball(tar), false))
            })
            .collect();
        let results: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
        let extracted = results
            .iter()
            .map(|r| match r {
                Ok(prepared) => prepared.extracted.is_some(),
                Err(err) => panic!("{}", crate::report(err)),
            })
            .filter(|&extracted| extracted)
            .count();
        assert_eq!(extracted, 1, "one extracts, the others find it there");
        assert_eq!(fs::read(dest.join("bin/sh")).unwrap(), b"one");
    }

    /// The second run waits while the first holds the lock, and names it.
    #[test]
    fn a_held_lock_makes_the_next_run_wait() {
        let scratch = tempfile::tempdir().unwrap();
        let tar = tarball(scratch.path(), b"one");
        let dest = scratch.path().join("rootfs");
        fs::create_dir(&dest).unwrap();
        let held = fs::File::open(&dest).unwrap();
        held.lock().unwrap();
        let holder = lock_holder(fs::metadata(&dest).unwrap().ino());
        assert_eq!(holder.map(|(pid, _)| pid), Some(std::process::id()));
        let run = {
            let (tar, dest) = (tar.clone(), dest.clone());
            std::thread::spawn(move || prepare(&dest, &Source::Tarball(tar), false))
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!run.is_finished(), "it waits for the lock");
        assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
        drop(held);
        let prepared = run.join().unwrap().unwrap();
        assert!(prepared.extracted.is_some());
    }

    /// Issue 8 §3: after a failed extraction, the hint names a command that exists.
    #[test]
    fn a_failed_extraction_names_the_command_that_finishes_it() {
        let scratch = tempfile::tempdir().unwrap();
        let dest = scratch.path().join("rootfs");
        let good = fs::read(tarball(scratch.path(), b"one")).unwrap();
        let cut = scratch.path().join("cut.tar");
        fs::write(&cut, &good[..512 + 512]).unwrap(); // one whole entry, then nothing
        let text =
            crate::report(&prepare(&dest, &Source::Tarball(cut.clone()), false).unwrap_err());
        assert!(text.contains("cut short"), "{text}");
        let expected = format!(
            "hint: once the cause is fixed, `{}` finishes it",
            rootfs_command(&dest, Some(&cut), false)
        );
        assert!(text.contains(&expected), "{text}");
        // And Alpine over it (what `cargo xtask run` tries) names `cargo xtask rootfs --force`.
        let text = crate::report(&prepare(&dest, &Source::Alpine, false).unwrap_err());
        assert!(text.contains(&format!("hint: `{}`", rootfs_command(&dest, None, true))), "{text}");
    }

    #[test]
    fn rootfs_commands_are_typed_from_the_workspace() {
        let root = crate::workspace_root();
        assert_eq!(rootfs_command(&root.join("rootfs"), None, true), "cargo xtask rootfs --force");
        assert_eq!(
            rootfs_command(Path::new("/tmp/my dir"), Some(&root.join("x.tar")), false),
            "cargo xtask rootfs --dest '/tmp/my dir' --from-tar x.tar"
        );
    }

    #[test]
    fn a_missing_tarball_is_a_clear_error() {
        let scratch = tempfile::tempdir().unwrap();
        let text = crate::report(
            &prepare(
                &scratch.path().join("rootfs"),
                &Source::Tarball(scratch.path().join("nope.tar")),
                false,
            )
            .unwrap_err(),
        );
        assert!(text.contains("cannot open") && text.contains("nope.tar"), "{text}");

        // Not a tarball: said before anything is made.
        let junk = scratch.path().join("junk.tar");
        fs::write(&junk, b"hello, not a tarball\n").unwrap();
        let dest = scratch.path().join("rootfs");
        let text = crate::report(&prepare(&dest, &Source::Tarball(junk), false).unwrap_err());
        assert!(text.contains("is not a tarball: 21 bytes, starting with 68 65 6c"), "{text}");
        assert!(!dest.exists() && !scratch.path().join(".rootfs.xtask-stamp").exists());
    }

    #[test]
    fn stamp_sits_beside_the_rootfs() {
        assert_eq!(
            stamp_path(Path::new("/w/rootfs")).unwrap(),
            Path::new("/w/.rootfs.xtask-stamp")
        );
    }
}

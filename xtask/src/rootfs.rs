//! `cargo xtask rootfs`: a root filesystem for the container, at `./rootfs`.
//!
//! A container's `/` is just a directory on the host holding a Linux
//! userland. The article extracts Alpine's minirootfs with `tar`; this does
//! the same, plus the care a helper script should take:
//!
//! - it refuses `/`, mount points, and directories with something mounted in
//!   them (a `proc` left mounted by step 01 would otherwise be written into);
//! - it only writes into a non-empty directory that it made itself, unless `--force`;
//! - it remembers what it extracted in a stamp file *beside* the rootfs
//!   (`.rootfs.xtask-stamp`): the container's `/` stays exactly the tarball's,
//!   and a second run sees there is nothing to do.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

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
    /// A few lines for the terminal: what is where, from which tarball.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dest = match crate::display_path(&self.dest) {
            absolute if absolute.starts_with('/') => absolute,
            relative => format!("./{relative}"),
        };
        match &self.extracted {
            None => writeln!(
                f,
                "rootfs: {dest} is already there (nothing to do; --force extracts it again)"
            )?,
            Some(_) => writeln!(f, "rootfs: ready at {dest}")?,
        }
        let check =
            if self.verified { "checksum verified" } else { "your tarball: not checksum-verified" };
        writeln!(f, "  source:  {} ({check})", self.source)?;
        writeln!(f, "  sha512:  {}…", &self.sha512[..self.sha512.len().min(16)])?;
        if let Some(summary) = &self.extracted {
            writeln!(f, "  entries: {}", summary.entries)?;
            if !summary.owners_kept {
                writeln!(
                    f,
                    "  note:    owners not kept (only root can give files away): the files are yours, which is fine for the steps"
                )?;
            }
            for skipped in &summary.skipped {
                writeln!(f, "  skipped: {skipped}")?;
            }
        }
        Ok(())
    }
}

/// Puts a rootfs from `source` at `dest` (created if missing), unless it is
/// already there. With `force`, extracts even over a directory this tool did
/// not make, or over a different rootfs (files are replaced, directories kept).
///
/// Refuses `/`, mount points, and directories with anything mounted inside.
pub fn prepare(dest: &Path, source: &Source, force: bool) -> Result<Prepared> {
    let dest = resolve(dest)?;
    refuse_mounted(&dest)?;
    let stamp_path = stamp_path(&dest)?;
    let stamp = Stamp::read(&stamp_path);

    // What we are going to extract. For Alpine the checksum is pinned, so we
    // know it before downloading anything: a second run needs no network.
    let (description, sha512) = match source {
        Source::Alpine => {
            let pinned = download::Pinned::alpine(download::ALPINE_MIRROR, std::env::consts::ARCH)?;
            (pinned.file_name, pinned.sha512)
        }
        Source::Tarball(tarball) => {
            let tarball = crate::from_workspace_root(tarball);
            (tarball.display().to_string(), download::sha512_file(&tarball)?)
        }
    };
    let ours_and_same = stamp.as_ref().is_some_and(|s| s.sha512 == sha512);
    let complete = stamp.as_ref().is_some_and(|s| s.complete);
    let prepared = |extracted| Prepared {
        dest: dest.clone(),
        source: description.clone(),
        verified: *source == Source::Alpine,
        sha512: sha512.clone(),
        extracted,
    };

    match fs::symlink_metadata(&dest) {
        Ok(meta) if !meta.is_dir() => bail!("{} exists and is not a directory", dest.display()),
        Ok(_) if ours_and_same && complete && !force => return Ok(prepared(None)),
        Ok(_) if is_empty_dir(&dest)? || force => {}
        Ok(_) if ours_and_same => {
            eprintln!("note: finishing an earlier, interrupted extraction into {}", dest.display())
        }
        Ok(_) => {
            let what = match &stamp {
                Some(stamp) => format!("already holds another rootfs, from {}", stamp.source),
                None => "is not empty, and `cargo xtask rootfs` did not make it".to_owned(),
            };
            bail!(
                "{} {what}\nhint: add --force to extract over it (its files are replaced), or remove it first, or choose another --dest",
                dest.display()
            );
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("cannot inspect {}", dest.display())),
    }

    let tarball = match source {
        Source::Alpine => download::alpine_tarball()?,
        Source::Tarball(tarball) => crate::from_workspace_root(tarball),
    };
    // The stamp says "unfinished" until the extraction is done: an interrupted
    // run is finished by the next one, without --force.
    let mut stamp = Stamp { source: description.clone(), sha512: sha512.clone(), complete: false };
    stamp.write(&stamp_path)?;
    let summary = extract::extract(&tarball, &dest)?;
    stamp.complete = true;
    stamp.write(&stamp_path)?;
    Ok(prepared(Some(summary)))
}

/// Whether `dest` holds a rootfs we can use as it is: something is there, and
/// it is not an unfinished extraction. (`cargo xtask run` only makes the
/// rootfs when this is false.)
pub fn is_ready(dest: &Path) -> bool {
    let unfinished =
        stamp_path(dest).ok().and_then(|p| Stamp::read(&p)).is_some_and(|s| !s.complete);
    dest.is_dir() && !is_empty_dir(dest).unwrap_or(true) && !unfinished
}

/// `dest` made absolute (relative to the workspace root) with symlinks
/// resolved, as `/proc/self/mountinfo` shows paths. Refuses `/`.
fn resolve(dest: &Path) -> Result<PathBuf> {
    let dest = crate::from_workspace_root(dest);
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Err(refusal(&dest)); // `/`, or a path ending in `..`
    };
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let parent =
        parent.canonicalize().with_context(|| format!("cannot resolve {}", parent.display()))?;
    let dest = parent.join(name);
    let dest = if dest.exists() { dest.canonicalize()? } else { dest };
    if is_precious(&dest) {
        return Err(refusal(&dest));
    }
    Ok(dest)
}

fn refusal(dest: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "refusing {}: extracting there would overwrite this machine's own files\n\
         hint: give the rootfs a directory of its own, such as ./rootfs",
        dest.display()
    )
}

/// Directories we never extract into, even with `--force`: `/`, the
/// top-level system directories, and anything holding the workspace or the
/// home directory (such as `..` or `~`).
fn is_precious(dest: &Path) -> bool {
    const SYSTEM: &[&str] = &[
        "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root",
        "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
    ];
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let holds = |inner: &Path| canonical(inner).starts_with(dest);
    dest == Path::new("/")
        || SYSTEM.iter().any(|dir| canonical(Path::new(dir)) == dest)
        || holds(crate::workspace_root())
        || std::env::var_os("HOME").is_some_and(|home| holds(Path::new(&home)))
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
    use std::os::unix::fs::MetadataExt;
    if let (Ok(meta), Some(parent)) = (fs::metadata(dest), dest.parent())
        && fs::metadata(parent).is_ok_and(|p| p.dev() != meta.dev())
    {
        bail!("refusing to extract into {}: it is a mount point", dest.display());
    }
    Ok(())
}

fn is_empty_dir(dir: &Path) -> Result<bool> {
    let mut entries =
        fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    Ok(entries.next().is_none())
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
}

impl Stamp {
    /// The stamp at `path`, if there is a readable one.
    fn read(path: &Path) -> Option<Stamp> {
        let text = fs::read_to_string(path).ok()?;
        let field = |key: &str| text.lines().find_map(|line| line.strip_prefix(key)).map(str::trim);
        Some(Stamp {
            source: field("source:")?.to_owned(),
            sha512: field("sha512:")?.to_owned(),
            complete: field("complete:")? == "yes",
        })
    }

    fn write(&self, path: &Path) -> Result<()> {
        let text = format!(
            "# Written by `cargo xtask rootfs` about the directory beside it. Delete both to start over.\n\
             source: {}\nsha512: {}\ncomplete: {}\n",
            self.source,
            self.sha512,
            if self.complete { "yes" } else { "no" }
        );
        fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny rootfs tarball: `./`, `bin/`, `bin/sh`.
    fn tarball(dir: &Path, marker: &[u8]) -> PathBuf {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in [("bin/sh", marker), ("etc/os-release", b"ID=test\n".as_slice())] {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o755);
            header.set_size(data.len() as u64);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            builder.append_data(&mut header, name, data).unwrap();
        }
        let path = dir.join(format!("rootfs-{}.tar", String::from_utf8_lossy(marker)));
        fs::write(&path, builder.into_inner().unwrap()).unwrap();
        path
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

    #[test]
    fn refuses_directories_it_did_not_make_unless_forced() {
        let scratch = tempfile::tempdir().unwrap();
        let tar = tarball(scratch.path(), b"one");
        let dest = scratch.path().join("mine");
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("notes.txt"), b"my notes").unwrap();
        let text =
            crate::report(&prepare(&dest, &Source::Tarball(tar.clone()), false).unwrap_err());
        assert!(text.contains("is not empty") && text.contains("hint: add --force"), "{text}");
        assert!(!dest.join("bin").exists());
        prepare(&dest, &Source::Tarball(tar), true).unwrap();
        assert_eq!(fs::read(dest.join("notes.txt")).unwrap(), b"my notes");

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

    #[test]
    fn refuses_the_root_directory_and_files() {
        for precious in ["/", "/usr", "/tmp", ".."] {
            let text =
                crate::report(&prepare(Path::new(precious), &Source::Alpine, true).unwrap_err());
            assert!(
                text.starts_with("xtask: refusing /") && text.contains("hint: give the rootfs"),
                "{text}"
            );
        }
        let text =
            crate::report(&prepare(crate::workspace_root(), &Source::Alpine, true).unwrap_err());
        assert!(text.contains("overwrite this machine's own files"), "{text}");
        let scratch = tempfile::tempdir().unwrap();
        let file = scratch.path().join("file");
        fs::write(&file, b"").unwrap();
        let text = crate::report(
            &prepare(&file, &Source::Tarball(tarball(scratch.path(), b"x")), true).unwrap_err(),
        );
        assert!(text.contains("is not a directory"), "{text}");
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
    }

    #[test]
    fn stamp_sits_beside_the_rootfs() {
        assert_eq!(
            stamp_path(Path::new("/w/rootfs")).unwrap(),
            Path::new("/w/.rootfs.xtask-stamp")
        );
    }
}

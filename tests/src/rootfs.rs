//! The Alpine root filesystem the tests run the steps in.
//!
//! It is made once per test run with the very code of `cargo xtask rootfs`
//! (which honours `ALPINE_MINIROOTFS`, then its download cache, then
//! downloads), in this user's scratch directory. Tests only read it; a test
//! that needs a changed rootfs takes a `RootfsCopy` of its own.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The shared, read-only Alpine 3.20.3 rootfs of this test run.
///
/// Each run (all test binaries of one `cargo test`, or one `cargo nextest
/// run`) extracts its own, so that two runs at once never pull the rootfs
/// from under each other. A run holds a shared lock on its rootfs while it
/// lives; the next run deletes the rootfs nobody holds any more.
pub fn alpine_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<(PathBuf, std::fs::File)> = OnceLock::new();
    &ROOTFS
        .get_or_init(|| {
            let dir = crate::scratch().join("rootfs");
            std::fs::create_dir_all(&dir).expect("create the rootfs directory");
            let dest = dir.join(crate::run_id());
            let in_use = lock_file(&dest.with_extension("lock"));
            in_use.lock_shared().expect("lock the test rootfs");
            let prepare = lock_file(&dir.join("prepare.lock"));
            prepare.lock().expect("lock the rootfs preparation");
            if !dest.with_extension("done").exists() {
                remove_unused(&dir);
                extract_alpine(&dest);
                std::fs::write(dest.with_extension("done"), "").expect("mark the rootfs done");
            }
            (dest, in_use)
        })
        .0
}

fn lock_file(path: &Path) -> std::fs::File {
    std::fs::File::create(path)
        .unwrap_or_else(|err| panic!("cannot create {}: {err}", path.display()))
}

/// Extracts the Alpine tarball to `dest` with `cargo xtask rootfs`'s code.
fn extract_alpine(dest: &Path) {
    let tarball = xtask::download::alpine_tarball().unwrap_or_else(|err| {
        panic!(
            "the tests need the Alpine 3.20.3 minirootfs: {}\nhint: set \
             ALPINE_MINIROOTFS=/path/to/alpine-minirootfs-3.20.3-<arch>.tar.gz, or let \
             `cargo xtask rootfs` download it once",
            xtask::report(&err)
        )
    });
    if dest.exists() {
        std::fs::remove_dir_all(dest).expect("remove a half-made rootfs");
    }
    xtask::extract::extract(&tarball, dest).unwrap_or_else(|err| {
        panic!("cannot extract {}: {}", tarball.display(), xtask::report(&err))
    });
}

/// Deletes the rootfs of earlier runs that no process holds any more.
fn remove_unused(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("list the rootfs directory").flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "lock") || path.ends_with("prepare.lock") {
            continue;
        }
        let lock = lock_file(&path);
        if lock.try_lock().is_ok() {
            let rootfs = path.with_extension("");
            let _ = std::fs::remove_file(rootfs.with_extension("done"));
            let _ = std::fs::remove_dir_all(&rootfs);
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Stands for the Alpine rootfs in argument lists written in `#[case]`s.
pub const ROOTFS: &str = "ROOTFS";

/// `args` with every [`ROOTFS`] in them replaced by the Alpine rootfs's path.
pub fn with_rootfs(args: &[&str]) -> Vec<String> {
    let rootfs = alpine_rootfs().display().to_string();
    args.iter().map(|arg| arg.replace(ROOTFS, &rootfs)).collect()
}

/// A private copy of the Alpine rootfs, for a test that changes it. It is
/// removed when the test is done with it.
pub struct RootfsCopy {
    path: PathBuf,
}

impl RootfsCopy {
    /// Copies the rootfs to a directory named after the test.
    pub fn new(test: &str) -> RootfsCopy {
        let path = crate::scratch().join(format!("copy-{test}-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).expect("remove a stale copy");
        }
        copy_tree(alpine_rootfs(), &path)
            .unwrap_or_else(|err| panic!("cannot copy the rootfs to {}: {err}", path.display()));
        RootfsCopy { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives every file of the copy to `uid` and `gid`, as if that user had
    /// unpacked it: for a rootless run by that user, whose root is them.
    pub fn give_to(&self, uid: u32, gid: u32) {
        fn walk(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
            if std::fs::symlink_metadata(path)?.is_dir() {
                for entry in std::fs::read_dir(path)? {
                    walk(&entry?.path(), uid, gid)?;
                }
            }
            Ok(())
        }
        walk(&self.path, uid, gid)
            .unwrap_or_else(|err| panic!("cannot chown {}: {err}", self.path.display()));
    }
}

/// What a directory tree holds, one line per file, directory and symlink,
/// sorted by path: its type and mode, owner, modification time, and the
/// SHA-256 of its content (or the target of the link). Two trees with the
/// same manifest hold the same files, byte for byte.
pub fn manifest(root: &Path) -> Vec<String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    fn walk(root: &Path, path: &Path, lines: &mut Vec<String>) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(path)?;
        let content = if meta.file_type().is_symlink() {
            format!("-> {}", std::fs::read_link(path)?.display())
        } else if meta.is_file() {
            let digest = Sha256::digest(std::fs::read(path)?);
            digest.iter().map(|b| format!("{b:02x}")).collect()
        } else {
            String::new()
        };
        let relative = path.strip_prefix(root).unwrap_or(path);
        lines.push(format!(
            "/{} {:o} {}:{} {} {content}",
            relative.display(),
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.mtime()
        ));
        if meta.is_dir() {
            for entry in std::fs::read_dir(path)? {
                walk(root, &entry?.path(), lines)?;
            }
        }
        Ok(())
    }
    let mut lines = Vec::new();
    walk(root, root, &mut lines)
        .unwrap_or_else(|err| panic!("cannot read the tree {}: {err}", root.display()));
    lines.sort();
    lines
}

/// The lines of two manifests that differ, for a failure message: what is
/// only in `before` (`-`) and only in `after` (`+`), at most `limit` of each.
pub fn manifest_changes(before: &[String], after: &[String], limit: usize) -> String {
    let gone = before.iter().filter(|line| !after.contains(line));
    let new = after.iter().filter(|line| !before.contains(line));
    let mut text: Vec<String> = gone.take(limit).map(|line| format!("- {line}")).collect();
    text.extend(new.take(limit).map(|line| format!("+ {line}")));
    text.join("\n")
}

impl Drop for RootfsCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Copies a directory tree: directories, files and symlinks (as links), with their modes.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
    } else if meta.is_dir() {
        std::fs::create_dir(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        std::fs::set_permissions(to, meta.permissions())
    } else {
        std::fs::copy(from, to).map(drop)
    }
}

//! What is mounted where, read from `/proc/self/mountinfo`.
//!
//! Each line of that file describes one mount (see proc_pid_mountinfo(5)):
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2) (3)   (4)   (5)      (6)      (7)   (8) (9)    (10)         (11)
//! ```
//!
//! Field 5 is the mount point, with spaces and other awkward bytes written as
//! octal escapes (`\040` is a space). Field 7 lists optional tags such as
//! `shared:1` (this mount shares mount events with others), up to the `-`
//! separator; field 9 is the filesystem type.
//!
//! The parsing is plain string work and works anywhere; only [`current`],
//! which reads the file, is Linux-only.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`, the parts we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted (field 5, escapes decoded).
    pub mount_point: PathBuf,
    /// The filesystem type, such as `proc` or `ext4` (field 9).
    pub fs_type: String,
    /// Whether the mount propagates mount events to its peers (`shared:N` tag).
    pub shared: bool,
}

/// Parses the text of `/proc/self/mountinfo`. Lines that do not look right are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let fields: Vec<&str> = line.split(' ').collect();
    let mount_point = unescape(fields.get(4)?);
    // Optional fields run from the 7th field up to a lone "-".
    let separator = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    let shared = fields[6..separator].iter().any(|f| f.starts_with("shared:"));
    let fs_type = fields.get(separator + 1)?.to_string();
    Some(Mount { mount_point, fs_type, shared })
}

/// Decodes the octal escapes the kernel uses in mountinfo: `\040` (space),
/// `\011` (tab), `\012` (newline), `\134` (backslash).
pub fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(digits)) => {
                let value = digits.iter().fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(value as u8); // at most \377 = 255
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// The mounts whose mount point is `dir` itself or somewhere below it,
/// deepest first (the order to unmount them in). `dir` must be canonical
/// (absolute, no symlinks), as mountinfo's paths are.
pub fn mounted_at_or_under<'a>(mounts: &'a [Mount], dir: &Path) -> Vec<&'a Mount> {
    let mut found: Vec<&Mount> = mounts.iter().filter(|m| m.mount_point.starts_with(dir)).collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.mount_point.components().count()));
    found.dedup_by(|a, b| a.mount_point == b.mount_point);
    found
}

/// Whether `/` is a shared mount (systemd makes it so at boot). The last
/// mount on `/` is the one that counts: it hides those under it.
pub fn root_is_shared(mounts: &[Mount]) -> Option<bool> {
    mounts.iter().rfind(|m| m.mount_point == Path::new("/")).map(|m| m.shared)
}

/// The `umount` command lines that undo `mounts` (use [`mounted_at_or_under`]'s
/// order), with `sudo` in front unless we are root.
pub fn umount_commands(mounts: &[&Mount]) -> Vec<String> {
    let points: Vec<&Path> = mounts.iter().map(|m| m.mount_point.as_path()).collect();
    umount_commands_for(&points, crate::is_root())
}

/// `umount` command lines for `points`, with `sudo` in front unless `as_root`.
pub fn umount_commands_for(points: &[&Path], as_root: bool) -> Vec<String> {
    let sudo = if as_root { "" } else { "sudo " };
    points
        .iter()
        .map(|point| format!("{sudo}umount {}", crate::shell_quote(&point.to_string_lossy())))
        .collect()
}

/// The mounts of this process, from `/proc/self/mountinfo`.
#[cfg(target_os = "linux")]
pub fn current() -> anyhow::Result<Vec<Mount>> {
    use anyhow::Context;
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo")?;
    Ok(parse_mountinfo(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
22 27 0:21 / /proc rw,relatime shared:12 - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
90 27 0:50 / /home/me/my\\040workshop/rootfs/proc rw,relatime - proc proc rw
91 90 0:51 / /home/me/my\\040workshop/rootfs/proc/sys/fs/binfmt_misc rw master:3 - binfmt_misc binfmt_misc rw
92 27 0:52 / /home/me/my\\040workshop/rootfs2 rw - tmpfs tmpfs rw
garbage line
";

    #[test]
    fn parses_mount_points_types_and_tags() {
        let mounts = parse_mountinfo(SAMPLE);
        assert_eq!(mounts.len(), 7);
        assert_eq!(
            mounts[0],
            Mount { mount_point: "/".into(), fs_type: "ext4".into(), shared: true }
        );
        assert_eq!(mounts[2].fs_type, "tmpfs");
        assert!(!mounts[2].shared);
        assert_eq!(mounts[5].fs_type, "binfmt_misc");
        assert!(!mounts[5].shared, "master:3 is not shared:N");
    }

    #[test]
    fn decodes_octal_escapes() {
        assert_eq!(unescape(r"/my\040dir"), Path::new("/my dir"));
        assert_eq!(unescape(r"/a\011b\012c\134d"), Path::new("/a\tb\nc\\d"));
        assert_eq!(unescape(r"/not\09escape\"), Path::new(r"/not\09escape\"));
    }

    #[test]
    fn finds_mounts_under_a_directory_deepest_first() {
        let mounts = parse_mountinfo(SAMPLE);
        let rootfs = Path::new("/home/me/my workshop/rootfs");
        let under: Vec<_> =
            mounted_at_or_under(&mounts, rootfs).iter().map(|m| m.mount_point.clone()).collect();
        assert_eq!(
            under,
            [
                PathBuf::from("/home/me/my workshop/rootfs/proc/sys/fs/binfmt_misc"),
                PathBuf::from("/home/me/my workshop/rootfs/proc"),
            ],
            "rootfs2 is a sibling, not under rootfs"
        );
        assert!(mounted_at_or_under(&mounts, Path::new("/home/me/other")).is_empty());
    }

    #[test]
    fn root_shared_flag() {
        assert_eq!(root_is_shared(&parse_mountinfo(SAMPLE)), Some(true));
        let private = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n";
        assert_eq!(root_is_shared(&parse_mountinfo(private)), Some(false));
        assert_eq!(root_is_shared(&[]), None);
    }
}

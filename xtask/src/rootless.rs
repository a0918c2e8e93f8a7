//! Being "root" without being root: user namespaces.
//!
//! In a new user namespace, a process can be uid 0 while staying an ordinary
//! user for the rest of the machine. Root there may do root's things to what
//! the namespace owns: create other namespaces, `chroot`, mount `proc` in its
//! own mount namespace. That is all the steps need, so they can run without
//! `sudo`, exactly like:
//!
//! ```text
//! unshare --user --map-root-user --mount COMMAND
//! ```
//!
//! The recipe (user_namespaces(7)), done in the child between fork and exec:
//! 1. `unshare(CLONE_NEWUSER | CLONE_NEWNS)`: a new user namespace, and a mount
//!    namespace that belongs to it (so mounts are allowed there);
//! 2. write `deny` to `/proc/self/setgroups` (required before writing gid_map
//!    without privileges: otherwise we could drop a group and gain access);
//! 3. write `0 <uid> 1` to `/proc/self/uid_map`: uid 0 inside is our uid outside;
//! 4. write `0 <gid> 1` to `/proc/self/gid_map`, the same for our group.
//!
//! Some distributions switch this off for ordinary users; `cargo xtask doctor` tells.

#[cfg(target_os = "linux")]
pub use linux::*;

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::{CStr, CString};
    use std::io;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    use nix::sched::{CloneFlags, unshare};

    /// Makes `cmd` start in a new user namespace where our uid and gid are
    /// root, and a new mount namespace, like `unshare --user --map-root-user
    /// --mount`. If that is not allowed, `spawn` fails: see [`explain`].
    pub fn rootless(cmd: &mut Command) -> &mut Command {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        map_root_to(cmd, uid, gid)
    }

    /// Like [`rootless`], mapping root inside to `uid` and `gid` outside: for a
    /// command that switches to them first (`Command::uid` and `gid` are applied
    /// before this hook runs).
    pub fn map_root_to(cmd: &mut Command, uid: u32, gid: u32) -> &mut Command {
        // Between fork and exec the child may only make async-signal-safe
        // calls (signal-safety(7)): no allocation. So the text is made now.
        let uid_map = CString::new(format!("0 {uid} 1\n")).expect("no NUL in a number");
        let gid_map = CString::new(format!("0 {gid} 1\n")).expect("no NUL in a number");
        let hook = move || {
            unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
                .map_err(io::Error::from)?;
            match write_file(c"/proc/self/setgroups", b"deny") {
                // Kernels before 3.19 have no setgroups file, and need none.
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
                other => other?,
            }
            write_file(c"/proc/self/uid_map", uid_map.as_bytes())?;
            write_file(c"/proc/self/gid_map", gid_map.as_bytes())
        };
        // SAFETY: the hook makes only async-signal-safe system calls
        // (unshare, open, write, close) and does not allocate.
        unsafe { cmd.pre_exec(hook) }
    }

    /// `open`, `write`, `close`: as plain as it gets, and allocation-free.
    fn write_file(path: &CStr, data: &[u8]) -> io::Result<()> {
        // SAFETY: `path` is NUL-terminated; the returned descriptor is closed below.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `data` is valid for `data.len()` bytes.
        let written = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        let error = io::Error::last_os_error();
        // SAFETY: `fd` is ours and still open.
        unsafe { libc::close(fd) };
        match written {
            n if n == data.len() as isize => Ok(()),
            n if n < 0 => Err(error),
            _ => Err(io::Error::from_raw_os_error(libc::EIO)),
        }
    }

    /// Turns the error of spawning a [`rootless`] command into one that says
    /// why it failed and what to do about it.
    pub fn explain(err: io::Error, program: &str) -> anyhow::Error {
        match err.raw_os_error() {
            Some(libc::EPERM | libc::EACCES | libc::ENOSPC | libc::EINVAL | libc::EUSERS) => {
                anyhow::anyhow!(
                    "cannot run {program} in a new user namespace: {err}\n\
                 this system does not let ordinary users create user namespaces (they are disabled or restricted)\n\
                 hint: `cargo xtask doctor` says why and how to allow them\n\
                 hint: or run without --rootless, as root (through sudo)"
                )
            }
            _ => anyhow::Error::new(err).context(format!("cannot run {program}")),
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::process::Command;

    /// Needs unprivileged user namespaces; fails, saying how to allow them, where they are off.
    #[test]
    fn the_child_is_root_in_its_own_namespaces() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args([
            "-c",
            "id -u; id -g; cat /proc/self/uid_map; readlink /proc/self/ns/user /proc/self/ns/mnt",
        ]);
        let output = match rootless(&mut cmd).output() {
            Ok(output) => output,
            // Never a silent pass: say what is missing and how to get it.
            Err(err) => panic!(
                "this test needs unprivileged user namespaces, which this machine refuses \
                 (on Ubuntu 24.04: `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`; \
                 `cargo xtask doctor` says more): {}",
                crate::report(&explain(err, "sh"))
            ),
        };
        assert!(output.status.success(), "{output:?}");
        let text = String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(&lines[..2], ["0", "0"]);
        let uid = nix::unistd::getuid().as_raw();
        let map: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(map, ["0", &uid.to_string(), "1"]);
        let ours = |ns: &str| std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(lines[3], ours("user").to_string_lossy());
        assert_ne!(lines[4], ours("mnt").to_string_lossy());
    }

    #[test]
    fn explain_points_to_doctor() {
        let text = crate::report(&explain(
            std::io::Error::from_raw_os_error(libc::EPERM),
            "step04-full-demo",
        ));
        assert!(text.contains("hint: `cargo xtask doctor`"), "{text}");
        let other =
            crate::report(&explain(std::io::Error::from_raw_os_error(libc::ENOENT), "nope"));
        assert!(other.starts_with("xtask: cannot run nope: "), "{other}");
    }
}

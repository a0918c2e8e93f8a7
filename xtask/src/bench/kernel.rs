//! What single kernel operations cost: unshare(2) of each namespace kind alone,
//! a cgroup made and removed, an overlay mount, a veth pair.
//!
//! Each namespace and mount operation runs in a child process of its own, so
//! the bench itself stays in the host's namespaces, and whatever the child
//! made dies with it. The child times only the operation (not the fork, not
//! the preparation), and sends the time back through a pipe. Mounts are made
//! only in a mount namespace the child made private first, and the veth pair
//! only in a network namespace the child made first: never in the host's.
//!
//! After fork(2) the child only makes async-signal-safe calls: everything it
//! needs (paths, the netlink message) is made before. (xtask has one thread.)

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

/// One operation to time, with what the tables say about it.
pub struct Operation {
    /// `unshare(CLONE_NEWNS)`, `overlay mount`, ...
    pub name: String,
    /// What it makes, and which steps use it.
    pub about: String,
    work: Work,
}

enum Work {
    Unshare(CloneFlags),
    /// mkdir + rmdir of this directory.
    Cgroup(PathBuf),
    Overlay(OverlayPaths),
    /// The RTM_NEWLINK request, ready to send.
    Veth(Vec<u8>),
}

struct OverlayPaths {
    scratch: CString,
    upper: CString,
    work: CString,
    merged: CString,
    options: CString,
}

/// What a child reports: the time, or which of its calls failed and how.
#[derive(Clone, Copy)]
struct Report {
    nanos: u64,
    failed_call: u32,
    errno: i32,
    reply: [u8; 128],
}

impl Report {
    const LEN: usize = 8 + 4 + 4 + 128;

    fn failed(call: u32, errno: Errno) -> Report {
        Report { nanos: 0, failed_call: call, errno: errno as i32, reply: [0; 128] }
    }

    fn to_bytes(self) -> [u8; Report::LEN] {
        let mut bytes = [0; Report::LEN];
        bytes[..8].copy_from_slice(&self.nanos.to_ne_bytes());
        bytes[8..12].copy_from_slice(&self.failed_call.to_ne_bytes());
        bytes[12..16].copy_from_slice(&self.errno.to_ne_bytes());
        bytes[16..].copy_from_slice(&self.reply);
        bytes
    }

    fn from_bytes(bytes: &[u8; Report::LEN]) -> Report {
        let word = |range: std::ops::Range<usize>| bytes[range].try_into().unwrap_or([0; 4]);
        Report {
            nanos: u64::from_ne_bytes(bytes[..8].try_into().unwrap_or([0; 8])),
            failed_call: u32::from_ne_bytes(word(8..12)),
            errno: i32::from_ne_bytes(word(12..16)),
            reply: bytes[16..].try_into().unwrap_or([0; 128]),
        }
    }
}

/// The operations to time on this machine: every namespace kind; a cgroup in
/// each hierarchy that exists (`cgroups` lists them, from [`cgroup_hierarchies`]);
/// an overlay of `rootfs` mounted in `scratch` (an empty directory that only
/// the children mount over); a veth pair.
pub fn operations(
    rootfs: &Path,
    scratch: &Path,
    cgroups: &[(String, PathBuf)],
) -> Result<Vec<Operation>> {
    let mounts =
        std::fs::read_to_string("/proc/self/mountinfo").map(|t| t.lines().count()).unwrap_or(0);
    let mut ops = Vec::new();
    for (flag, name, about) in [
        (
            CloneFlags::CLONE_NEWNS,
            "NEWNS",
            format!(
                "a mount namespace: a copy of the host's {mounts} mounts (every step from step02 on)"
            ),
        ),
        (
            CloneFlags::CLONE_NEWPID,
            "NEWPID",
            "a PID namespace, for the children made after it (every step from step02 on)".into(),
        ),
        (CloneFlags::CLONE_NEWUTS, "NEWUTS", "a hostname of its own".into()),
        (
            CloneFlags::CLONE_NEWIPC,
            "NEWIPC",
            "System V IPC and POSIX message queues of its own".into(),
        ),
        (
            CloneFlags::CLONE_NEWNET,
            "NEWNET",
            "a network stack with only a loopback device (its teardown, later, not counted)".into(),
        ),
        (
            CloneFlags::CLONE_NEWUSER,
            "NEWUSER",
            "user and group IDs of its own (rootless containers)".into(),
        ),
        (CloneFlags::CLONE_NEWCGROUP, "NEWCGROUP", "its own view of the cgroup tree".into()),
    ] {
        ops.push(Operation {
            name: format!("unshare(CLONE_{name})"),
            about,
            work: Work::Unshare(flag),
        });
    }
    let unique = format!("xtask-bench-{}", std::process::id());
    for (label, hierarchy) in cgroups {
        ops.push(Operation {
            name: format!("cgroup {label}: mkdir + rmdir"),
            about: format!("a cgroup made and removed in {}", hierarchy.display()),
            work: Work::Cgroup(hierarchy.join(&unique)),
        });
    }
    let lower = rootfs.to_string_lossy();
    let (upper, work) = (scratch.join("upper"), scratch.join("work"));
    if [&*lower, &*upper.to_string_lossy(), &*work.to_string_lossy()]
        .iter()
        .any(|p| p.contains([',', ':']))
    {
        bail!("the overlay's paths may not hold ',' or ':': {}", scratch.display());
    }
    let options =
        format!("lowerdir={lower},upperdir={},workdir={}", upper.display(), work.display());
    ops.push(Operation {
        name: "overlay mount".into(),
        about: "the rootfs under an empty upper layer on tmpfs, as image layers are stacked".into(),
        work: Work::Overlay(OverlayPaths {
            scratch: c_path(scratch)?,
            upper: c_path(&upper)?,
            work: c_path(&work)?,
            merged: c_path(&scratch.join("merged"))?,
            options: CString::new(options)?,
        }),
    });
    ops.push(Operation {
        name: "veth pair".into(),
        about: "two linked virtual Ethernet devices, in a new network namespace".into(),
        work: Work::Veth(veth_request()),
    });
    Ok(ops)
}

/// The cgroup hierarchies to time mkdir + rmdir in: the v2 tree if there is
/// one, and the v1 `memory`, `pids` and `cpu` hierarchies that exist. Also a
/// sentence saying which layout this is.
pub fn cgroup_hierarchies() -> (Vec<(String, PathBuf)>, String) {
    let mounts = crate::mounts::current().unwrap_or_default();
    let mut found = Vec::new();
    let v2: Vec<_> = mounts.iter().filter(|m| m.fs_type == "cgroup2").collect();
    let v1: Vec<_> = mounts.iter().filter(|m| m.fs_type == "cgroup").collect();
    if let Some(tree) = v2.first() {
        found.push(("v2".to_owned(), tree.mount_point.clone()));
    }
    for controller in ["memory", "pids", "cpu"] {
        let hierarchy = v1.iter().find(|m| {
            m.mount_point
                .file_name()
                .is_some_and(|n| n.to_string_lossy().split(',').any(|c| c == controller))
        });
        if let Some(hierarchy) = hierarchy {
            found.push((format!("v1 {controller}"), hierarchy.mount_point.clone()));
        }
    }
    let layout = match (v1.is_empty(), v2.first()) {
        (true, Some(tree)) => format!("cgroup v2 only, at {}", tree.mount_point.display()),
        (false, Some(tree)) => format!(
            "hybrid: {} cgroup v1 hierarchies under /sys/fs/cgroup, and a cgroup v2 tree at {}",
            v1.len(),
            tree.mount_point.display()
        ),
        (false, None) => format!("cgroup v1 only: {} hierarchies", v1.len()),
        (true, None) => "no cgroup filesystem mounted".to_owned(),
    };
    (found, layout)
}

/// The cgroup v2 tree, when this machine also has cgroup v1 hierarchies (a
/// hybrid layout, which crun refuses).
pub fn hybrid_v2_tree() -> Option<PathBuf> {
    let mounts = crate::mounts::current().ok()?;
    let v2 = mounts.iter().find(|m| m.fs_type == "cgroup2")?;
    mounts.iter().any(|m| m.fs_type == "cgroup").then(|| v2.mount_point.clone())
}

impl Operation {
    /// Does the operation once; returns how long it took.
    pub fn time(&self) -> Result<Duration> {
        match &self.work {
            Work::Cgroup(dir) => time_cgroup(dir),
            Work::Unshare(flag) => in_child(|| child_unshare(*flag), &["unshare"]),
            Work::Overlay(paths) => in_child(
                || child_overlay(paths),
                &[
                    "unshare(CLONE_NEWNS)",
                    "making / private",
                    "mounting tmpfs",
                    "mkdir",
                    "mounting the overlay",
                ],
            ),
            Work::Veth(request) => {
                let report = in_child_report(
                    || child_veth(request),
                    &["unshare(CLONE_NEWNET)", "opening a netlink socket", "sending", "receiving"],
                )?;
                check_ack(&report.reply)?;
                Ok(Duration::from_nanos(report.nanos))
            }
        }
    }

    /// Removes what an interrupted [`Operation::time`] may have left on the host (a cgroup).
    pub fn clean_up(&self) {
        if let Work::Cgroup(dir) = &self.work {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("{} holds a NUL byte", path.display()))
}

fn time_cgroup(dir: &Path) -> Result<Duration> {
    let start = Instant::now();
    std::fs::create_dir(dir)
        .with_context(|| format!("cannot create the cgroup {}", dir.display()))?;
    let removed = std::fs::remove_dir(dir);
    let elapsed = start.elapsed();
    removed.with_context(|| format!("cannot remove the cgroup {}", dir.display()))?;
    Ok(elapsed)
}

fn in_child(child: impl FnOnce() -> Report, calls: &[&str]) -> Result<Duration> {
    in_child_report(child, calls).map(|report| Duration::from_nanos(report.nanos))
}

/// Forks; the child runs `child` and sends its report back. `calls` name the
/// child's calls, for the message when one fails.
fn in_child_report(child: impl FnOnce() -> Report, calls: &[&str]) -> Result<Report> {
    let (reader, writer) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot make a pipe")?;
    // SAFETY: xtask has one thread, and the child makes only async-signal-safe
    // calls (no allocation) before _exit.
    match unsafe { fork() }.context("cannot fork")? {
        ForkResult::Child => {
            let bytes = child().to_bytes();
            let _ = nix::unistd::write(writer.as_fd(), &bytes);
            // SAFETY: ends the child without running the parent's exit work.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(writer);
            let mut bytes = [0u8; Report::LEN];
            let mut got = 0;
            while got < bytes.len() {
                match nix::unistd::read(reader.as_fd(), &mut bytes[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(Errno::EINTR) => {}
                    Err(err) => return Err(err).context("cannot read the child's report"),
                }
            }
            let status = waitpid(child, None).context("cannot wait for the child")?;
            if got != bytes.len() || status != WaitStatus::Exited(child, 0) {
                bail!("the measuring child ended early ({status:?})");
            }
            let report = Report::from_bytes(&bytes);
            if report.errno != 0 {
                let call = calls.get(report.failed_call as usize).copied().unwrap_or("a call");
                bail!("{call} failed: {}", Errno::from_raw(report.errno).desc());
            }
            Ok(report)
        }
    }
}

fn nanos_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

// The children. Each returns a report; only async-signal-safe calls.

fn child_unshare(flag: CloneFlags) -> Report {
    let start = Instant::now();
    let result = unshare(flag);
    let nanos = nanos_since(start);
    match result {
        Ok(()) => Report { nanos, failed_call: 0, errno: 0, reply: [0; 128] },
        Err(errno) => Report::failed(0, errno),
    }
}

fn child_overlay(paths: &OverlayPaths) -> Report {
    if let Err(errno) = unshare(CloneFlags::CLONE_NEWNS) {
        return Report::failed(0, errno);
    }
    // Private first, or the mounts below could propagate to the host.
    let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    if let Err(errno) = mount(None::<&str>, "/", None::<&str>, private, None::<&str>) {
        return Report::failed(1, errno);
    }
    let tmpfs = Some(c"tmpfs");
    if let Err(errno) =
        mount(tmpfs, paths.scratch.as_c_str(), tmpfs, MsFlags::empty(), None::<&str>)
    {
        return Report::failed(2, errno);
    }
    for dir in [&paths.upper, &paths.work, &paths.merged] {
        if let Err(errno) = nix::unistd::mkdir(dir.as_c_str(), Mode::from_bits_truncate(0o755)) {
            return Report::failed(3, errno);
        }
    }
    let start = Instant::now();
    let overlay = Some(c"overlay");
    let result = mount(
        overlay,
        paths.merged.as_c_str(),
        overlay,
        MsFlags::empty(),
        Some(paths.options.as_c_str()),
    );
    let nanos = nanos_since(start);
    match result {
        Ok(()) => Report { nanos, failed_call: 0, errno: 0, reply: [0; 128] },
        Err(errno) => Report::failed(4, errno),
    }
}

fn child_veth(request: &[u8]) -> Report {
    if let Err(errno) = unshare(CloneFlags::CLONE_NEWNET) {
        return Report::failed(0, errno);
    }
    let socket = match nix::sys::socket::socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    ) {
        Ok(socket) => socket,
        Err(errno) => return Report::failed(1, errno),
    };
    let mut reply = [0u8; 128];
    let start = Instant::now();
    if let Err(errno) = nix::sys::socket::send(socket.as_raw_fd(), request, MsgFlags::empty()) {
        return Report::failed(2, errno);
    }
    if let Err(errno) = nix::sys::socket::recv(socket.as_raw_fd(), &mut reply, MsgFlags::empty()) {
        return Report::failed(3, errno);
    }
    Report { nanos: nanos_since(start), failed_call: 0, errno: 0, reply }
}

/// `ip link add xb0 type veth peer name xb1`, as a netlink message: RTM_NEWLINK
/// asking for an acknowledgement. <https://man7.org/linux/man-pages/man7/rtnetlink.7.html>
fn veth_request() -> Vec<u8> {
    use netlink_packet_core::{
        NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    };
    use netlink_packet_route::RouteNetlinkMessage;
    use netlink_packet_route::link::{
        InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
    };

    let mut peer = LinkMessage::default();
    peer.attributes.push(LinkAttribute::IfName("xb1".into()));
    let mut link = LinkMessage::default();
    link.attributes.push(LinkAttribute::IfName("xb0".into()));
    link.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
    let mut message = NetlinkMessage::new(header, RouteNetlinkMessage::NewLink(link).into());
    message.finalize();
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);
    bytes
}

/// Whether the kernel's reply to [`veth_request`] says it was done.
fn check_ack(reply: &[u8]) -> Result<()> {
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::RouteNetlinkMessage;

    let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(reply)
        .map_err(|err| anyhow!("cannot read the kernel's reply: {err}"))?;
    match message.payload {
        NetlinkPayload::Error(error) => match error.code {
            None => Ok(()),
            Some(code) => {
                bail!("creating the veth pair failed: {}", Errno::from_raw(-code.get()).desc())
            }
        },
        other => bail!("unexpected reply to RTM_NEWLINK: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_survives_the_pipe() {
        let mut reply = [0; 128];
        reply[0] = 7;
        let report = Report { nanos: 123_456, failed_call: 2, errno: 13, reply };
        let back = Report::from_bytes(&report.to_bytes());
        assert_eq!((back.nanos, back.failed_call, back.errno, back.reply[0]), (123_456, 2, 13, 7));
    }

    #[test]
    fn the_veth_request_is_a_netlink_message() {
        let bytes = veth_request();
        let length = u32::from_ne_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(length, bytes.len(), "nlmsg_len is the whole message");
        assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), libc::RTM_NEWLINK);
        assert!(bytes.windows(4).any(|w| w == b"veth"));
        assert!(bytes.windows(3).any(|w| w == b"xb1"));
    }

    #[test]
    fn an_ack_is_success_and_an_error_says_why() {
        // nlmsghdr (16 bytes) + nlmsgerr: error code, then the request's header.
        let reply = |code: i32| {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&36u32.to_ne_bytes());
            bytes.extend_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
            bytes.extend_from_slice(&[0; 10]);
            bytes.extend_from_slice(&code.to_ne_bytes());
            bytes.extend_from_slice(&16u32.to_ne_bytes());
            bytes.extend_from_slice(&[0; 12]);
            bytes
        };
        check_ack(&reply(0)).unwrap();
        let err = check_ack(&reply(-libc::EEXIST)).unwrap_err().to_string();
        assert!(err.contains("File exists"), "{err}");
    }

    #[test]
    fn cgroup_layout_is_described() {
        let (_, layout) = cgroup_hierarchies();
        assert!(layout.contains("cgroup"), "{layout}");
    }
}

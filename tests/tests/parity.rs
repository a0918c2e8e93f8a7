//! Step02 rebuilds util-linux's unshare(1) for the article's flags. Each case
//! runs util-linux's `unshare` and step02 with the same arguments, the same
//! environment and the same probe (a shell script on stdin), and compares
//! what can be observed: what the probe prints, and how the program ended.
//!
//! Probes print facts ("pid1: yes", "uts: new"), never host PIDs or namespace
//! inode numbers, which differ legitimately from one run to the next. They are
//! fed on stdin rather than with `sh -c`, because busybox and dash exec the
//! last command of `sh -c` directly, which would change which process is PID 1.
//!
//! When the tests run without root, the harness runs both programs as root in
//! a user namespace of their own: the same wrapper for both, so parity holds.
//!
//! `cargo test step02` runs them all.

use std::os::unix::process::ExitStatusExt;

use rstest::rstest;
use workshop_tests::{Output, ROOTFS, Runner, Step, host, scratch, with_rootfs};

/// Stands for a directory of the tests' scratch space (on the host's tree).
const SCRATCH: &str = "SCRATCH";

/// The namespaces the probes compare with the tests' own. The harness's
/// rootless wrapper makes new user and mount namespaces for both programs, so
/// those two would read "new" either way: they are left out.
const NAMESPACES: [&str; 5] = ["cgroup", "ipc", "net", "pid", "uts"];

/// Says, for each of NAMESPACES, whether the shell is in the tests' own
/// (`host's`) or a new one. `HOST_NS_<name>` holds the tests' namespace.
macro_rules! ns_table {
    () => {
        r#"for ns in cgroup ipc net pid uts; do
  eval "host=\$HOST_NS_$ns"
  if [ "$(readlink /proc/self/ns/$ns)" = "$host" ]; then echo "$ns: host's"; else echo "$ns: new"; fi
done
"#
    };
}

/// Whether the shell is PID 1 of its namespace (a builtin test: no fork).
macro_rules! pid1 {
    () => {
        "if [ $$ -eq 1 ]; then echo \"pid1: yes\"; else echo \"pid1: no\"; fi\n"
    };
}

/// The article's container: Alpine as `/`, the shell as PID 1, a proc of its own.
const ARTICLE_PROBE: &str = concat!(
    ns_table!(),
    pid1!(),
    ". /etc/os-release; echo \"os: $ID\"\n",
    "read -r comm < /proc/1/comm; echo \"/proc/1: $comm\"\n",
    "ps -o comm\n",
);
const ARTICLE_FACTS: &[&str] = &[
    "cgroup: host's",
    "ipc: host's",
    "net: host's",
    "pid: new",
    "uts: host's",
    "pid1: yes",
    "os: alpine",
    "/proc/1: sh",
    "COMMAND",
    "sh",
    "ps",
];

/// The same on the host's own files (the host's sh and procps ps).
const HOST_PID_PROBE: &str = concat!(
    ns_table!(),
    pid1!(),
    "read -r comm < /proc/1/comm; echo \"/proc/1: $comm\"\n",
    "ps -e -o comm\n",
);
const HOST_PID_FACTS: &[&str] = &[
    "cgroup: host's",
    "ipc: host's",
    "net: host's",
    "pid: new",
    "uts: host's",
    "pid1: yes",
    "/proc/1: sh",
    "COMMAND",
    "sh",
    "ps",
];

/// A hostname set inside stays inside. The probe sets it only in a new UTS
/// namespace: a step02 that forgot --uts must fail this test, not rename the host.
const UTS_PROBE: &str = concat!(
    ns_table!(),
    "if [ \"$(readlink /proc/self/ns/uts)\" = \"$HOST_NS_uts\" ]; then\n",
    "  echo \"hostname: not set, this is the host's UTS namespace\"\n",
    "else hostname parity-probe; echo \"hostname: $(hostname)\"; fi\n",
);
const UTS_FACTS: &[&str] = &[
    "cgroup: host's",
    "ipc: host's",
    "net: host's",
    "pid: host's",
    "uts: new",
    "hostname: parity-probe",
];

/// The network interfaces, from /proc/net/dev (its first two lines are headers).
const NET_PROBE: &str = concat!(
    ns_table!(),
    "{ read -r _; read -r _; while read -r line; do echo \"interface: ${line%%:*}\"; done; } \
     < /proc/net/dev\n",
);
const NET_FACTS: &[&str] =
    &["cgroup: host's", "ipc: host's", "net: new", "pid: host's", "uts: host's", "interface: lo"];

const IPC_PROBE: &str = ns_table!();
const IPC_FACTS: &[&str] =
    &["cgroup: host's", "ipc: new", "net: host's", "pid: host's", "uts: host's"];

/// `-u -i -n` together: three new namespaces, and only lo.
const UTS_IPC_NET_PROBE: &str = NET_PROBE;
const UTS_IPC_NET_FACTS: &[&str] =
    &["cgroup: host's", "ipc: new", "net: new", "pid: host's", "uts: new", "interface: lo"];

/// Who the shell is in its user namespace, and how that maps to the outside.
const USER_PROBE: &str = concat!(
    "echo \"uid: $(id -u) gid: $(id -g)\"\n",
    "if read -r inside outside count < /proc/self/uid_map; then\n",
    "  echo \"uid_map: $inside $outside $count\"\n",
    "else echo \"uid_map: empty\"; fi\n",
);
/// Nobody is mapped yet: the kernel shows the overflow uid and gid, 65534.
const USER_FACTS: &[&str] = &["uid: 65534 gid: 65534", "uid_map: empty"];
/// Our uid (0, as root or as root of the harness's user namespace) is root inside.
const MAP_ROOT_FACTS: &[&str] = &["uid: 0 gid: 0", "uid_map: 0 0 1"];

/// `--pid` without `--fork`: the shell stays in our PID namespace; only its
/// children enter the new one. Builtins only (no fork) until the last line:
/// the first child becomes PID 1 of the new namespace, and once it has exited
/// the namespace is dead and every later fork fails, so there is exactly one.
/// `HOST_PID_DEPTH` is how many PID namespaces deep the tests run.
const PID_NO_FORK_PROBE: &str = concat!(
    pid1!(),
    "while read -r key value; do if [ \"$key\" = NSpid: ]; then set -- $value; fi; done \
     < /proc/self/status\n",
    "if [ $# -eq \"$HOST_PID_DEPTH\" ]; then echo \"pid namespace: host's\"; \
     else echo \"pid namespace: new\"; fi\n",
    "/bin/sh -c 'echo \"first child: pid $$\"'\n",
);
const PID_NO_FORK_FACTS: &[&str] = &["pid1: no", "pid namespace: host's", "first child: pid 1"];

/// `--mount-proc=/mnt` in the rootfs: proc on /mnt, /proc left empty.
const MOUNT_PROC_DIR_PROBE: &str = concat!(
    pid1!(),
    "if [ -e /proc/1 ]; then echo \"/proc: mounted\"; else echo \"/proc: empty\"; fi\n",
    "read -r comm < /mnt/1/comm; echo \"/mnt/1: $comm\"\n",
);
const MOUNT_PROC_DIR_FACTS: &[&str] = &["pid1: yes", "/proc: empty", "/mnt/1: sh"];

/// `--mount-proc=DIR` on the host's tree, DIR in `$PROC_DIR`.
const HOST_MOUNT_PROC_DIR_PROBE: &str =
    concat!(pid1!(), "read -r comm < \"$PROC_DIR/1/comm\"; echo \"PROC_DIR/1: $comm\"\n");
const HOST_MOUNT_PROC_DIR_FACTS: &[&str] = &["pid1: yes", "PROC_DIR/1: sh"];

/// The directory `--mount-proc=SCRATCH` mounts on, in the tests' scratch space.
fn proc_dir() -> std::path::PathBuf {
    let dir = scratch().join("parity-proc-dir");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
    dir
}

/// The arguments, with ROOTFS and SCRATCH replaced by real paths.
fn expand(args: &[&str]) -> Vec<String> {
    let scratch = proc_dir().display().to_string();
    with_rootfs(args).into_iter().map(|arg| arg.replace(SCRATCH, &scratch)).collect()
}

/// What the probes compare with: the tests' own namespaces and PID depth.
fn with_probe_env(runner: Runner) -> Runner {
    let mut runner = runner;
    for ns in NAMESPACES {
        let link = format!("/proc/self/ns/{ns}");
        let target = std::fs::read_link(&link)
            .unwrap_or_else(|err| panic!("cannot read the link {link}: {err}"));
        runner = runner.env(&format!("HOST_NS_{ns}"), target);
    }
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let depth = status
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))
        .map_or(1, |pids| pids.split_whitespace().count());
    runner.env("HOST_PID_DEPTH", depth.to_string()).env("PROC_DIR", proc_dir())
}

/// How a program ended, as a learner would compare it: its exit code, or the
/// signal that killed it (a shell shows both as `$?`, 128+N for signal N).
fn ending(output: &Output) -> String {
    match output.status.signal() {
        Some(signal) => format!("killed by signal {signal} ($? = {})", output.code()),
        None => format!("exited with {}", output.code()),
    }
}

/// The host's hostname, as the tests (in the host's UTS namespace) see it.
fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").expect("read the hostname").trim().into()
}

#[rstest]
#[case::step02_article(
    &["--root", ROOTFS, "--mount-proc", "--pid", "--fork", "/bin/sh"],
    ARTICLE_PROBE, ARTICLE_FACTS, 0,
    "the article's command: a new PID namespace where the shell is PID 1, a new mount \
     namespace with a fresh proc that shows only the container, and Alpine as `/`",
    "(1), (5), (6) and (7)"
)]
#[case::step02_article_short_flags(
    &["-R", ROOTFS, "-m", "-p", "-f", "--mount-proc", "/bin/sh"],
    ARTICLE_PROBE, ARTICLE_FACTS, 0,
    "the article's command with util-linux's short flags: -R is --root, -m --mount, \
     -p --pid, -f --fork",
    "(1)"
)]
#[case::step02_article_clustered_short_flags(
    &["-mpf", "--mount-proc", "-R", ROOTFS, "/bin/sh"],
    ARTICLE_PROBE, ARTICLE_FACTS, 0,
    "short flags may be written together, as `-mpf`, as with any getopt program",
    "(1)"
)]
#[case::step02_pid_fork_mount_proc(
    &["--pid", "--fork", "--mount-proc", "/bin/sh"],
    HOST_PID_PROBE, HOST_PID_FACTS, 0,
    "without --root the shell is the host's, but it is PID 1 of a new PID namespace, and \
     the fresh /proc (in a new, private mount namespace) shows only it and its children",
    "(4), (6) and (7)"
)]
#[case::step02_uts(
    &["--uts", "/bin/sh"],
    UTS_PROBE, UTS_FACTS, 0,
    "--uts gives the shell a hostname of its own: setting it inside leaves the host's alone",
    "(1)"
)]
#[case::step02_net(
    &["--net", "/bin/sh"],
    NET_PROBE, NET_FACTS, 0,
    "--net gives the shell a network namespace of its own, with no device but lo",
    "(1)"
)]
#[case::step02_ipc(
    &["--ipc", "/bin/sh"],
    IPC_PROBE, IPC_FACTS, 0,
    "--ipc gives the shell an IPC namespace of its own, and changes nothing else",
    "(1)"
)]
#[case::step02_uts_ipc_net_short_flags(
    &["-u", "-i", "-n", "/bin/sh"],
    UTS_IPC_NET_PROBE, UTS_IPC_NET_FACTS, 0,
    "-u, -i and -n are --uts, --ipc and --net",
    "(1)"
)]
#[case::step02_user(
    &["--user", "/bin/sh"],
    USER_PROBE, USER_FACTS, 0,
    "--user alone makes a user namespace where nobody is mapped yet: the shell's uid and \
     gid show as the overflow id, 65534",
    "(1) and (3)"
)]
#[case::step02_user_short_flag(
    &["-U", "/bin/sh"],
    USER_PROBE, USER_FACTS, 0,
    "-U is --user",
    "(1)"
)]
#[case::step02_map_root_user(
    &["--map-root-user", "/bin/sh"],
    USER_PROBE, MAP_ROOT_FACTS, 0,
    "--map-root-user makes a user namespace and maps our uid and gid to 0 there: the shell \
     is root inside",
    "(3)"
)]
#[case::step02_map_root_user_short_flag(
    &["-r", "/bin/sh"],
    USER_PROBE, MAP_ROOT_FACTS, 0,
    "-r is --map-root-user",
    "(1) and (3)"
)]
#[case::step02_pid_without_fork(
    &["--pid", "/bin/sh"],
    PID_NO_FORK_PROBE, PID_NO_FORK_FACTS, 0,
    "--pid without --fork: unshare(CLONE_NEWPID) moves only the children made after it, so \
     the shell keeps its PID in our namespace, and its first child is PID 1 of the new one",
    "(2) and (6)"
)]
#[case::step02_exit_status(
    &["/bin/sh", "-c", "exit 42"],
    "", &[], 42,
    "without --fork the command replaces the program (exec), so its exit status is the \
     program's",
    "(8)"
)]
#[case::step02_exit_status_fork(
    &["--fork", "/bin/sh", "-c", "exit 42"],
    "", &[], 42,
    "with --fork the parent waits and exits with the child's exit status",
    "(6)"
)]
#[case::step02_exit_status_pid_fork(
    &["--pid", "--fork", "/bin/sh", "-c", "exit 42"],
    "", &[], 42,
    "with --pid --fork the command is PID 1 of its namespace, and its exit status is still \
     passed on by the parent",
    "(6)"
)]
#[case::step02_killed_by_signal(
    &["--fork", "/bin/sh", "-c", "kill -TERM $$"],
    "", &[], 143,
    "with --fork, when a signal kills the child, the parent kills itself with the same \
     signal (SIGTERM: $? is 128+15 = 143), so whoever waits for it sees the same death",
    "(6)"
)]
#[case::step02_mount_proc_dir(
    &["--root", ROOTFS, "--pid", "--fork", "--mount-proc=/mnt", "/bin/sh"],
    MOUNT_PROC_DIR_PROBE, MOUNT_PROC_DIR_FACTS, 0,
    "--mount-proc=DIR mounts the fresh proc on DIR (inside the new root) instead of /proc",
    "(7)"
)]
#[case::step02_mount_proc_dir_on_host(
    &["--pid", "--fork", "--mount-proc=SCRATCH", "/bin/sh"],
    HOST_MOUNT_PROC_DIR_PROBE, HOST_MOUNT_PROC_DIR_FACTS, 0,
    "--mount-proc=DIR on the host's tree: the proc mount on DIR stays in the new, private \
     mount namespace, and the host's DIR stays empty",
    "(4) and (7)"
)]
fn same_as_unshare(
    #[case] args: &[&str],
    #[case] probe: &str,
    #[case] facts: &[&str],
    #[case] code: i32,
    #[case] what: &str,
    #[case] section: &str,
) {
    let step = Step::Step02UnshareCli;
    let (short, chapter) = (step.short(), step.chapter());
    let args = expand(args);
    let hostname = host_hostname();

    let unshare =
        with_probe_env(Runner::program(host::util_linux_unshare(), &args)).stdin(probe).run();
    assert!(
        unshare.code() == code && unshare.lines() == facts,
        "util-linux's unshare itself did not do what this test expects on this machine, so \
         step02 cannot be compared with it: fix the machine or the probe first (this is not \
         step02's fault). Expected: {what}; exit status {code}, and the probe printing \
         {facts:#?}\n{unshare}"
    );

    let ours = with_probe_env(Runner::step(step, &args)).stdin(probe).run();
    ours.expect_no_panic();
    assert_eq!(
        ending(&ours),
        ending(&unshare),
        "{short}: `{}` should end the way util-linux's `{}` does ({what}). See {chapter}, \
         section {section}.\n{ours}\n--- util-linux's unshare, for comparison:\n{unshare}",
        ours.label,
        unshare.label,
    );
    assert_eq!(
        ours.stdout, unshare.stdout,
        "{short}: with the same flags, the probe saw something else under step02 than under \
         util-linux's unshare. What it should see: {what}. See {chapter}, section {section}.\n\
         {ours}\n--- util-linux's unshare, for comparison:\n{unshare}\n--- the probe (on stdin):\n\
         {probe}"
    );

    assert_eq!(
        host_hostname(),
        hostname,
        "{short}: `{}` changed the host's hostname: a hostname set inside must stay in the \
         container's own UTS namespace (--uts). See {chapter}, section (1).\n{ours}",
        ours.label
    );
    let left_on_host = std::fs::read_dir(proc_dir()).map_or(0, |dir| dir.count());
    assert_eq!(
        left_on_host,
        0,
        "{short}: after `{}`, the host's {} is not empty: the proc mounted there by \
         --mount-proc=DIR must stay in the container's private mount namespace. See {chapter}, \
         section (4).\n{ours}",
        ours.label,
        proc_dir().display()
    );
}

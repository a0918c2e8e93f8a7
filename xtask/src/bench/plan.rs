//! What the bench runs, in one place: each step next to the command line that
//! does the same work, the real runtimes, and the floor under them all.
//!
//! To add a step, add a line to [`STEPS`]. A step whose crate is not in the
//! workspace yet is skipped, so the table may run ahead of the code.

use std::path::Path;

/// Stands for the bench's root filesystem in the argument lists below.
pub const ROOTFS: &str = "{rootfs}";

/// The most a step may take, as a fraction of its counterpart's median time.
pub const STEP_TARGET: f64 = 0.9;

/// A step and the command it imitates, both running `/bin/true`.
#[derive(Debug, Clone, Copy)]
pub struct StepCase {
    /// The short name the book uses: `step01`.
    pub name: &'static str,
    /// Its crate, directory and binary name (built in release mode).
    pub binary: &'static str,
    /// Its arguments for running `/bin/true` in the root filesystem.
    pub args: &'static [&'static str],
    /// The command line doing the same work (empty if none can).
    pub counterpart: &'static [&'static str],
    /// What the chart and the comparisons call the counterpart when the whole
    /// command line is too long to read there, a shell script's ("" to show
    /// the command line itself). The report gives the script in full below its first table.
    pub counterpart_name: &'static str,
}

/// Step05's root, as a shell does it with util-linux's mount(8) and
/// pivot_root(8): the rootfs bound on itself (`cd "$PWD"` enters the new
/// mount), pivot_root into it, then, already in the new root, Alpine's
/// busybox mounts proc and detaches the old root. No /dev: step05 makes one
/// in its own process; here it would cost a dozen more commands.
macro_rules! sealed_root {
    () => {
        "cd {rootfs} && mount --bind . . && cd \"$PWD\" && pivot_root . . \
         && mount -t proc proc /proc && umount -l ."
    };
}

/// Step07's layer, as a shell makes it: a directory with `upper` and `work`
/// in /run, the overlay mounted over the rootfs (`volatile`, as step07's
/// throwaway layers), and a descriptor on /run (3) through which the layer
/// is removed once the host's tree is out of reach, as step07 does with its
/// directory handle.
macro_rules! layer {
    () => {
        "d=$(mktemp -d -p /run) && exec 3</run && mkdir $d/upper $d/work \
         && mount -t overlay -o lowerdir={rootfs},upperdir=$d/upper,workdir=$d/work,volatile \
         overlay {rootfs}"
    };
}

/// Step07's whole script, as `unshare -m -p -f sh -c` runs it: the layer,
/// step05's root (the shell waits for /bin/true, as step06's init), and the
/// layer removed at the end.
macro_rules! step07_script {
    () => {
        concat!(
            layer!(),
            " && ",
            sealed_root!(),
            " && /bin/true; s=$?; rm -rf /proc/self/fd/3/${d##*/}; exit $s"
        )
    };
}

/// Step08's cgroup around a container, as a shell makes it: `bench-<PID>` in
/// the v2 tree (with pids enabled for its children), or in each of the v1
/// memory, pids and cpu hierarchies; a limit written in (`--pids 64`); a
/// subshell that joins it (`echo 0`, as step08's child writes 0) and becomes
/// the container, born inside; and the cgroup removed once it has ended.
/// The shell itself stays outside, as step08's runtime does.
macro_rules! in_a_cgroup {
    ($container:expr) => {
        concat!(
            "c=/sys/fs/cgroup n=bench-$$; if [ -e $c/cgroup.controllers ]; \
             then set -- $c; p=$c/$n; echo +pids > $c/cgroup.subtree_control; \
             else set -- $c/memory $c/pids $c/cpu; p=$c/pids/$n; fi; \
             for t; do mkdir $t/$n || exit; done; echo 64 > $p/pids.max; \
             ( for t; do echo 0 > $t/$n/cgroup.procs; done; exec ",
            $container,
            " ); s=$?; for t; do rmdir $t/$n; done; exit $s"
        )
    };
}

/// The steps, in order. The last one that exists is compared with the runtimes.
pub const STEPS: &[StepCase] = &[
    StepCase {
        name: "step01",
        binary: "step01-chroot",
        args: &[ROOTFS, "/bin/true"],
        counterpart: &["chroot", ROOTFS, "/bin/true"],
        counterpart_name: "",
    },
    StepCase {
        name: "step02",
        binary: "step02-unshare-cli",
        // The article's flags, for both.
        args: &["--root", ROOTFS, "--mount-proc", "--pid", "--fork", "/bin/true"],
        counterpart: &["unshare", "--root", ROOTFS, "--mount-proc", "--pid", "--fork", "/bin/true"],
        counterpart_name: "",
    },
    StepCase {
        name: "step03",
        binary: "step03-pid-ns",
        // On the host's own files: step 03 has no chroot.
        args: &["/bin/true"],
        counterpart: &["unshare", "-m", "-p", "-f", "--mount-proc", "/bin/true"],
        counterpart_name: "",
    },
    StepCase {
        name: "step04",
        binary: "step04-full-demo",
        args: &[ROOTFS, "/bin/true"],
        counterpart: &["unshare", "-m", "-p", "-f", "--mount-proc", "-R", ROOTFS, "/bin/true"],
        counterpart_name: "",
    },
    StepCase {
        name: "step05",
        binary: "step05-pivot-root",
        args: &[ROOTFS, "/bin/true"],
        // The shell becomes /bin/true, as step05's child does.
        counterpart: &[
            "unshare",
            "-m",
            "-p",
            "-f",
            "sh",
            "-c",
            concat!(sealed_root!(), " && exec /bin/true"),
        ],
        counterpart_name: "unshare -m -p -f sh -c '… pivot_root . . … exec /bin/true'",
    },
    StepCase {
        name: "step06",
        binary: "step06-init",
        args: &[ROOTFS, "/bin/true"],
        // The shell stays as PID 1 and waits for /bin/true, its child: an init
        // that reaps, though it passes no signal on.
        counterpart: &[
            "unshare",
            "-m",
            "-p",
            "-f",
            "sh",
            "-c",
            concat!(sealed_root!(), " && /bin/true; exit"),
        ],
        counterpart_name: "unshare -m -p -f sh -c '… pivot_root . . … /bin/true; exit'",
    },
    StepCase {
        name: "step07",
        binary: "step07-overlay",
        args: &[ROOTFS, "/bin/true"],
        counterpart: &["unshare", "-m", "-p", "-f", "sh", "-c", step07_script!()],
        counterpart_name: "unshare -m -p -f sh -c '… mount -t overlay … pivot_root . . … rm -rf …'",
    },
    StepCase {
        name: "step08",
        binary: "step08-cgroups",
        args: &["--pids", "64", ROOTFS, "/bin/true"],
        // The shell stays outside the cgroup, and step07's script runs inside.
        counterpart: &[
            "sh",
            "-c",
            in_a_cgroup!(concat!("unshare -m -p -f sh -c '", step07_script!(), "'")),
        ],
        counterpart_name: "sh -c '… mkdir …/bench-$$ … echo 0 > …/cgroup.procs; exec unshare … rmdir …'",
    },
];

/// A container runtime that runs an OCI bundle: `NAME --root STATE run --bundle DIR ID`.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeCase {
    /// The program, looked up in `$PATH` (the bench never installs one).
    pub name: &'static str,
    /// The most the last step may take, as a fraction of this runtime's median time.
    pub target: Option<f64>,
    /// Where to get it, for the note when it is missing.
    pub get_it: &'static str,
}

/// The runtimes, each skipped with a note when it is not installed.
pub const RUNTIMES: &[RuntimeCase] = &[
    RuntimeCase { name: "runc", target: Some(0.2), get_it: "apt-get install runc" },
    RuntimeCase { name: "crun", target: Some(0.5), get_it: "apt-get install crun" },
    RuntimeCase {
        name: "youki",
        target: None,
        get_it: "not in Debian's apt; see https://github.com/youki-dev/youki/releases",
    },
];

/// Where the bench makes the steps' layers on a tmpfs, when /run is not one
/// (see `TmpfsLayers` in the bench): /dev/shm is a tmpfs nearly everywhere.
pub const TMPFS_LAYERS: &str = "/dev/shm/workshop-bench-layers";

/// Whether the last of `steps` makes a layer for each container (an overlay's
/// upper directory in /run): step07 and every step after it do.
pub fn makes_a_layer(steps: &[StepCase]) -> bool {
    steps.last().is_some_and(|step| step.name >= "step07")
}

/// The floor: the command alone, then chroot(1) into the root filesystem.
pub const FLOOR: &[&[&str]] = &[&["/bin/true"], &["chroot", ROOTFS, "/bin/true"]];

/// The steps whose crate is in the workspace at `root`, and a note for each other one.
pub fn existing_steps(root: &Path) -> (Vec<StepCase>, Vec<String>) {
    let (mut found, mut notes) = (Vec::new(), Vec::new());
    for step in STEPS {
        if root.join(step.binary).join("Cargo.toml").is_file() {
            found.push(*step);
        } else {
            notes.push(format!(
                "{}: no crate {} in this workspace yet: skipped",
                step.name, step.binary
            ));
        }
    }
    (found, notes)
}

/// `args` with [`ROOTFS`] replaced by `rootfs`.
pub fn with_rootfs(args: &[&str], rootfs: &Path) -> Vec<String> {
    let rootfs = rootfs.to_string_lossy();
    args.iter().map(|arg| arg.replace(ROOTFS, &rootfs)).collect()
}

/// `args` as a reader would type them, from the directory holding `rootfs`.
pub fn shown(args: &[&str]) -> String {
    args.iter()
        .map(|arg| crate::shell_quote(&arg.replace(ROOTFS, "rootfs")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_runs_bin_true_and_names_are_unique() {
        for (i, step) in STEPS.iter().enumerate() {
            assert_eq!(step.args.last(), Some(&"/bin/true"), "{}", step.name);
            assert!(step.binary.starts_with(step.name), "{}", step.name);
            if let Some(last) = step.counterpart.last() {
                assert!(last.contains("/bin/true"), "{}", step.name);
            }
            assert!(STEPS[..i].iter().all(|s| s.name != step.name), "{} twice", step.name);
            let name = step.counterpart_name;
            assert!(name.is_empty() || STEPS[..i].iter().all(|s| s.counterpart_name != name));
        }
    }

    #[test]
    fn steps_of_this_workspace_exist() {
        let (found, notes) = existing_steps(crate::workspace_root());
        assert!(found.iter().any(|s| s.name == "step04"), "{notes:?}");
        let (none, notes) = existing_steps(Path::new("/nonexistent"));
        assert!(none.is_empty());
        assert_eq!(notes.len(), STEPS.len());
        assert!(notes[0].contains("skipped"), "{notes:?}");
    }

    #[test]
    fn rootfs_is_substituted_and_shown() {
        let args = with_rootfs(STEPS[3].counterpart, Path::new("/w/target/bench/rootfs"));
        assert_eq!(
            args.join(" "),
            "unshare -m -p -f --mount-proc -R /w/target/bench/rootfs /bin/true"
        );
        assert_eq!(shown(STEPS[0].args), "rootfs /bin/true");
        // A script: `{rootfs}` inside it too, and quoted as a whole.
        let step05 = STEPS.iter().find(|s| s.name == "step05").unwrap();
        let script = &with_rootfs(step05.counterpart, Path::new("/w/rootfs"))[6];
        assert!(script.starts_with("cd /w/rootfs && mount --bind . . && cd \"$PWD\""), "{script}");
        assert!(shown(step05.counterpart).starts_with("unshare -m -p -f sh -c 'cd rootfs && "));
    }
}

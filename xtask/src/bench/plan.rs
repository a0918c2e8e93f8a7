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
}

/// The steps, in order. The last one that exists is compared with the runtimes.
pub const STEPS: &[StepCase] = &[
    StepCase {
        name: "step01",
        binary: "step01-chroot",
        args: &[ROOTFS, "/bin/true"],
        counterpart: &["chroot", ROOTFS, "/bin/true"],
    },
    StepCase {
        name: "step02",
        binary: "step02-unshare-cli",
        // The article's flags, for both.
        args: &["--root", ROOTFS, "--mount-proc", "--pid", "--fork", "/bin/true"],
        counterpart: &["unshare", "--root", ROOTFS, "--mount-proc", "--pid", "--fork", "/bin/true"],
    },
    StepCase {
        name: "step03",
        binary: "step03-pid-ns",
        // On the host's own files: step 03 has no chroot.
        args: &["/bin/true"],
        counterpart: &["unshare", "-m", "-p", "-f", "--mount-proc", "/bin/true"],
    },
    StepCase {
        name: "step04",
        binary: "step04-full-demo",
        args: &[ROOTFS, "/bin/true"],
        counterpart: &["unshare", "-m", "-p", "-f", "--mount-proc", "-R", ROOTFS, "/bin/true"],
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
            if !step.counterpart.is_empty() {
                assert_eq!(step.counterpart.last(), Some(&"/bin/true"), "{}", step.name);
            }
            assert!(STEPS[..i].iter().all(|s| s.name != step.name), "{} twice", step.name);
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
    }
}

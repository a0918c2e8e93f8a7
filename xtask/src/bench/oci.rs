//! A minimal OCI bundle for the real runtimes, equivalent to step 04's
//! container: mount and PID namespaces, the bench's root filesystem, a fresh
//! proc on /proc, and `/bin/true` as the process.
//!
//! One addition: a tmpfs on /dev. Runtimes always create a few device nodes
//! (/dev/null, /dev/zero, ...); without a /dev of its own they would create
//! them in the root filesystem on disk. The runtimes keep their state under a
//! directory of the bundle (`--root`), so a container left behind by an
//! interrupted run is found, and deleted, by the next run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use oci_spec::runtime::{
    LinuxBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, MountBuilder, ProcessBuilder,
    RootBuilder, SpecBuilder, UserBuilder,
};

/// Where bundles live, under the bench's work directory.
const PREFIX: &str = "oci-";

/// A bundle directory with its `config.json`, and a state directory per
/// runtime. Dropping it deletes the containers left in those, then the directory.
#[derive(Debug)]
pub struct Bundle {
    dir: tempfile::TempDir,
    /// A prefix of container names unique to this bench run.
    id_prefix: String,
}

impl Bundle {
    /// Writes a bundle under `work` for a container whose root is `rootfs`.
    pub fn new(work: &Path, rootfs: &Path) -> Result<Bundle> {
        fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir_in(work)
            .with_context(|| format!("cannot make a bundle directory in {}", work.display()))?;
        spec(rootfs)?
            .save(dir.path().join("config.json"))
            .context("cannot write the bundle's config.json")?;
        Ok(Bundle { dir, id_prefix: format!("xtask-bench-{}", std::process::id()) })
    }

    /// The command that runs the container once with `runtime`; `{run}` in it
    /// is for the bench's runner to replace with a number of its own, so each
    /// container has a new name.
    pub fn run_args(&self, runtime: &str) -> Vec<String> {
        let bundle = self.dir.path().to_string_lossy().into_owned();
        let state = self.state_dir(runtime).to_string_lossy().into_owned();
        let id = format!("{}-{{run}}", self.id_prefix);
        [runtime, "--root", &state, "run", "--bundle", &bundle, &id].map(str::to_owned).to_vec()
    }

    /// The command line as shown in the results.
    pub fn shown(runtime: &str) -> String {
        format!("{runtime} run --bundle BUNDLE ID")
    }

    /// `runtime`'s state directory (`--root`).
    pub fn state_dir(&self, runtime: &str) -> PathBuf {
        self.dir.path().join(format!("state-{runtime}"))
    }

    /// The bundle's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        delete_containers(self.dir.path());
    }
}

/// The bundle's `config.json`, built with the OCI spec's own types.
fn spec(rootfs: &Path) -> Result<oci_spec::runtime::Spec> {
    let namespace = |typ| LinuxNamespaceBuilder::default().typ(typ).build();
    let spec = SpecBuilder::default()
        .version("1.0.2")
        .root(RootBuilder::default().path(rootfs).readonly(false).build()?)
        .process(
            ProcessBuilder::default()
                .terminal(false)
                .user(UserBuilder::default().uid(0u32).gid(0u32).build()?)
                .args(vec!["/bin/true".to_owned()])
                .env(vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_owned()])
                .cwd("/")
                .build()?,
        )
        .mounts(vec![
            MountBuilder::default().destination("/proc").typ("proc").source("proc").build()?,
            MountBuilder::default()
                .destination("/dev")
                .typ("tmpfs")
                .source("tmpfs")
                .options(["nosuid", "strictatime", "mode=755", "size=65536k"].map(String::from))
                .build()?,
        ])
        .linux(
            LinuxBuilder::default()
                .namespaces(vec![
                    namespace(LinuxNamespaceType::Mount)?,
                    namespace(LinuxNamespaceType::Pid)?,
                ])
                .build()?,
        )
        .build()?;
    // The builders fill what is not set with the defaults of a Docker-like
    // container: take those out, step 04 has none of them.
    let mut spec = spec;
    if let Some(process) = spec.process_mut() {
        process.set_capabilities(None).set_rlimits(None).set_no_new_privileges(None);
    }
    if let Some(linux) = spec.linux_mut() {
        linux.set_resources(None).set_masked_paths(None).set_readonly_paths(None);
    }
    spec.set_hostname(None).set_annotations(None);
    Ok(spec)
}

/// Deletes every container whose state is under `bundle` (`RUNTIME delete
/// --force ID`, which also removes its cgroups), and the directory itself.
fn delete_containers(bundle: &Path) {
    for state in fs::read_dir(bundle).into_iter().flatten().flatten() {
        let name = state.file_name().to_string_lossy().into_owned();
        let Some(runtime) = name.strip_prefix("state-") else { continue };
        for container in fs::read_dir(state.path()).into_iter().flatten().flatten() {
            let _ = Command::new(runtime)
                .arg("--root")
                .arg(state.path())
                .args(["delete", "--force"])
                .arg(container.file_name())
                .output();
        }
    }
    let _ = fs::remove_dir_all(bundle);
}

/// Cleans up after an earlier bench that was stopped before it could: its
/// containers and bundles under `work`. Returns how many bundles there were.
pub fn clean_leftovers(work: &Path) -> usize {
    let mut found = 0;
    for entry in fs::read_dir(work).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(PREFIX) {
            delete_containers(&entry.path());
            found += 1;
        }
    }
    found
}

/// The containers whose state is still under the bundle's state directories
/// (none, after a clean run).
pub fn containers_left(bundle: &Bundle) -> Vec<String> {
    let mut left = Vec::new();
    for state in fs::read_dir(bundle.path()).into_iter().flatten().flatten() {
        for container in fs::read_dir(state.path()).into_iter().flatten().flatten() {
            left.push(container.file_name().to_string_lossy().into_owned());
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_is_step04s_container() {
        let scratch = tempfile::tempdir().unwrap();
        let bundle = Bundle::new(scratch.path(), Path::new("/some/rootfs")).unwrap();
        let text = fs::read_to_string(bundle.path().join("config.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["root"]["path"], "/some/rootfs");
        assert_eq!(json["process"]["args"], serde_json::json!(["/bin/true"]));
        assert_eq!(json["process"]["terminal"], false);
        assert!(json["process"].get("capabilities").is_none(), "{text}");
        let namespaces: Vec<&str> = json["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ns| ns["type"].as_str().unwrap())
            .collect();
        assert_eq!(namespaces, ["mount", "pid"]);
        let mounts: Vec<&str> = json["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(mounts, ["/proc", "/dev"]);
        assert!(json.get("hostname").is_none(), "no UTS namespace, so no hostname: {text}");

        let args = bundle.run_args("runc");
        assert_eq!(args[..2], ["runc", "--root"]);
        assert!(args.last().unwrap().ends_with("-{run}"), "{args:?}");
        let dir = bundle.path().to_owned();
        drop(bundle);
        assert!(!dir.exists(), "dropping the bundle removes it");
    }

    #[test]
    fn leftovers_are_cleaned() {
        let scratch = tempfile::tempdir().unwrap();
        let old = scratch.path().join("oci-old");
        fs::create_dir_all(old.join("state-nonexistent-runtime/some-id")).unwrap();
        fs::create_dir_all(scratch.path().join("rootfs")).unwrap();
        assert_eq!(clean_leftovers(scratch.path()), 1);
        assert!(!old.exists());
        assert!(scratch.path().join("rootfs").exists(), "only bundles are removed");
    }
}

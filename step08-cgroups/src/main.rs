//! # Step 08: limits the kernel enforces
//!
//! step07's container (sealed with pivot_root, a /dev of its own, a real
//! PID 1, an image that stays pristine) sees only its own files and
//! processes, but may still use all of the host's memory, fork without end
//! and keep every CPU busy. Here it gets a cgroup of its own, with the limits
//! `--memory`, `--pids` and `--cpus`: (1) find the cgroup layout (v2, or v1)
//! and where we may write, (2) remove the cgroups of runtimes that were
//! killed, (3) make the container's cgroup, (4) write its limits, (5) the
//! container's first process joins it before it runs anything, and when the
//! container ends, (6) say which limit it ran into, (7) remove the cgroup.
//!
//! The new idea is read in full in `kit/src/cgroup.rs`; what earlier steps
//! taught is called from `kit`: step04's namespaces, step05's root and /dev,
//! step06's init, step07's overlay.

use std::ffi::OsString;
use std::{path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::Parser;
use kit::cgroup::{self, Cgroup};
use kit::overlay::{self, Layer};
use kit::{article, dev, init, pivot_root};

/// Run COMMAND in a container whose memory, processes and CPU time the kernel limits.
#[derive(Debug, Parser)]
#[command(name = "step08-cgroups", version)]
struct Cli {
    #[command(flatten)]
    overlay: overlay::Options,
    #[command(flatten)]
    cgroup: cgroup::Options,
    /// The image: the directory the container sees as `/`, which it never changes.
    #[arg(default_value = "./rootfs")]
    rootfs: PathBuf,
    /// The command to run inside the container, and its arguments.
    #[arg(default_value = "/bin/sh", trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<OsString>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return article::usage(err), // 125, as step04
    };
    match run(&cli) {
        Ok(status) => status,
        Err(err) => {
            article::report(format_args!("{err:#}"));
            ExitCode::from(125) // as chroot(1): the runtime itself failed
        }
    }
}

// ANCHOR: run
fn run(cli: &Cli) -> Result<ExitCode> {
    let rootfs = &cli.rootfs;
    article::check_rootfs(rootfs)?;
    dev::check_rootfs(rootfs)?;
    let command = article::c_strings(&cli.command)?;
    let cgroup = Cgroup::create(&cli.cgroup)?; // (1) to (4), while the host's cgroups are in sight
    article::new_namespaces()?; // as step04: new mount and PID namespaces
    article::make_mounts_private()?; // as step04: our mounts stay ours
    let mut layer = Layer::create(&cli.overlay, rootfs)?; // as step07: the container's directory
    layer.mount()?; // as step07: the overlay over ROOTFS
    pivot_root::bind_on_itself(rootfs)?; // as step05, on the overlay
    dev::make_dev(rootfs)?; // as step05: a /dev of its own
    pivot_root::pivot_into(rootfs)?; // as step05: the overlay becomes the namespace's root
    // as step06's fork_init, with (5) first in the child: it joins the cgroup, then is the init
    let status = pivot_root::fork_and_wait_with(&command, || cgroup.join(), init::init);
    layer.end(); // as step07: remove the container's directory, or keep its layer
    cgroup.end(); // (6) say which limit the container ran into, (7) remove the cgroup
    status
}
// ANCHOR_END: run

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}

//! # Step 08: limits the kernel enforces
//!
//! The container so far sees only its own files and processes, but it may
//! still use all of the host's memory, fork without end and take every CPU.
//! This step gives it a cgroup of its own, with the limits `--memory`,
//! `--pids` and `--cpus`, read in full in `kit/src/cgroup.rs`:
//! (1) find the cgroup layout (v2, or v1) and where we may write, (2) remove
//! the cgroups of runtimes that were killed, (3) make the container's cgroup,
//! (4) write its limits, (5) place the first process in it before it runs
//! the command, (6) say which limit the container ran into, (7) remove the
//! cgroup.
//!
//! Everything else is the earlier steps' code, called: step04's namespaces,
//! root and child (`kit::article`), step07's overlay (`kit::overlay`).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::{path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::Parser;
use kit::article::{self, program_name};
use kit::cgroup::{self, Cgroup, CgroupArgs};
use kit::overlay::{self, Layer};

/// Run COMMAND in a container whose memory, processes and CPU time the kernel limits.
#[derive(Debug, Parser)]
#[command(name = "step08-cgroups", version)]
struct Cli {
    #[command(flatten)]
    overlay: overlay::Options,
    #[command(flatten)]
    cgroup: CgroupArgs,
    /// The image: the directory the container sees as `/`, which it never changes.
    #[arg(default_value = "./rootfs")]
    rootfs: PathBuf,
    /// The command to run inside the container, and its arguments.
    #[arg(default_value = "/bin/sh", trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<std::ffi::OsString>,
}

fn main() -> ExitCode {
    match run(&Cli::parse()) {
        Ok(status) => status,
        Err(err) => {
            eprintln!("{}: {err:#}", program_name().to_string_lossy());
            ExitCode::from(125) // as chroot(1): the runtime itself failed
        }
    }
}

// ANCHOR: run
fn run(cli: &Cli) -> Result<ExitCode> {
    article::check_rootfs(&cli.rootfs)?;
    let command: Vec<CString> =
        cli.command.iter().map(|arg| CString::new(arg.as_bytes())).collect::<Result<_, _>>()?;
    let argv: Vec<_> = command.iter().map(|a| a.as_ptr()).chain([std::ptr::null()]).collect();
    // (1) to (4): find the layout, clean up, make the cgroup, write the limits,
    // while the host's /sys/fs/cgroup is in sight; it keeps handles for later.
    let cgroup = Cgroup::for_container(&cli.cgroup)?;
    article::new_namespaces()?;
    article::make_mounts_private()?;
    let mut layer = Layer::create(&cli.overlay)?; // step07: the container's layer
    layer.mount_over(&cli.rootfs)?; // and the overlay, ROOTFS the image under it
    // TODO(step05): pivot_root and /dev here, instead of step04's chroot.
    article::change_root(&cli.rootfs)?;
    // (5) fork, and place the child in the cgroup before it goes on.
    // TODO(step06): the child becomes the init, instead of step04's container.
    let child = cgroup::fork_into(cgroup.as_ref(), |mask| article::container(&argv, mask))?;
    let status = article::wait_for(child);
    layer.end();
    if let Some(cgroup) = cgroup {
        cgroup.end(); // (6) say which limits it ran into, (7) remove the cgroup
    }
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

//! # Step 05: pivot_root, and a /dev of its own
//!
//! Step04's container, with the root sealed: where step04 chroots, which a
//! process that is root inside can undo, step05 makes the rootfs the root
//! mount of the container's mount namespace and detaches the host's tree,
//! as runc, crun and youki do. And the container gets a /dev, so that
//! `/dev/null` and friends are there.
//!
//! (1) bind the rootfs on itself, (2)–(5) build its /dev, (6) pivot_root,
//! and in the child, (7) detach the old root. The rest is step04's, called
//! from `kit::article`: the namespaces and private mounts before, the fork,
//! proc, exec and wait after. The new ideas are read in full in
//! `kit/src/pivot_root.rs` and `kit/src/dev.rs`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use kit::{article, dev, pivot_root};

/// Run COMMAND in a container whose root is ROOTFS, sealed with pivot_root, with a /dev of its own.
#[derive(Debug, Parser)]
#[command(name = "step05-pivot-root", version)]
struct Cli {
    /// The directory that becomes `/` inside the container.
    #[arg(default_value = "./rootfs")]
    rootfs: PathBuf,
    /// The command to run as PID 1 inside the container, and its arguments.
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
    article::new_namespaces()?; // as step04: new mount and PID namespaces
    article::make_mounts_private()?; // as step04: our mounts stay ours
    pivot_root::bind_on_itself(rootfs)?; // (1) the rootfs becomes a mount point
    dev::make_dev(rootfs)?; // (2) to (5): a /dev of its own, from the host's while we see it
    pivot_root::pivot_into(rootfs)?; // (6) the rootfs becomes the namespace's root mount
    pivot_root::fork_and_wait(&command, pivot_root::container) // as step04, plus the child's (7)
}
// ANCHOR_END: run

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}

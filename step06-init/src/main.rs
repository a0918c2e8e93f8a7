//! # Step 06: a real PID 1
//!
//! step05's container (sealed with pivot_root, a /dev of its own), whose PID 1
//! is an init of ours instead of the command (`kit/src/init.rs`): (1) the
//! runtime's child stays as the init, which starts as step05's child does,
//! then (2) blocks the signals it must take, (3) forks the command, (4)
//! forwards signals to it and (5) reaps every zombie, then exits with the
//! command's status. It dies with the runtime, whatever the command does with
//! its credentials.
//!
//! And `step06-init enter PID [COMMAND]...` runs a second command inside a
//! running container, as `docker exec` does (`kit/src/enter.rs`): (6) join its
//! namespaces and root, (7) fork into its PID namespace.

use std::ffi::OsString;
use std::{path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::Parser;
use kit::{article, dev, init, pivot_root};

/// Run COMMAND in a container whose PID 1 is a small init: it reaps zombies,
/// passes signals on to COMMAND, and exits with COMMAND's status.
#[derive(Debug, Parser)]
#[command(name = "step06-init", version, args_conflicts_with_subcommands = true)]
#[command(
    disable_help_subcommand = true,
    subcommand_help_heading = "Instead of starting a container"
)]
#[command(
    override_usage = "step06-init [ROOTFS] [COMMAND]...\n       step06-init enter <PID> [COMMAND]..."
)]
struct Cli {
    #[command(subcommand)]
    action: Option<Action>,
    /// The directory that becomes `/` inside the container.
    #[arg(default_value = "./rootfs")]
    rootfs: PathBuf,
    /// The command the init starts (as PID 2) inside the container, and its arguments.
    #[arg(default_value = "/bin/sh", trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<OsString>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Run COMMAND inside a running container, as `docker exec` does.
    Enter(kit::enter::Enter),
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
    if let Some(Action::Enter(enter)) = &cli.action {
        return kit::enter::enter(enter); // (6) join the container, (7) fork into it
    }
    let rootfs = &cli.rootfs;
    article::check_rootfs(rootfs)?;
    dev::check_rootfs(rootfs)?;
    let command = article::c_strings(&cli.command)?;
    article::new_namespaces()?; // as step04: new mount and PID namespaces
    article::make_mounts_private()?; // as step04: our mounts stay ours
    pivot_root::bind_on_itself(rootfs)?; // as step05: the rootfs becomes a mount point
    dev::make_dev(rootfs)?; // as step05: a /dev of its own
    pivot_root::pivot_into(rootfs)?; // as step05: the rootfs becomes the namespace's root mount
    init::fork_init(&command) // (1) the child is the init; it detaches the host's tree, as step05's
}
// ANCHOR_END: run

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}

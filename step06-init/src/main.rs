//! # Step 06: a real PID 1
//!
//! step05's container, whose PID 1 is an init of ours instead of the command
//! (`kit::init`): (1) the runtime's child stays as the init, which (2) blocks
//! the signals it must take, (3) forks the command, (4) forwards signals to it
//! and (5) reaps every zombie, then exits with the command's status. It dies
//! with the runtime, whatever the command does with its credentials.
//!
//! And `step06-init enter PID [COMMAND]...` runs a second command inside a
//! running container, as `docker exec` does (`kit::enter`): (6) join its
//! namespaces and root, (7) fork into its PID namespace.

use std::ffi::{CString, OsString};
use std::{os::unix::ffi::OsStrExt, path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::Parser;
use kit::article::{self, program_name};

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
    if let Some(Action::Enter(enter)) = &cli.action {
        return kit::enter::enter(enter); // (6) join the container, (7) fork into it
    }
    article::check_rootfs(&cli.rootfs)?;
    let command: Vec<CString> =
        cli.command.iter().map(|arg| CString::new(arg.as_bytes())).collect::<Result<_, _>>()?;
    article::new_namespaces()?;
    article::make_mounts_private()?;
    article::change_root(&cli.rootfs)?; // STEP05: until step05 lands, step04's chroot
    kit::init::fork_init(&command) // (1) the runtime's child is the init: (2) to (5)
}
// ANCHOR_END: run

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}

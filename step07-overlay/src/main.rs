//! # Step 07: an image that stays pristine
//!
//! Until now the container wrote straight into ROOTFS: `rm -rf /bin` inside
//! broke it for every later run. Here ROOTFS becomes a read-only *image*: the
//! container's `/` is an overlay, the image below and a layer of the
//! container's own on top, where every write and every deletion lands. (1)
//! make the container's directory, (2) mount the overlay over ROOTFS, and
//! when the container ends (3) remove the directory, or (4) keep the layer
//! (`--keep-layer`) and show what the container changed.
//!
//! The new idea is read in full in `kit/src/overlay.rs`; what earlier steps
//! taught is called from `kit`.

use std::ffi::CString;
use std::{os::unix::ffi::OsStrExt, path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::Parser;
use kit::article::{change_root, check_rootfs, fork_container, make_mounts_private};
use kit::article::{new_namespaces, program_name};
use kit::overlay::{self, Layer};

/// Run COMMAND in a container whose `/` is an overlay: ROOTFS, read-only, under a layer of its own.
#[derive(Debug, Parser)]
#[command(name = "step07-overlay", version)]
struct Cli {
    #[command(flatten)]
    overlay: overlay::Options,
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
    check_rootfs(&cli.rootfs)?;
    let command: Vec<CString> =
        cli.command.iter().map(|arg| CString::new(arg.as_bytes())).collect::<Result<_, _>>()?;
    new_namespaces()?;
    make_mounts_private()?;
    let mut layer = Layer::create(&cli.overlay)?; // (1) the container's directory
    layer.mount_over(&cli.rootfs)?; // (2) the overlay: ROOTFS is the image under it
    // TODO(step05): pivot_root and /dev here, instead of step04's chroot.
    change_root(&cli.rootfs)?;
    // TODO(step06): the init, instead of step04's fork and exec.
    let status = fork_container(&command);
    layer.end(); // (3) remove the container's directory, or (4) keep its layer
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

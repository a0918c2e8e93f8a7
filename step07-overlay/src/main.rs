//! # Step 07: an image that stays pristine
//!
//! step06's container (sealed with pivot_root, a /dev of its own, a real
//! PID 1), whose `/` is an overlay. Until now the container wrote straight
//! into ROOTFS: `rm -rf /bin` inside broke it for every later run. Here ROOTFS
//! becomes a read-only *image*: the image below, and a layer of the
//! container's own on top, where every write and every deletion lands. (1)
//! make the container's directory, (2) mount the overlay over ROOTFS, then
//! step05's root and step06's init on it, and when the container ends (3)
//! remove the directory, or (4) keep the layer (`--keep-layer`) and show what
//! the container changed.
//!
//! The new idea is read in full in `kit/src/overlay.rs`; what earlier steps
//! taught is called from `kit`: step04's namespaces, step05's root and /dev,
//! step06's init.

use std::ffi::OsString;
use std::{path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::Parser;
use kit::overlay::{self, Layer};
use kit::{article, dev, init, pivot_root};

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
    let mut layer = Layer::create(&cli.overlay, rootfs)?; // (1) the container's directory
    layer.mount()?; // (2) the overlay over ROOTFS: the image under the container's layer
    pivot_root::bind_on_itself(rootfs)?; // as step05, on the overlay
    dev::make_dev(rootfs)?; // as step05: a /dev of its own
    pivot_root::pivot_into(rootfs)?; // as step05: the overlay becomes the namespace's root
    let status = init::fork_init(&command); // as step06: the init, which detaches the host's tree
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

//! How the tests get the privilege the steps need.
//!
//! The steps call unshare(2), chroot(2) and mount(2), which need root. The
//! tests run them as root when they are root; otherwise, where the kernel lets
//! unprivileged users create user namespaces, they run each step as "root"
//! inside a user namespace of its own (plus a mount namespace, so that chroot
//! and mounts are allowed), exactly like `unshare --user --map-root-user
//! --mount`. The steps themselves do not change.

use std::sync::OnceLock;

/// What the tests can do on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Privilege {
    /// We are root: the steps run as they would under sudo.
    Root,
    /// We are not root, but unprivileged user namespaces work: each step runs
    /// as root inside a user namespace of its own.
    Rootless,
    /// Neither: the reason, for the failure message.
    Unavailable(String),
}

/// Detects once per process what this machine allows. `WORKSHOP_PRIVILEGE`
/// (`root`, `rootless` or `none`) overrides it, to test the harness itself.
pub fn privilege() -> &'static Privilege {
    static PRIVILEGE: OnceLock<Privilege> = OnceLock::new();
    PRIVILEGE.get_or_init(|| match std::env::var("WORKSHOP_PRIVILEGE").as_deref() {
        Ok("root") => Privilege::Root,
        Ok("rootless") => Privilege::Rootless,
        Ok("none") => Privilege::Unavailable("WORKSHOP_PRIVILEGE=none says so".into()),
        _ if nix::unistd::geteuid().is_root() => Privilege::Root,
        _ => probe_rootless(),
    })
}

/// Tries to run `true` in a rootless user namespace, as the tests would run a step.
fn probe_rootless() -> Privilege {
    let mut cmd = std::process::Command::new("true");
    xtask::rootless::rootless(&mut cmd);
    match cmd.output() {
        Ok(out) if out.status.success() => Privilege::Rootless,
        Ok(out) => Privilege::Unavailable(String::from_utf8_lossy(&out.stderr).trim().into()),
        Err(err) => Privilege::Unavailable(format!("creating a user namespace failed: {err}")),
    }
}

/// The privilege the steps need, or a failure that says how to get it.
/// Tests that run a step call this first: they never pass without running.
pub fn require_privilege() -> &'static Privilege {
    let privilege = privilege();
    if let Privilege::Unavailable(reason) = privilege {
        panic!("{}", unavailable_message(reason));
    }
    privilege
}

/// Says why the steps cannot run, and the two ways to make them run.
pub fn unavailable_message(reason: &str) -> String {
    format!(
        "this test runs a workshop step, which needs root, or unprivileged user namespaces \
         to run it rootless; this machine allows neither to this user ({reason}).\n\
         Either run the tests as root, building as yourself:\n    \
         cargo test --config 'target.\"cfg(all())\".runner = \"sudo -E\"'\n\
         (or `sudo -E cargo test`), or allow user namespaces for this boot, e.g. on Ubuntu 24.04:\n    \
         sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0\n\
         `cargo xtask doctor` shows what this machine allows."
    )
}

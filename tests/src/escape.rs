//! The chroot escape probe, `step05-pivot-root/escape.c`, built with `cc`
//! for the tests that show the escape under step01 and step04 and its end
//! under step05.
//!
//! It runs inside the Alpine rootfs, whose C library is musl: a program
//! linked against the host's glibc would not start there. So it is linked
//! statically (`cc -static`): it carries its own C library and needs nothing
//! from the rootfs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::RootfsCopy;

/// The C source, in the repository.
pub fn source() -> PathBuf {
    crate::workspace().join("step05-pivot-root/escape.c")
}

/// Where the probe is, in a rootfs it was copied into.
pub const IN_ROOTFS: &str = "/escape";

/// The probe, built once per test process into the scratch directory. Fails
/// the test, saying what to install, without a C compiler or a static C library.
pub fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let dir = crate::scratch().join("escape");
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        // Test processes may build it at once: each writes its own file, then
        // renames it into place (a rename replaces atomically).
        let built = dir.join(format!("escape.{}", std::process::id()));
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let output = Command::new(&cc)
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-static", "-o"])
            .arg(&built)
            .arg(source())
            .output()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run the C compiler `{cc}` to build {}: {err}\nhint: install one, \
                     e.g. `sudo apt install build-essential` (Rust needs it to link, too)",
                    source().display()
                )
            });
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() && stderr.contains("cannot find -lc") {
            panic!(
                "`{cc} -static` could not link {}: there is no static C library (libc.a) on \
                 this machine. The probe runs inside the Alpine rootfs, which has no glibc, so \
                 it must carry its own.\nhint: install it: `sudo apt install libc6-dev` on \
                 Debian or Ubuntu, `sudo dnf install glibc-static` on Fedora\n{stderr}",
                source().display()
            );
        }
        assert!(
            output.status.success(),
            "`{cc}` could not build {}:\n{stderr}",
            source().display()
        );
        let probe = dir.join("escape");
        std::fs::rename(&built, &probe).expect("move the built probe into place");
        probe
    })
}

/// A private copy of the Alpine rootfs with the probe at [`IN_ROOTFS`].
pub fn rootfs_with_probe(test: &str) -> RootfsCopy {
    let copy = RootfsCopy::new(test);
    let into = copy.path().join(IN_ROOTFS.trim_start_matches('/'));
    std::fs::copy(probe(), &into)
        .unwrap_or_else(|err| panic!("cannot copy the probe to {}: {err}", into.display()));
    copy
}

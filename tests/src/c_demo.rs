//! The article's program in C, `step04-full-demo/container_demo.c`, built
//! with `cc` (the C compiler that links Rust programs on Linux) for the
//! tests that hold step04 against it.
//!
//! It takes no arguments: like the article's, it chroots into `./rootfs` and
//! runs `/bin/sh`. So it is built into a directory of its own beside this
//! run's Alpine rootfs, with a `rootfs` link to it, and started there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::Runner;

/// The program's name, as the book's transcripts show it (`sudo ./container_demo`).
pub const NAME: &str = "container_demo";

/// The C source, in the repository.
pub fn source() -> PathBuf {
    crate::workspace().join("step04-full-demo/container_demo.c")
}

/// The directory it runs in: `container_demo` and `rootfs`, a link to this
/// run's Alpine rootfs. Built once per test process; fails the test, saying
/// what to install, when there is no C compiler.
pub fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let rootfs = crate::alpine_rootfs();
        // Beside the rootfs, so that it is removed with it (see rootfs.rs).
        let dir = rootfs.with_extension("c-demo");
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        let link = dir.join("rootfs");
        if std::fs::read_link(&link).ok().as_deref() != Some(rootfs) {
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(rootfs, &link)
                .unwrap_or_else(|err| panic!("cannot link {}: {err}", link.display()));
        }
        // Test processes of one run may build it at once: each writes its own
        // file, then renames it into place (a rename replaces atomically).
        let built = dir.join(format!("{NAME}.{}", std::process::id()));
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let output = Command::new(&cc)
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&built)
            .arg(source())
            .output()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run the C compiler `{cc}` to build {}: {err}\nhint: install one, e.g. \
                     `sudo apt install build-essential` (Rust needs it to link, too)",
                    source().display()
                )
            });
        assert!(
            output.status.success(),
            "`{cc}` could not build {}:\n{}",
            source().display(),
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::rename(&built, dir.join(NAME)).expect("move the built program into place");
        dir
    })
}

/// Runs the C program from its directory, the way the article runs it.
pub fn runner() -> Runner {
    let dir = dir();
    Runner::program(dir.join(NAME), Vec::<String>::new()).in_dir(dir)
}

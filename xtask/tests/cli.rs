//! `cargo xtask` as a learner runs it: the built binary, in a process of its
//! own, with the environment cargo gives it. Each test works in temporary
//! directories of its own and removes them.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use xtask::fixtures::TarBuilder;

/// The xtask binary cargo built for these tests.
const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

/// This checkout (these tests are part of it).
fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().canonicalize().unwrap()
}

/// `program` with none of the variables cargo set for this test: as a
/// learner's shell would run it, by hand.
fn by_hand(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CARGO") {
            cmd.env_remove(key);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// `program` the way `cargo xtask` (`cargo run -p xtask`) starts it in `workspace`.
fn as_cargo_runs_it(program: &Path, workspace: &Path) -> Command {
    let mut cmd = by_hand(program);
    cmd.current_dir(workspace).env("CARGO_MANIFEST_DIR", workspace.join("xtask"));
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|err| panic!("cannot run {cmd:?}: {err}"))
}

/// A small rootfs tarball: `bin/sh`, `etc/os-release`.
fn small_tarball(dir: &Path) -> PathBuf {
    TarBuilder::new()
        .file("bin/sh", 0o755, b"#!/bin/true\n")
        .file("etc/os-release", 0o755, b"ID=t\n")
        .write_to(&dir.join("small.tar"))
}

/// Every file under `dir` (but `target/` and `.git`), with its size and
/// modification time: what "nothing changed here" compares.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(current) = todo.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = entry.file_name();
            if current == dir && (name == "target" || name == ".git") {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                todo.push(path.clone());
            }
            out.push((path, meta.len(), meta.mtime()));
        }
    }
    out.sort();
    out
}

/// Copies a tree: directories, files (keeping their times, as `cp -a` does) and symlinks.
fn copy_tree(from: &Path, to: &Path) {
    let meta = fs::symlink_metadata(from).unwrap();
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from).unwrap(), to).unwrap();
    } else if meta.is_dir() {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        fs::copy(from, to)
            .unwrap_or_else(|err| panic!("copy {} to {}: {err}", from.display(), to.display()));
        let file = fs::File::options().write(true).open(to).unwrap();
        file.set_modified(meta.modified().unwrap()).unwrap();
    }
}

/// Issue 8 §1: a teacher copies the workshop with its `target/` (`cp -a
/// workshop student1`: the times are kept, so cargo rebuilds nothing, and the
/// copy's xtask is the original's binary, compiled with the original's path).
/// Run in the copy, xtask acts on the copy, and the original stays as it was.
#[test]
fn a_copy_of_the_checkout_acts_on_the_copy_only() {
    let original = checkout();
    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("student1");
    // The checkout, without the build and git (they change under a running test suite),
    fs::create_dir_all(&copy).unwrap();
    for entry in fs::read_dir(&original).unwrap() {
        let name = entry.unwrap().file_name();
        if !["target", ".git", "rootfs", ".exercise"].contains(&&*name.to_string_lossy()) {
            copy_tree(&original.join(&name), &copy.join(&name));
        }
    }
    // ... and with the part of target/ that matters here: the xtask binary.
    fs::create_dir_all(copy.join("target/debug")).unwrap();
    copy_tree(Path::new(XTASK), &copy.join("target/debug/xtask"));
    let copied_xtask = copy.join("target/debug/xtask");
    let tarball = small_tarball(scratch.path());
    let step01 = original.join("step01-chroot/src/main.rs");
    let (before, step01_before) = (listing(&original), fs::read(&step01).unwrap());

    // `cargo xtask rootfs` and `cargo xtask exercise step01`, in the copy.
    let rootfs = run(as_cargo_runs_it(&copied_xtask, &copy)
        .args(["rootfs", "--dest", "myroot"])
        .arg("--from-tar")
        .arg(&tarball));
    let exercise = run(as_cargo_runs_it(&copied_xtask, &copy).args(["exercise", "step01"]));
    // The copy's binary run by hand, from a directory inside the copy.
    let by_hand_inside = run(by_hand(&copied_xtask)
        .current_dir(copy.join("book"))
        .args(["rootfs", "--dest", "myroot2"])
        .arg("--from-tar")
        .arg(&tarball));
    // The original's binary run by hand in the copy: it would act on one with the other's code.
    let foreign = run(by_hand(Path::new(XTASK))
        .current_dir(&copy)
        .args(["rootfs", "--dest", "myroot3"])
        .arg("--from-tar")
        .arg(&tarball));
    // Outside any workspace, it cannot tell which one to act on.
    let outside = run(by_hand(&copied_xtask)
        .current_dir(scratch.path())
        .args(["rootfs", "--dest", "myroot4"])
        .arg("--from-tar")
        .arg(&tarball));

    // Whatever happened, put the original back before asserting anything.
    let after = listing(&original);
    if fs::read(&step01).unwrap() != step01_before {
        fs::write(&step01, &step01_before).unwrap();
    }
    for n in ["", "2", "3", "4"] {
        for made in [format!("myroot{n}"), format!(".myroot{n}.xtask-stamp"), ".exercise".into()] {
            let path = original.join(made);
            if !before.iter().any(|(p, _, _)| *p == path) {
                let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
            }
        }
    }

    assert!(rootfs.status.success(), "{}", text(&rootfs.stderr));
    assert!(text(&rootfs.stdout).contains("rootfs: ready at ./myroot"), "{}", text(&rootfs.stdout));
    assert!(copy.join("myroot/bin/sh").is_file() && copy.join(".myroot.xtask-stamp").is_file());
    assert!(exercise.status.success(), "{}", text(&exercise.stderr));
    assert!(copy.join(".exercise/solutions/step01-chroot.rs").is_file());
    assert_ne!(fs::read(copy.join("step01-chroot/src/main.rs")).unwrap(), step01_before);
    assert!(by_hand_inside.status.success(), "{}", text(&by_hand_inside.stderr));
    assert!(copy.join("myroot2/bin/sh").is_file());

    assert_eq!(foreign.status.code(), Some(1), "{foreign:?}");
    let refusal = text(&foreign.stderr);
    assert!(
        refusal.contains(&format!("belongs to the workspace {}", original.display()))
            && refusal.contains(&format!(
                "current directory is in another one, {}",
                copy.canonicalize().unwrap().display()
            ))
            && refusal.contains("hint: run `cargo xtask ...` in"),
        "{refusal}"
    );
    assert!(!copy.join("myroot3").exists());
    assert_eq!(outside.status.code(), Some(1), "{outside:?}");
    assert!(text(&outside.stderr).contains("not inside the workshop"), "{}", text(&outside.stderr));
    assert!(!scratch.path().join("myroot4").exists());

    let changed: Vec<_> = after.iter().filter(|entry| !before.contains(entry)).collect();
    assert!(changed.is_empty(), "xtask run in the copy changed the original: {changed:#?}");
}

/// Issue 8 §4: with stderr a pipe nobody reads, or closed (`2>&-`), an error
/// is still an error, with its documented status (1), not a panic (101).
#[test]
fn errors_keep_their_status_when_stderr_is_closed() {
    let workspace = checkout();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let to_nowhere = run(as_cargo_runs_it(Path::new(XTASK), &workspace)
        .args(["rootfs", "--dest", "/"])
        .stdout(Stdio::null())
        .stderr(writer));
    assert_eq!(to_nowhere.status.code(), Some(1), "{to_nowhere:?}");

    let mut closed = as_cargo_runs_it(Path::new(XTASK), &workspace);
    closed.args(["rootfs", "--dest", "/"]).stdout(Stdio::null());
    // SAFETY: close(2) is async-signal-safe.
    unsafe {
        closed.pre_exec(|| {
            libc::close(2);
            Ok(())
        })
    };
    let status = closed.status().unwrap();
    assert_eq!(status.code(), Some(1), "{status:?}");

    // And the message itself, when someone reads it.
    let shown = run(as_cargo_runs_it(Path::new(XTASK), &workspace).args(["rootfs", "--dest", "/"]));
    assert_eq!(shown.status.code(), Some(1));
    assert!(text(&shown.stderr).starts_with("xtask: refusing /"), "{}", text(&shown.stderr));
}

/// The suite's Alpine tarball, from `ALPINE_MINIROOTFS` or the download
/// cache; a failure that says how to get it when neither has it.
fn alpine_tarball() -> PathBuf {
    xtask::download::alpine_tarball().unwrap_or_else(|err| {
        panic!(
            "this test needs the Alpine 3.20.3 minirootfs: {}\nhint: set \
             ALPINE_MINIROOTFS=/path/to/alpine-minirootfs-3.20.3-<arch>.tar.gz, or run \
             `cargo xtask rootfs` once to cache it",
            xtask::report(&err)
        )
    })
}

/// Issue 9 §3: offline, a tarball given once by `ALPINE_MINIROOTFS` is
/// checked and cached, so the next run works without the variable.
#[test]
fn a_tarball_given_once_is_cached_for_the_next_run() {
    let tarball = alpine_tarball();
    let scratch = tempfile::tempdir().unwrap();
    let cache = scratch.path().join("cache");
    let xtask = |dest: &str| {
        let mut cmd = as_cargo_runs_it(Path::new(XTASK), &checkout());
        cmd.args(["rootfs", "--dest"])
            .arg(scratch.path().join(dest))
            .env("XDG_CACHE_HOME", &cache)
            // No network: nothing listens on the discard port of this machine.
            .env("ALPINE_MIRROR", "http://127.0.0.1:9/alpine")
            .env_remove("ALPINE_MINIROOTFS");
        cmd
    };
    let first = run(xtask("first").env("ALPINE_MINIROOTFS", &tarball));
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = run(&mut xtask("second"));
    assert!(
        second.status.success(),
        "the second run, without ALPINE_MINIROOTFS, did not find the tarball in the cache:\n{}",
        text(&second.stderr)
    );
    assert!(text(&second.stdout).contains("rootfs: ready at"), "{}", text(&second.stdout));
    assert!(!text(&second.stderr).contains("downloading"), "{}", text(&second.stderr));
    let cached = cache.join("container-workshop").join(tarball.file_name().unwrap());
    assert_eq!(fs::read(&cached).unwrap(), fs::read(&tarball).unwrap());
}

/// Issue 8 §3, "concurrent runs": five `cargo xtask rootfs` into one
/// directory at once all succeed: one extracts, the others wait for it.
#[test]
fn concurrent_rootfs_runs_wait_for_each_other() {
    let tarball = alpine_tarball();
    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("rootfs");
    let children: Vec<_> = (0..5)
        .map(|_| {
            as_cargo_runs_it(Path::new(XTASK), &checkout())
                .args(["rootfs", "--dest"])
                .arg(&dest)
                .env("ALPINE_MINIROOTFS", &tarball)
                .env("XDG_CACHE_HOME", scratch.path().join("cache"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> =
        children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for output in &outputs {
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    let ready = outputs.iter().filter(|o| text(&o.stdout).contains("rootfs: ready at")).count();
    let there = outputs.iter().filter(|o| text(&o.stdout).contains("is already there")).count();
    assert_eq!((ready, there), (1, 4), "{outputs:#?}");
    assert_eq!(fs::read_to_string(dest.join("etc/alpine-release")).unwrap(), "3.20.3\n");
}

/// Issue 8 §3: the summary says what was left out of a hostile tarball, and
/// `--help` says what `--force` does and why keeping setuid is dangerous.
#[test]
fn the_summary_and_the_help_say_what_is_left_out() {
    let scratch = tempfile::tempdir().unwrap();
    let tarball = TarBuilder::new()
        .file("bin/rootsh", 0o4755, b"sh\n")
        .device("dev/null", tar::EntryType::Char, 0o666, (1, 3))
        .write_to(&scratch.path().join("hostile.tar"));

    let out = run(as_cargo_runs_it(Path::new(XTASK), &checkout())
        .args(["rootfs", "--dest"])
        .arg(scratch.path().join("rootfs"))
        .arg("--from-tar")
        .arg(&tarball));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(summary.contains("setuid:  dropped the setuid/setgid bits of bin/rootsh"), "{summary}");
    assert!(summary.contains("devices: left out 1 device node(s), dev/null"), "{summary}");
    assert!(
        summary.contains("whole:   yes: tar's end-of-archive marker came after 2 entries"),
        "{summary}"
    );

    let help = text(
        &run(by_hand(Path::new(XTASK)).current_dir(checkout()).args(["rootfs", "--help"])).stdout,
    );
    assert!(help.contains("--keep-setuid-and-devices") && help.contains("DANGEROUS"), "{help}");
    assert!(help.contains("A directory it did not fill is never touched"), "{help}");
}

/// Issue 8 §6: the project knows no path outside itself: the tests take the
/// tarball from `ALPINE_MINIROOTFS` or the download cache, never from a
/// place beside the repository.
#[test]
fn no_source_names_a_path_outside_the_repository() {
    let beside = ["..", "shared"].join("/"); // not spelled out, or this file would match
    let mut found = Vec::new();
    let mut todo = vec![checkout().join("xtask"), checkout().join("tests")];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && fs::read_to_string(&path).unwrap().contains(&beside)
            {
                found.push(path);
            }
        }
    }
    assert!(found.is_empty(), "these name a path beside the repository: {found:#?}");
}

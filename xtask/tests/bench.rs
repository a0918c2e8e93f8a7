//! `cargo xtask bench --quick` works: it runs to the end, writes results that
//! parse and hold every step, and leaves the host as it found it.
//!
//! It never judges a time: speed belongs to the bench, whose numbers depend on
//! the machine and on what else runs on it.
//!
//! The bench needs root and builds the steps in release mode, which takes a
//! while the first time, so plain `cargo test` skips this test; CI runs it as
//! root with `cargo test -p xtask --test bench -- --ignored`.

use std::path::Path;
use std::process::Command;

use xtask::bench::results::{Kind, Results};

#[test]
#[ignore = "needs root and release builds: run `cargo test -p xtask --test bench -- --ignored` as root"]
fn bench_quick_writes_results_that_parse() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "`cargo xtask bench` needs root, and so does this test: run it as root, e.g. \
         cargo test -p xtask --test bench --config 'target.\"cfg(all())\".runner = \"sudo -E\"' -- --ignored"
    );
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--quick", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}\n{stdout}\n{stderr}", output.status);

    let json = std::fs::read_to_string(out.path().join("results.json")).unwrap();
    let results: Results = serde_json::from_str(&json).unwrap();
    assert!(results.quick && results.runs > 0, "{results:?}");
    let steps = ["step01", "step02", "step03", "step04", "step05", "step06", "step07", "step08"];
    for name in std::iter::once("/bin/true").chain(steps) {
        let timing = results.timing(name).unwrap_or_else(|| panic!("no {name} in {json}"));
        assert_eq!(timing.runs, results.runs, "{name}");
        assert!(timing.min_ms > 0.0 && timing.min_ms <= timing.median_ms, "{timing:?}");
        assert!(timing.peak_rss_kib > 0, "{timing:?}");
    }
    // Each step is compared with the command it imitates (all are installed on CI).
    for step in steps {
        let compared = results.comparisons.iter().find(|c| c.step == step && c.rss_target);
        let against = compared.map(|c| results.timing(&c.against).map(|t| t.kind));
        assert!(
            matches!(against, Some(Some(Kind::Counterpart | Kind::Floor))),
            "{step} has no counterpart in {json}"
        );
    }
    // Where /run is on disk (this development machine, a small VM), the last
    // step runs a second time with its layers on a tmpfs, named so.
    let run_is_tmpfs = nix::sys::statfs::statfs("/run")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
    let on_tmpfs = results.timing("step08, its layer on a tmpfs");
    assert_eq!(on_tmpfs.is_some(), !run_is_tmpfs, "/run a tmpfs: {run_is_tmpfs}; {json}");
    if let Some(timing) = on_tmpfs {
        assert_eq!(timing.kind, Kind::Variant, "{timing:?}");
        assert!(timing.command.contains("--containers-dir /dev/shm/"), "{timing:?}");
        assert!(results.notes.iter().any(|n| n.contains("/run is not a tmpfs")), "{json}");
    }
    for operation in ["unshare(CLONE_NEWNS)", "unshare(CLONE_NEWPID)", "unshare(CLONE_NEWNET)"] {
        assert!(results.kernel.iter().any(|k| k.name == operation), "no {operation} in {json}");
    }

    let markdown = std::fs::read_to_string(out.path().join("results.md")).unwrap();
    assert!(markdown.contains("**Start to exit of `/bin/true`**"), "{markdown}");
    assert!(stdout.contains(&markdown), "the terminal shows the same table:\n{stdout}");
    let svg = std::fs::read_to_string(out.path().join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
    assert!(svg.contains(">\nstep04\n<") && svg.contains("Firecracker"), "{svg}");

    // Nothing left behind: no bundle (so no container), no mount.
    let work =
        Path::new(env!("CARGO_BIN_EXE_xtask")).parent().unwrap().parent().unwrap().join("bench");
    let bundles: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("oci-"))
        .collect();
    assert!(bundles.is_empty(), "bundles left in {}: {bundles:?}", work.display());
    let layers = Path::new("/dev/shm/workshop-bench-layers");
    assert!(!layers.exists(), "the bench left {} behind", layers.display());
    assert_eq!(
        std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        mounts_before,
        "the bench left mounts behind (or another test on this machine mounted something: re-run)"
    );
}

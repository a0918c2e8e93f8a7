//! `cargo xtask bench`: how long does it take to start a container, and why so little?
//!
//! It times start-to-exit of `/bin/true` run by each step, next to the command
//! each step imitates, the real runtimes that are installed, and the floor
//! (`/bin/true` alone, then in a chroot); then what single kernel operations
//! cost. The numbers go to the terminal as a table, and to a results directory
//! as Markdown, JSON and an SVG chart; `--book` also puts them in the book.
//!
//! How it measures:
//!
//! - the steps are built in release mode and linked statically ([`build`]);
//! - every command runs many times, round-robin, after warm-up rounds, so that
//!   noise from the rest of the machine hits all of them alike; the tables
//!   give the median and the fastest run;
//! - a small program of its own, `bench-runner`, starts the commands: see its
//!   header for why, and for how the peak RSS of each run is read;
//! - kernel operations are timed alone, each in a child process ([`kernel`]).
//!
//! It needs root, like the steps. It prepares its own root filesystem under
//! `target/bench/` (with the code of `cargo xtask rootfs`), and leaves nothing
//! mounted, running or registered with a runtime.

pub mod chart;
pub mod kernel;
pub mod oci;
pub mod plan;
pub mod report;
pub mod results;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};

use crate::workspace_root;
use results::{Kind, Results, Timing};

/// The options of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// A few runs of each command, to check that the bench works (the numbers mean little).
    #[arg(long)]
    pub quick: bool,
    /// Also write the results into the book (book/src/bench/), for its chapter "How light is a container?".
    #[arg(long, conflicts_with = "quick")]
    pub book: bool,
    /// Measured rounds (each round runs every command once) [default: 300, or 5 with --quick].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: Option<u32>,
    /// Where to write results.md, results.json and chart.svg [default: target/bench/<date-time>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

impl Options {
    fn rounds(&self) -> (usize, usize) {
        let runs = self.runs.map(|n| n as usize);
        if self.quick { (1, runs.unwrap_or(5)) } else { (20, runs.unwrap_or(300)) }
    }
}

/// One command to time.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    kind: Kind,
    /// As shown in the tables.
    shown: String,
    argv: Vec<String>,
    /// A directory to unmount, in a mount namespace of the case's own, before it runs.
    hide: Option<PathBuf>,
}

/// Runs the bench; returns the exit code.
pub fn bench(options: &Options) -> Result<i32> {
    if !cfg!(target_os = "linux") {
        bail!("the bench starts Linux containers: run it on Linux (or in a Linux VM)");
    }
    if !crate::is_root() {
        bail!(
            "the bench needs root: the steps and the runtimes it starts make namespaces, mount and chroot\n\
             hint: run it as root, e.g. from a root shell in which cargo works (`sudo -i`, then `cargo xtask bench` here)\n\
             hint: or keep your toolchain: sudo -E env \"PATH=$PATH\" cargo xtask bench"
        );
    }
    let (warmup, runs) = options.rounds();
    let date = jiff::Timestamp::now();

    // Build first: it tells us where the target directory is.
    let runner = build_runner()?;
    let target =
        runner.parent().and_then(Path::parent).context("where is the target directory?")?;
    let work = target.join("bench");
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let _lock = lock(&work)?;
    let left = oci::clean_leftovers(&work);
    if left > 0 {
        eprintln!(
            "note: cleaned up after an earlier bench that was interrupted ({left} bundle(s))"
        );
    }
    let (steps, mut notes) = plan::existing_steps(workspace_root());
    let binaries = build_steps(&steps)?;
    // From here on, Ctrl-C stops what runs and lets us clean up.
    let interrupt = InterruptGuard::install();

    let rootfs = work.join("rootfs");
    let prepared = crate::prepare(&rootfs, &crate::Source::Alpine, false)?;
    if prepared.extracted.is_some() {
        eprint!("{prepared}");
    }
    let rootfs = prepared.dest;
    let bundle = oci::Bundle::new(&work, &rootfs)?;

    let layers = plan::makes_a_layer(&steps).then(|| TmpfsLayers::make(&mut notes)).flatten();
    let (cases, comparisons) =
        cases(&steps, &binaries, &rootfs, &bundle, layers.as_ref(), &mut notes);
    let (cgroups, layout) = kernel::cgroup_hierarchies();
    let cases = check(cases, &work, kernel::hybrid_v2_tree().as_deref(), &mut notes);
    let scratch = work.join("overlay-scratch");
    fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    let operations = kernel::operations(&rootfs, &scratch, &cgroups)?;
    let _cgroups_removed = RemoveOnDrop(&operations);
    let operations = check_operations(&operations, &mut notes);

    let progress =
        indicatif::ProgressBar::new(((warmup + runs) * (cases.len() + operations.len())) as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{msg:28} [{bar:40}] {pos}/{len} runs, {eta} left")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    stop_if_interrupted()?;
    progress.set_message("starting /bin/true");
    let samples = measure_startup(&runner, &cases, warmup, runs, &work, &progress)?;
    progress.set_message("timing kernel operations");
    let kernel = measure_kernel(&operations, warmup.min(10), runs, &progress, &mut notes)?;
    progress.finish_and_clear();
    drop(interrupt);

    let left = oci::containers_left(&bundle);
    if !left.is_empty() {
        notes.push(format!("containers left by a runtime, now deleted: {}", left.join(", ")));
    }
    drop(bundle);
    let _ = fs::remove_dir(&scratch);

    let startup = timings(&cases, &samples, runs, &mut notes);
    let comparisons = compare(&startup, &comparisons);
    let results = Results {
        schema: 1,
        date: date.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        quick: options.quick,
        warmup,
        runs,
        machine: machine(layout, &cases),
        startup,
        comparisons,
        kernel,
        notes,
    };
    let out = match &options.out {
        Some(dir) => crate::from_workspace_root(dir),
        None => work.join(date.strftime("%Y-%m-%d-%H%M%S").to_string()),
    };
    let markdown = report::markdown(&results);
    write_results(&out, "results.md", &results, &markdown)?;
    hand_back(&work);
    hand_back(&out);
    if options.book {
        // Not .md: the chapter includes it, and every .md file of the book is a chapter.
        let book = workspace_root().join("book/src/bench");
        write_results(&book, "results.txt", &results, &markdown)?;
        hand_back(&book);
    }
    println!("{markdown}");
    println!("Written to {}: results.md, results.json, chart.svg", crate::display_path(&out));
    if options.book {
        println!(
            "and to book/src/bench/ (the table as results.txt), for the chapter \"How light is a container?\""
        );
    }
    Ok(0)
}

/// Writes `markdown` (as `markdown_name`), `results.json` and `chart.svg` into `dir`.
fn write_results(dir: &Path, markdown_name: &str, results: &Results, markdown: &str) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::to_string_pretty(results).context("cannot write the results as JSON")?;
    for (name, text) in [
        (markdown_name, markdown.to_owned()),
        ("results.json", json + "\n"),
        ("chart.svg", chart::svg(results)?),
    ] {
        let path = dir.join(name);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

// Building.

/// `cargo build` with the cargo that runs us, as the user who ran sudo (if
/// one did), so that the target directory stays theirs. Returns the paths of
/// the executables built, by name.
fn cargo_build(args: &[String]) -> Result<HashMap<String, PathBuf>> {
    let (mut command, cargo) = crate::cargo();
    command.arg("build").args(args).arg("--message-format=json-render-diagnostics");
    command.current_dir(workspace_root()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    if let Some((uid, gid)) = sudo_user() {
        use std::os::unix::process::CommandExt;
        command.uid(uid).gid(gid);
        // Their toolchain and crates are under their home (rustup, ~/.cargo).
        if let Ok(Some(user)) = nix::unistd::User::from_uid(uid.into()) {
            command.env("HOME", user.dir);
        }
    }
    let output = command.output().with_context(|| format!("cannot run {cargo}"))?;
    if !output.status.success() {
        bail!("the build failed (cargo's messages are above)");
    }
    let mut built = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if let (Some(name), Some(path)) =
            (message["target"]["name"].as_str(), message["executable"].as_str())
        {
            built.insert(name.to_owned(), PathBuf::from(path));
        }
    }
    Ok(built)
}

/// Builds the runner, in the usual debug profile: it only forks and waits.
fn build_runner() -> Result<PathBuf> {
    let args = ["-p", "xtask", "--bin", "bench-runner"].map(String::from);
    cargo_build(&args)?.remove("bench-runner").context("cargo did not say where bench-runner is")
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc).arg("-vV").output().context("cannot run rustc -vV")?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV did not say which host this is")
}

/// The arguments that build `crates` as the bench runs them: release mode,
/// and, with glibc, linked statically (see the book's chapter for why).
/// `--target` is spelled out so the static flag only reaches the steps, not
/// the build scripts and proc-macros cargo builds for the host.
pub fn release_build_args(triple: &str, crates: &[&str]) -> Vec<String> {
    let mut args = vec!["--release".to_owned(), "--target".to_owned(), triple.to_owned()];
    if triple.ends_with("-linux-gnu") {
        args.push("--config".into());
        args.push(format!("target.{triple}.rustflags=[\"-C\", \"target-feature=+crt-static\"]"));
    }
    for name in crates {
        args.push("-p".into());
        args.push((*name).to_owned());
    }
    args
}

/// Builds the steps as the bench runs them, and the last one again as a plain
/// `cargo build --release` makes it (linked dynamically): see [`dynamic_key`].
fn build_steps(steps: &[plan::StepCase]) -> Result<HashMap<String, PathBuf>> {
    let Some(last) = steps.last() else { return Ok(HashMap::new()) };
    let crates: Vec<&str> = steps.iter().map(|s| s.binary).collect();
    let mut built = HashMap::new();
    let plain = ["--release".to_owned(), "-p".to_owned(), last.binary.to_owned()];
    for (args, dynamic) in
        [(release_build_args(&host_triple()?, &crates), false), (plain.to_vec(), true)]
    {
        let shown: Vec<String> = args.iter().map(|a| crate::shell_quote(a)).collect();
        eprintln!("+ cargo build {}", shown.join(" "));
        for (name, path) in cargo_build(&args)? {
            built.insert(if dynamic { dynamic_key(&name) } else { name }, path);
        }
    }
    Ok(built)
}

/// Where [`build_steps`] files the dynamically linked build of `binary`.
fn dynamic_key(binary: &str) -> String {
    format!("{binary} (dynamic)")
}

// What to run.

/// The cases to time, in the order the tables show them, and the pairs to compare
/// (step, other, time target, whether the RSS target applies).
#[allow(clippy::type_complexity)]
fn cases(
    steps: &[plan::StepCase],
    binaries: &HashMap<String, PathBuf>,
    rootfs: &Path,
    bundle: &oci::Bundle,
    layers: Option<&TmpfsLayers>,
    notes: &mut Vec<String>,
) -> (Vec<Case>, Vec<(String, String, f64, bool)>) {
    let mut cases: Vec<Case> = Vec::new();
    let add = |cases: &mut Vec<Case>, case: Case| -> String {
        match cases.iter().find(|c| c.argv == case.argv) {
            Some(same) => same.name.clone(),
            None => {
                let name = case.name.clone();
                cases.push(case);
                name
            }
        }
    };
    let command_case = |args: &[&str], kind| Case {
        name: plan::shown(args),
        kind,
        shown: plan::shown(args),
        argv: plan::with_rootfs(args, rootfs),
        hide: None,
    };
    for floor in plan::FLOOR {
        if crate::find_in_path(floor[0]).is_some() || floor[0].starts_with('/') {
            add(&mut cases, command_case(floor, Kind::Floor));
        }
    }
    let mut pairs = Vec::new();
    for step in steps {
        let counterpart = match step.counterpart.first() {
            Some(program) if crate::find_in_path(program).is_some() => {
                let mut case = command_case(step.counterpart, Kind::Counterpart);
                if !step.counterpart_name.is_empty() {
                    case.name = step.counterpart_name.to_owned(); // a script: its gist
                }
                Some(add(&mut cases, case))
            }
            Some(program) => {
                notes.push(format!(
                    "{}'s counterpart: {program} is not installed: skipped",
                    step.name
                ));
                None
            }
            None => None,
        };
        let Some(binary) = binaries.get(step.binary) else {
            notes.push(format!("{}: cargo built no {} binary: skipped", step.name, step.binary));
            continue;
        };
        let mut argv = vec![binary.to_string_lossy().into_owned()];
        argv.extend(plan::with_rootfs(step.args, rootfs));
        let name = add(
            &mut cases,
            Case {
                name: step.name.to_owned(),
                kind: Kind::Step,
                shown: format!("{} {}", step.binary, plan::shown(step.args)),
                argv,
                hide: None,
            },
        );
        if let Some(counterpart) = counterpart {
            pairs.push((name, counterpart, plan::STEP_TARGET, true));
        }
    }
    // The last step once more, as a plain `cargo build --release` makes it:
    // what linking statically changes.
    if let Some(step) = steps.last()
        && let Some(binary) = binaries.get(&dynamic_key(step.binary))
    {
        let mut argv = vec![binary.to_string_lossy().into_owned()];
        argv.extend(plan::with_rootfs(step.args, rootfs));
        let shown = format!("{} {}", step.binary, plan::shown(step.args));
        let name = format!("{}, linked dynamically", step.name);
        add(&mut cases, Case { name, kind: Kind::Variant, shown, argv, hide: None });
    }
    // And, on a machine where /run is on disk, the last step once more with
    // its layer on a tmpfs, as on a machine where /run is one; it is compared
    // with the runtimes too, next to the last step as it runs here.
    let mut on_tmpfs = None;
    if let Some(step) = steps.last()
        && let Some(binary) = binaries.get(step.binary)
        && layers.is_some()
    {
        let mut args = vec!["--containers-dir", plan::TMPFS_LAYERS];
        args.extend(step.args);
        let mut argv = vec![binary.to_string_lossy().into_owned()];
        argv.extend(plan::with_rootfs(&args, rootfs));
        let shown = format!("{} {}", step.binary, plan::shown(&args));
        let name = format!("{}, its layer on a tmpfs", step.name);
        on_tmpfs =
            Some(add(&mut cases, Case { name, kind: Kind::Variant, shown, argv, hide: None }));
    }
    let last_step = steps.last().map(|s| s.name.to_owned());
    for runtime in plan::RUNTIMES {
        if crate::find_in_path(runtime.name).is_none() {
            notes.push(format!("{}: not installed, skipped ({})", runtime.name, runtime.get_it));
            continue;
        }
        let name = add(
            &mut cases,
            Case {
                name: runtime.name.to_owned(),
                kind: Kind::Runtime,
                shown: oci::Bundle::shown(runtime.name),
                argv: bundle.run_args(runtime.name),
                hide: None,
            },
        );
        let Some(target) = runtime.target else { continue };
        for step in last_step.iter().chain(&on_tmpfs) {
            pairs.push((step.clone(), name.clone(), target, false));
        }
    }
    (cases, pairs)
}

/// Runs each case once, showing its errors: the cases that fail are left out,
/// with a note saying why. A runtime that fails on a hybrid cgroup layout
/// (crun refuses one) gets a second chance without the v2 tree (`hybrid_v2`).
fn check(
    cases: Vec<Case>,
    work: &Path,
    hybrid_v2: Option<&Path>,
    notes: &mut Vec<String>,
) -> Vec<Case> {
    let mut kept = Vec::new();
    for mut case in cases {
        let first = run_once(&case, work);
        let why = match first {
            Ok(()) => {
                kept.push(case);
                continue;
            }
            Err(why) => why,
        };
        if let (Kind::Runtime, Some(tree)) = (case.kind, hybrid_v2) {
            case.hide = Some(tree.to_owned());
            if run_once(&case, work).is_ok() {
                notes.push(format!(
                    "{}: refuses this machine's hybrid cgroups ({why}); it runs in a mount namespace \
                     without {}, so it sees, and uses, cgroup v1 only (which adds about 0.2 ms to each of its runs)",
                    case.name,
                    tree.display()
                ));
                kept.push(case);
                continue;
            }
        }
        notes.push(format!("{}: failed, left out ({why})", case.name));
    }
    kept
}

/// Runs `case` once, as the runner will; on failure, says why.
fn run_once(case: &Case, work: &Path) -> Result<(), String> {
    let argv: Vec<String> = case.argv.iter().map(|a| a.replace("{run}", "check")).collect();
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).current_dir(work).stdin(Stdio::null());
    if let Some(dir) = &case.hide {
        use std::os::unix::process::CommandExt;
        let dir = dir.clone();
        // SAFETY: unshare(2) and mount(2) calls only (nix copies short paths on the stack).
        unsafe {
            command.pre_exec(move || {
                use nix::mount::{MntFlags, MsFlags, mount, umount2};
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
                let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
                mount(None::<&str>, "/", None::<&str>, private, None::<&str>)?;
                umount2(&dir, MntFlags::MNT_DETACH)?;
                Ok(())
            })
        };
    }
    match command.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(format!("{}: {}", out.status, stderr.trim().lines().last().unwrap_or("")))
        }
        Err(err) => Err(err.to_string()),
    }
}

// Measuring.

/// Per case: each measured run's milliseconds and peak RSS (KiB), and the
/// first failed run's wait status, if any.
type Samples = Vec<(Vec<f64>, Vec<u64>, Option<i32>)>;

/// Has the runner start every case `warmup + runs` times, round-robin.
fn measure_startup(
    runner: &Path,
    cases: &[Case],
    warmup: usize,
    runs: usize,
    work: &Path,
    progress: &indicatif::ProgressBar,
) -> Result<Samples> {
    let mut samples: Samples = vec![(Vec::new(), Vec::new(), None); cases.len()];
    if cases.is_empty() {
        return Ok(samples);
    }
    let mut plan = format!("rounds\t{warmup}\t{runs}\n");
    for case in cases {
        if case.argv.iter().any(|a| a.contains(['\t', '\n'])) {
            bail!("{}: an argument holds a tab or a newline", case.name);
        }
        let hide = case.hide.as_ref().map_or("-".into(), |dir| dir.to_string_lossy());
        plan += &format!("case\t{hide}\t{}\n", case.argv.join("\t"));
    }
    let mut child = Command::new(runner)
        .current_dir(work)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", runner.display()))?;
    child.stdin.take().context("no stdin")?.write_all(plan.as_bytes())?;
    let stdout = BufReader::new(child.stdout.take().context("no stdout")?);
    for line in stdout.lines() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            // SIGTERM reached us alone (Ctrl-C reaches the runner too): stop it.
            let _ = child.kill();
            let _ = child.wait();
            return stop_if_interrupted().map(|()| samples);
        }
        let line = line.context("cannot read from the runner")?;
        let fields: Vec<&str> = line.split(' ').collect();
        let [round, case, nanos, rss, status] = fields[..] else {
            bail!("the runner said {line:?}");
        };
        let (round, case): (usize, usize) = (round.parse()?, case.parse()?);
        let sample = samples.get_mut(case).context("the runner named no such case")?;
        let status: i32 = status.parse()?;
        if status != 0 && sample.2.is_none() {
            sample.2 = Some(status);
        }
        if round >= warmup {
            sample.0.push(nanos.parse::<f64>()? / 1e6);
            sample.1.push(rss.parse()?);
        }
        progress.inc(1);
    }
    let status = child.wait()?;
    stop_if_interrupted()?;
    if !status.success() {
        bail!("the bench's runner failed ({status}; its message is above)");
    }
    Ok(samples)
}

fn check_operations<'a>(
    operations: &'a [kernel::Operation],
    notes: &mut Vec<String>,
) -> Vec<&'a kernel::Operation> {
    operations
        .iter()
        .filter(|op| match op.time() {
            Ok(_) => true,
            Err(err) => {
                notes.push(format!("{}: left out ({err:#})", op.name));
                false
            }
        })
        .collect()
}

/// Times each operation `warmup + runs` times, round-robin.
fn measure_kernel(
    operations: &[&kernel::Operation],
    warmup: usize,
    runs: usize,
    progress: &indicatif::ProgressBar,
    notes: &mut Vec<String>,
) -> Result<Vec<results::KernelCost>> {
    let mut times: Vec<Option<Vec<f64>>> = vec![Some(Vec::new()); operations.len()];
    for round in 0..warmup + runs {
        for k in 0..operations.len() {
            stop_if_interrupted()?;
            let i = (k + round) % operations.len();
            progress.inc(1);
            let Some(list) = &mut times[i] else { continue };
            match operations[i].time() {
                Ok(took) if round >= warmup => list.push(took.as_secs_f64() * 1e6),
                Ok(_) => {}
                Err(err) => {
                    notes.push(format!(
                        "{}: failed in round {round}, left out ({err:#})",
                        operations[i].name
                    ));
                    times[i] = None;
                }
            }
        }
    }
    Ok(operations
        .iter()
        .zip(times)
        .filter_map(|(op, times)| {
            let times = times?;
            Some(results::KernelCost {
                name: op.name.clone(),
                about: op.about.clone(),
                runs: times.len(),
                median_us: results::median(&times),
                min_us: results::min(&times),
            })
        })
        .collect())
}

fn timings(cases: &[Case], samples: &Samples, runs: usize, notes: &mut Vec<String>) -> Vec<Timing> {
    let mut timings = Vec::new();
    for (case, (ms, rss, failed)) in cases.iter().zip(samples) {
        if let Some(status) = failed {
            notes.push(format!("{}: a run failed (wait status {status}): left out", case.name));
            continue;
        }
        if ms.len() != runs {
            notes.push(format!("{}: {} of {runs} runs measured: left out", case.name, ms.len()));
            continue;
        }
        let rss: Vec<f64> = rss.iter().map(|&kib| kib as f64).collect();
        timings.push(Timing {
            name: case.name.clone(),
            kind: case.kind,
            command: case.shown.clone(),
            runs,
            median_ms: results::median(ms),
            min_ms: results::min(ms),
            peak_rss_kib: results::median(&rss).round() as u64,
        });
    }
    timings
}

fn compare(startup: &[Timing], pairs: &[(String, String, f64, bool)]) -> Vec<results::Comparison> {
    let find = |name: &str| startup.iter().find(|t| t.name == name);
    pairs
        .iter()
        .filter_map(|(step, other, target, rss)| {
            Some(results::compare(find(step)?, find(other)?, *target, *rss))
        })
        .collect()
}

// The machine.

fn machine(cgroups: String, cases: &[Case]) -> results::Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    let memory_kib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| field(&m, "MemTotal"))
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    let os = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| "unknown OS".into());
    let mut tools = Vec::new();
    let mut version = |name: &str, program: &str| {
        if let Ok(out) = Command::new(program).arg("--version").output()
            && let Some(line) = String::from_utf8_lossy(&out.stdout).lines().next()
        {
            tools.push(results::Tool { name: name.into(), version: line.trim().to_owned() });
        }
    };
    let programs: Vec<&str> = cases
        .iter()
        .filter(|c| c.kind != Kind::Step)
        .map(|c| c.argv[0].as_str())
        .filter(|p| !p.starts_with('/'))
        .collect();
    let mut seen = Vec::new();
    for program in programs {
        if !seen.contains(&program) {
            seen.push(program);
            version(program, program);
        }
    }
    version("rustc", &std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()));
    results::Machine {
        cpu: field(&cpuinfo, "model name").unwrap_or_else(|| std::env::consts::ARCH.to_owned()),
        cpus: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        memory_mib: memory_kib / 1024,
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        os,
        virtual_machine: field(&cpuinfo, "flags")
            .is_some_and(|f| f.split(' ').any(|w| w == "hypervisor")),
        cgroups,
        tools,
    }
}

// Housekeeping.

/// One bench at a time in a target directory: a second one would delete the
/// first one's containers as leftovers.
fn lock(work: &Path) -> Result<fs::File> {
    let path = work.join(".lock");
    let file =
        fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => {
            bail!(
                "another `cargo xtask bench` is running in this workspace\nhint: wait for it to finish"
            )
        }
        Err(fs::TryLockError::Error(err)) => {
            Err(err).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// The user who ran `sudo`, if one did: (uid, gid).
fn sudo_user() -> Option<(u32, u32)> {
    let id = |name| std::env::var(name).ok()?.parse().ok();
    Some((id("SUDO_UID")?, id("SUDO_GID")?)).filter(|(uid, _)| *uid != 0)
}

/// Under sudo, gives `dir` back to the user who ran it, so that their
/// `cargo clean` can remove it.
fn hand_back(dir: &Path) {
    let Some((uid, gid)) = sudo_user() else { return };
    fn walk(path: &Path, uid: u32, gid: u32) {
        let _ = std::os::unix::fs::lchown(path, Some(uid), Some(gid));
        if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            for entry in fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), uid, gid);
            }
        }
    }
    walk(dir, uid, gid);
}

/// From step07 on, a step makes each container's layer in /run, which is a
/// tmpfs on every distribution that boots with systemd, but not everywhere:
/// in a small VM or a container, /run may be a directory on the disk, where
/// making and removing the layer costs milliseconds. There, the bench also
/// runs the last step with its layers in a directory of its own on
/// /dev/shm, a tmpfs, removed at the end: the step as a machine with a tmpfs
/// /run would run it.
struct TmpfsLayers(PathBuf);

impl TmpfsLayers {
    /// The directory, or `None` (with a note saying why) when /run is a
    /// tmpfs already or /dev/shm is not one.
    fn make(notes: &mut Vec<String>) -> Option<TmpfsLayers> {
        use nix::sys::statfs::{TMPFS_MAGIC, statfs};
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        let run = statfs("/run").ok()?.filesystem_type();
        if run == TMPFS_MAGIC {
            return None;
        }
        if statfs("/dev/shm").ok()?.filesystem_type() != TMPFS_MAGIC {
            notes.push(
                "/run is not a tmpfs here, and neither is /dev/shm: the steps' layers are only measured on disk".into(),
            );
            return None;
        }
        let dir = PathBuf::from(plan::TMPFS_LAYERS);
        // Left by a bench that was killed, it is root's and 0700; anything else
        // there is someone else's, and is left alone.
        let made = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        let ours =
            |meta: &fs::Metadata| meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o077 == 0;
        if made.is_err() && !fs::symlink_metadata(&dir).is_ok_and(|m| ours(&m)) {
            notes.push(format!(
                "{} exists and is not a directory of root's, 0700: the run with the layer on a tmpfs is skipped",
                dir.display()
            ));
            return None;
        }
        notes.push(format!(
            "/run is not a tmpfs on this machine ({}): from step07 on, each container's layer is \
             made and removed on disk. The last step runs once more with `--containers-dir` on \
             /dev/shm, a tmpfs, as /run is on most distributions.",
            fs_name(run)
        ));
        Some(TmpfsLayers(dir))
    }
}

impl Drop for TmpfsLayers {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A filesystem's name, from statfs(2)'s `f_type`, for the few /run may be on.
fn fs_name(kind: nix::sys::statfs::FsType) -> &'static str {
    use nix::sys::statfs::{
        BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, OVERLAYFS_SUPER_MAGIC, XFS_SUPER_MAGIC,
    };
    match kind {
        k if k == EXT4_SUPER_MAGIC => "it is on an ext4 filesystem",
        k if k == BTRFS_SUPER_MAGIC => "it is on a btrfs filesystem",
        k if k == XFS_SUPER_MAGIC => "it is on an XFS filesystem",
        k if k == OVERLAYFS_SUPER_MAGIC => "it is on an overlay",
        _ => "it is on the disk",
    }
}

/// Removes the cgroups the operations make, even when the bench stops early.
struct RemoveOnDrop<'a>(&'a [kernel::Operation]);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        for op in self.0 {
            op.clean_up();
        }
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn stop_if_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted (what it started is stopped, and nothing is left mounted)");
    }
    Ok(())
}

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// While it lives, Ctrl-C does not kill xtask: the runner and the command
/// being timed stop, and xtask cleans up before it exits.
struct InterruptGuard(Vec<(nix::sys::signal::Signal, nix::sys::signal::SigAction)>);

impl InterruptGuard {
    fn install() -> InterruptGuard {
        use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
        let action =
            SigAction::new(SigHandler::Handler(on_interrupt), SaFlags::SA_RESTART, SigSet::empty());
        let mut old = Vec::new();
        for signal in [Signal::SIGINT, Signal::SIGTERM] {
            // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
            if let Ok(previous) = unsafe { sigaction(signal, &action) } {
                old.push((signal, previous));
            }
        }
        InterruptGuard(old)
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        for (signal, previous) in &self.0 {
            // SAFETY: puts back the action that was there before.
            let _ = unsafe { nix::sys::signal::sigaction(*signal, previous) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_builds_are_static_on_glibc_only() {
        let args = release_build_args("x86_64-unknown-linux-gnu", &["step01-chroot"]);
        assert_eq!(
            args.join(" "),
            "--release --target x86_64-unknown-linux-gnu --config \
             target.x86_64-unknown-linux-gnu.rustflags=[\"-C\", \"target-feature=+crt-static\"] \
             -p step01-chroot"
        );
        let args = release_build_args("x86_64-unknown-linux-musl", &["step01-chroot"]);
        assert!(!args.join(" ").contains("crt-static"), "{args:?}");
    }

    #[test]
    fn book_results_are_never_quick_ones() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Bench {
            #[command(flatten)]
            options: Options,
        }
        assert!(Bench::try_parse_from(["bench", "--quick", "--book"]).is_err());
        assert!(Bench::try_parse_from(["bench", "--runs", "0"]).is_err());
        let bench = Bench::try_parse_from(["bench", "--book", "--runs", "1000"]).unwrap();
        assert_eq!(bench.options.rounds(), (20, 1000));
    }

    #[test]
    fn quick_and_full_rounds() {
        let options = |quick, runs| Options { quick, book: false, runs, out: None };
        assert_eq!(options(true, None).rounds(), (1, 5));
        assert_eq!(options(false, None).rounds(), (20, 300));
        assert_eq!(options(false, Some(50)).rounds(), (20, 50));
    }
}

//! `cargo xtask grade [stepNN]`: run a step's tests and say, in a few lines,
//! what passes and what is left to do.
//!
//! It runs `cargo test --no-fail-fast -p workshop-tests [stepNN]` (every test
//! name carries its step: `pid_view::case_4_step04_full_demo`,
//! `step04_exit_status`), reads libtest's report, and prints per step how many
//! tests passed and failed, then each distinct failure message once, with how
//! many tests gave it: ten tests that stop at the same `todo!()` say so once.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::run::Step;

/// One test, as libtest reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The test binary, e.g. `isolation` (for tests/isolation.rs).
    pub binary: String,
    /// The test's name, e.g. `pid_view::case_4_step04_full_demo`.
    pub name: String,
    pub passed: bool,
    /// For a failed test, its panic message.
    pub message: Option<String>,
}

impl Outcome {
    /// The step whose name the test carries (`step04` in it).
    pub fn step(&self) -> Option<Step> {
        Step::ALL.into_iter().find(|step| self.name.contains(step.short()))
    }

    /// The command that runs this test alone.
    pub fn command(&self) -> String {
        let target = match self.binary.as_str() {
            "lib" | "" => "--lib".to_string(),
            binary => format!("--test {binary}"),
        };
        format!("cargo test -p workshop-tests {target} {} -- --exact", self.name)
    }

    /// The lines a report shows: the message's first line (without the
    /// `assertion … failed: ` that asserts put in front), then its `hint:`
    /// lines. Only the test's own words count: the output of the program it
    /// ran, which the harness appends after a `--- \`program\` exited …` line,
    /// may have `hint:` lines of its own (see [`Outcome::program_stderr`]).
    pub fn summary(&self) -> Vec<String> {
        let Some(message) = &self.message else {
            return vec!["failed without a message (see `cargo test` for its output)".into()];
        };
        let mut lines = message.lines().take_while(|l| !is_output_header(l));
        let first = lines.next().unwrap_or_default();
        let first = first
            .strip_prefix("assertion `left == right` failed: ")
            .or_else(|| first.strip_prefix("assertion `left != right` failed: "))
            .unwrap_or(first);
        std::iter::once(first.to_string())
            .chain(lines.filter(|l| l.starts_with("hint: ")).map(String::from))
            .collect()
    }

    /// What the program the test ran wrote to stderr (or to stdout and
    /// stderr, when the harness took them as one stream), as the harness
    /// appends it to the message: the program's name, and its lines.
    pub fn program_stderr(&self) -> Option<(String, Vec<String>)> {
        let message = self.message.as_deref()?;
        let mut lines = message.lines().skip_while(|l| !is_output_header(l));
        let header = lines.next()?;
        let program = header.trim_start_matches("--- `").split("` exited").next()?.to_string();
        let mut lines = lines.skip_while(|l| {
            !matches!(*l, "--- stderr:" | "--- stdout and stderr, as a terminal shows them:")
        });
        lines.next()?;
        let written: Vec<String> = lines
            .take_while(|l| !l.starts_with("  left:") && !l.starts_with("--- "))
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect();
        (!written.is_empty()).then_some((program, written))
    }
}

/// The line with which the test harness starts a program's output in a
/// failure message: ``--- `step04-full-demo rootfs` exited with status 125``.
fn is_output_header(line: &str) -> bool {
    line.starts_with("--- `") && line.contains("` exited with status ")
}

/// How many lines of a program's own output a report shows.
const PROGRAM_LINES: usize = 4;

/// The name of the test binary a cargo `Running` line announces: `isolation`
/// for `Running tests/isolation.rs (target/debug/deps/isolation-…)`, `lib`
/// for `Running unittests src/lib.rs (…)`.
fn binary_of(running: &str) -> String {
    let path = running.trim_start_matches("unittests ").split(" (").next().unwrap_or_default();
    std::path::Path::new(path.trim())
        .file_stem()
        .map_or_else(String::new, |stem| stem.to_string_lossy().into_owned())
}

/// The panic message in the captured output of a failed test.
fn panic_message(block: &[&str]) -> Option<String> {
    let start =
        block.iter().position(|l| l.starts_with("thread '") && l.contains(" panicked at "))?;
    let message: Vec<&str> = block[start + 1..]
        .iter()
        .take_while(|l| {
            !l.starts_with("note: run with `RUST_BACKTRACE") && *l != &"stack backtrace:"
        })
        .copied()
        .collect();
    Some(message.join("\n").trim_end().to_string())
}

/// Reads the output of `cargo test` (libtest's default format; cargo's own
/// lines may be mixed in): every test with its result, and the panic message
/// of each failed one.
pub fn parse(output: &str) -> Vec<Outcome> {
    let lines: Vec<&str> = output.lines().collect();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut binary = String::new();
    let mut messages: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index];
        index += 1;
        if let Some(running) = line.trim_start().strip_prefix("Running ") {
            binary = binary_of(running);
        } else if let Some(rest) = line.strip_prefix("test ") {
            let Some((name, result)) = rest.rsplit_once(" ... ") else { continue };
            let passed = match result.trim() {
                "ok" => true,
                "FAILED" => false,
                _ => continue, // ignored, bench
            };
            let name = name.to_string();
            outcomes.push(Outcome { binary: binary.clone(), name, passed, message: None });
        } else if let Some(name) =
            line.strip_prefix("---- ").and_then(|rest| rest.strip_suffix(" stdout ----"))
        {
            let start = index;
            while index < lines.len()
                && !(lines[index].starts_with("---- ") && lines[index].ends_with(" stdout ----"))
                && lines[index] != "failures:"
                && !lines[index].starts_with("test result: ")
            {
                index += 1;
            }
            if let Some(message) = panic_message(&lines[start..index]) {
                messages.insert((binary.clone(), name.to_string()), message);
            }
        }
    }
    for outcome in &mut outcomes {
        if !outcome.passed {
            outcome.message = messages.remove(&(outcome.binary.clone(), outcome.name.clone()));
        }
    }
    outcomes
}

/// Which test of a group to suggest running alone: one that looks at the
/// container from inside, the plainest (shortest name) of them.
fn example_rank(outcome: &Outcome) -> (usize, usize) {
    let order = ["isolation", "transcripts", "lifecycle", "parity", "mistakes"];
    let binary = order.iter().position(|b| *b == outcome.binary).unwrap_or(order.len());
    (binary, outcome.name.len())
}

/// The report for the tests of one step (or, with `None`, of no step).
pub fn report(step: Option<Step>, outcomes: &[&Outcome]) -> String {
    let passed = outcomes.iter().filter(|o| o.passed).count();
    let failed: Vec<&Outcome> = outcomes.iter().copied().filter(|o| !o.passed).collect();
    let title = match step {
        Some(step) => format!("{} ({})", step.short(), step.name()),
        None => "other checks".to_string(),
    };
    let mut out = if failed.is_empty() {
        format!("✓ {title}: {passed} passed\n")
    } else {
        format!("✗ {title}: {passed} passed, {} failed\n", failed.len())
    };
    // The distinct failures, most frequent first, each with the tests that gave it.
    let mut groups: Vec<(Vec<String>, Vec<&Outcome>)> = Vec::new();
    for outcome in failed {
        let summary = outcome.summary();
        match groups.iter_mut().find(|(s, _)| s[0] == summary[0]) {
            Some((_, tests)) => tests.push(outcome),
            None => groups.push((summary, vec![outcome])),
        }
    }
    groups.sort_by_key(|(_, tests)| std::cmp::Reverse(tests.len()));
    for (summary, tests) in groups {
        let who = match tests.len() {
            1 => format!("{}::{}", tests[0].binary, tests[0].name),
            n => format!("{n} tests"),
        };
        out += &format!("  ✗ {who}: {}\n", summary[0]);
        for hint in &summary[1..] {
            out += &format!("      {hint}\n");
        }
        let example = tests.iter().min_by_key(|t| example_rank(t)).unwrap_or(&tests[0]);
        if let Some((program, lines)) = example.program_stderr() {
            // Labelled and set off, so that its `hint:` lines are not taken for ours.
            out += &format!("      what `{program}` itself printed:\n");
            for line in lines.iter().take(PROGRAM_LINES) {
                out += &format!("      │ {line}\n");
            }
            if lines.len() > PROGRAM_LINES {
                out += &format!(
                    "      │ … ({} more lines: run it alone)\n",
                    lines.len() - PROGRAM_LINES
                );
            }
        }
        out += &format!("      run it alone: {}\n", example.command());
    }
    out
}

/// Runs the tests of `step` (every step's when `None`) and prints the report.
/// Returns 0 when every test passed, 1 otherwise.
pub fn grade(step: Option<Step>) -> Result<i32> {
    let mut args = vec!["test", "--no-fail-fast", "-p", "workshop-tests"];
    if let Some(step) = step {
        args.push(step.short());
    }
    crate::say!("+ cargo {}", args.join(" "));
    args.extend(["--", "--color", "never"]);
    let (reader, writer) = std::io::pipe().context("cannot make a pipe")?;
    let (mut cmd, cargo) = crate::cargo();
    cmd.args(&args)
        .current_dir(crate::workspace_root())
        .env("CARGO_TERM_COLOR", "never")
        .stdin(Stdio::null())
        .stdout(writer.try_clone().context("cannot duplicate a pipe")?)
        .stderr(writer);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {cargo}\nhint: is cargo installed and on PATH?"))?;
    drop(cmd); // our copies of the pipe's writing end: the reader sees the end when cargo is done
    let mut output = String::new();
    for line in BufReader::new(reader).lines() {
        let line = line.context("cannot read cargo's output")?;
        if line.trim_start().starts_with("Compiling ") {
            crate::say!("{line}"); // progress, while a step builds
        }
        output.push_str(&line);
        output.push('\n');
    }
    let status = child.wait().context("cannot wait for cargo")?;
    let outcomes = parse(&output);
    if outcomes.is_empty() {
        crate::say_raw!("{output}");
        if status.success() {
            bail!("no test ran (is the step's name right?)");
        }
        bail!("the tests did not build or did not run: cargo's messages are above");
    }
    let steps: Vec<Step> = match step {
        Some(step) => vec![step],
        None => Step::ALL.to_vec(),
    };
    let mut failed = outcomes.iter().filter(|o| !o.passed).count();
    crate::show!();
    for step in &steps {
        let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.step() == Some(*step)).collect();
        crate::show_raw!("{}", report(Some(*step), &mine));
    }
    if step.is_none() {
        let others: Vec<&Outcome> = outcomes.iter().filter(|o| o.step().is_none()).collect();
        crate::show_raw!("{}", report(None, &others));
    }
    if !status.success() && failed == 0 {
        failed = 1; // cargo failed for another reason: say so
        crate::show!("cargo test failed, though every test that ran passed: see `cargo test`");
    }
    if failed == 0 {
        crate::show!("\nall {} tests passed", outcomes.len());
        Ok(0)
    } else {
        crate::show!(
            "\n{failed} of {} tests failed: each ✗ line says what to fix and where the book explains it",
            outcomes.len()
        );
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = r#"   Compiling workshop-tests v0.1.0 (/work/main/tests)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 3.07s
     Running tests/isolation.rs (target/debug/deps/isolation-982949407985a3bb)

running 3 tests
test pid_view::case_4_step04_full_demo ... FAILED
test working_directory_is_the_new_root::case_3_step04_full_demo ... FAILED
test host_processes::case_4_step04_full_demo ... ok

failures:

---- pid_view::case_4_step04_full_demo stdout ----

thread 'pid_view::case_4_step04_full_demo' (4242) panicked at tests/src/run.rs:300:13:
step04: (3) change the root is not implemented yet — see book chapter 'step04' (book/src/step04-full-demo.md), section (3)
hint: chroot(2) into ROOTFS — https://man7.org/linux/man-pages/man2/chroot.2.html
(more)
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace

---- working_directory_is_the_new_root::case_3_step04_full_demo stdout ----

thread 'working_directory_is_the_new_root::case_3_step04_full_demo' panicked at tests/tests/isolation.rs:290:5:
assertion `left == right` failed: step04: the shell's working directory should be the new root
  left: ["/tmp"]
 right: ["/"]


failures:
    pid_view::case_4_step04_full_demo
    working_directory_is_the_new_root::case_3_step04_full_demo

test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.19s

     Running tests/lifecycle.rs (target/debug/deps/lifecycle-51c15cb0f381f427)

running 2 tests
test exit_status_passes_through::case_4_step04_full_demo::code_1_0 ... FAILED
test step04_something_else ... ignored

failures:

---- exit_status_passes_through::case_4_step04_full_demo::code_1_0 stdout ----

thread 'exit_status_passes_through::case_4_step04_full_demo::code_1_0' panicked at tests/src/run.rs:300:13:
step04: (3) change the root is not implemented yet — see book chapter 'step04' (book/src/step04-full-demo.md), section (3)
hint: chroot(2) into ROOTFS — https://man7.org/linux/man-pages/man2/chroot.2.html

failures:
    exit_status_passes_through::case_4_step04_full_demo::code_1_0

test result: FAILED. 0 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.1s
"#;

    #[test]
    fn libtest_output_is_read() {
        let outcomes = parse(OUTPUT);
        let names: Vec<(&str, &str, bool)> =
            outcomes.iter().map(|o| (o.binary.as_str(), o.name.as_str(), o.passed)).collect();
        assert_eq!(
            names,
            [
                ("isolation", "pid_view::case_4_step04_full_demo", false),
                ("isolation", "working_directory_is_the_new_root::case_3_step04_full_demo", false),
                ("isolation", "host_processes::case_4_step04_full_demo", true),
                (
                    "lifecycle",
                    "exit_status_passes_through::case_4_step04_full_demo::code_1_0",
                    false
                ),
            ]
        );
        assert!(outcomes.iter().all(|o| o.step() == Some(Step::Step04FullDemo)));
        assert_eq!(
            outcomes[0].summary(),
            [
                "step04: (3) change the root is not implemented yet — see book chapter 'step04' (book/src/step04-full-demo.md), section (3)",
                "hint: chroot(2) into ROOTFS — https://man7.org/linux/man-pages/man2/chroot.2.html",
            ]
        );
        assert_eq!(
            outcomes[1].summary(),
            ["step04: the shell's working directory should be the new root"]
        );
        assert_eq!(
            outcomes[3].command(),
            "cargo test -p workshop-tests --test lifecycle exit_status_passes_through::case_4_step04_full_demo::code_1_0 -- --exact"
        );
    }

    #[test]
    fn the_report_says_each_failure_once() {
        let outcomes = parse(OUTPUT);
        let all: Vec<&Outcome> = outcomes.iter().collect();
        let report = report(Some(Step::Step04FullDemo), &all);
        assert_eq!(
            report,
            "✗ step04 (step04-full-demo): 1 passed, 3 failed\n\
             \x20 ✗ 2 tests: step04: (3) change the root is not implemented yet — see book chapter 'step04' (book/src/step04-full-demo.md), section (3)\n\
             \x20     hint: chroot(2) into ROOTFS — https://man7.org/linux/man-pages/man2/chroot.2.html\n\
             \x20     run it alone: cargo test -p workshop-tests --test isolation pid_view::case_4_step04_full_demo -- --exact\n\
             \x20 ✗ isolation::working_directory_is_the_new_root::case_3_step04_full_demo: step04: the shell's working directory should be the new root\n\
             \x20     run it alone: cargo test -p workshop-tests --test isolation working_directory_is_the_new_root::case_3_step04_full_demo -- --exact\n"
        );
        let passed: Vec<&Outcome> = outcomes.iter().filter(|o| o.passed).collect();
        assert_eq!(report_for_passed(&passed), "✓ step04 (step04-full-demo): 1 passed\n");
    }

    fn report_for_passed(outcomes: &[&Outcome]) -> String {
        report(Some(Step::Step04FullDemo), outcomes)
    }

    /// The step's own `hint:` line is not the grader's: it is shown under a
    /// label, with the rest of what the step printed.
    #[test]
    fn the_program_s_own_stderr_is_labelled() {
        let message = "step04: EPERM alone does not tell a learner what to do; see the book.\n\
            --- `step04-full-demo rootfs` exited with status 125\n\
            --- stdout and stderr, as a terminal shows them:\n\
            step04-full-demo: unshare: EPERM: Operation not permitted\n\
            hint: this needs CAP_SYS_ADMIN: run with sudo";
        let outcome = Outcome {
            binary: "bad_input".into(),
            name: "not_root::case_4_step04_full_demo".into(),
            passed: false,
            message: Some(message.into()),
        };
        assert_eq!(
            outcome.summary(),
            ["step04: EPERM alone does not tell a learner what to do; see the book."]
        );
        let report = report(Some(Step::Step04FullDemo), &[&outcome]);
        assert!(
            report.contains(
                "      what `step04-full-demo rootfs` itself printed:\n\
                 \x20     │ step04-full-demo: unshare: EPERM: Operation not permitted\n\
                 \x20     │ hint: this needs CAP_SYS_ADMIN: run with sudo\n"
            ),
            "{report}"
        );
        let separate = message.replace(
            "--- stdout and stderr, as a terminal shows them:",
            "--- stdout:\n--- stderr:",
        ) + "\n  left: 1\n right: 2";
        let outcome = Outcome { message: Some(separate), ..outcome };
        let (_, lines) = outcome.program_stderr().unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
    }

    #[test]
    fn binaries_are_named_after_their_file() {
        assert_eq!(binary_of("tests/isolation.rs (target/debug/deps/isolation-98)"), "isolation");
        assert_eq!(binary_of("unittests src/lib.rs (target/debug/deps/workshop_tests-6d)"), "lib");
    }
}

//! Console transcripts: what a learner sees at the terminal, recorded from a
//! real run of a step.
//!
//! Each transcript is an insta snapshot in `tests/snapshots/`, and the book
//! includes those very files. So `cargo test` fails when a step's output
//! changes and the book does not; `cargo insta review` shows the change and
//! updates book and snapshot together.

use crate::{Output, Runner};

/// A terminal session, as text.
#[derive(Debug)]
pub struct Transcript(pub String);

/// Marks the start of each command in the shell's output (ASCII record separator).
const MARK: char = '\u{1e}';

impl Transcript {
    /// Runs `runner` (a step that starts a shell) and types `commands` into
    /// that shell one by one. The transcript shows the host command, then each
    /// command after `prompt` with the output it printed, stdout and stderr
    /// interleaved as on a terminal.
    pub fn shell(runner: Runner, prompt: &str, commands: &[&str]) -> (Transcript, Output) {
        // The shell prints a mark and the command before running it, so the
        // output can be split per command. printf is a builtin: no extra process.
        let mut script = String::from("exec 2>&1\n");
        for command in commands {
            let quoted = command.replace('\'', r"'\''");
            script.push_str(&format!("printf '{MARK}%s\\n' '{quoted}'\n{command}\n"));
        }
        let output = runner.stdin(script).run();
        let mut text = format!("$ {}\n{}", shown(&output), output.stderr);
        let mut segments = output.stdout.split(MARK);
        text.push_str(segments.next().unwrap_or_default()); // anything before the first command
        for segment in segments {
            text.push_str(prompt);
            text.push_str(segment);
        }
        (Transcript(finish(text, &output)), output)
    }

    /// Runs a command on the host, e.g. a step given bad input: the command
    /// line, everything it printed, and `echo $?` when it failed.
    pub fn command(runner: Runner) -> (Transcript, Output) {
        let output = runner.run();
        let text = format!("$ {}\n{}{}", shown(&output), output.stdout, output.stderr);
        (Transcript(finish(text, &output)), output)
    }

    /// Checks the transcript against the snapshot `tests/snapshots/<name>.snap`.
    /// Paths that differ between machines are redacted.
    pub fn assert_matches(&self, name: &str) {
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path("../snapshots");
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        for (path, shown) in redactions() {
            settings.add_filter(&regex_escape(&path), shown);
        }
        settings.add_filter(r"[^\s']*/copy-[\w-]+-\d+", "rootfs");
        settings.bind(|| insta::assert_snapshot!(name, self.0));
    }
}

/// How the learner types it: from the workspace, with sudo unless the run
/// was meant to be unprivileged.
fn shown(output: &Output) -> String {
    let sudo = if output.as_root { "sudo " } else { "" };
    let path = if output.label.starts_with("step0") { "./target/debug/" } else { "" };
    format!("{sudo}{path}{}", output.label)
}

/// Adds `echo $?` when the last command failed, as a learner would check.
fn finish(mut text: String, output: &Output) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    if output.code() != 0 {
        text.push_str(&format!("$ echo $?\n{}\n", output.code()));
    }
    text
}

/// Machine-specific paths and what the book shows instead.
fn redactions() -> Vec<(String, String)> {
    let mut paths = vec![(crate::alpine_rootfs().display().to_string(), "rootfs".to_string())];
    for step in crate::Step::ALL {
        paths
            .push((step.binary().display().to_string(), format!("./target/debug/{}", step.name())));
    }
    paths.push((crate::scratch().display().to_string(), "/tmp/workshop".to_string()));
    paths
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

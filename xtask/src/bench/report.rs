//! The results as Markdown: the tables the terminal shows and the book includes.

use std::fmt::Write;

use super::results::{Comparison, Kind, Results, Timing};

/// The whole report: the machine, start-up times, comparisons, kernel
/// operations and notes. Its columns are padded, so it reads well in a
/// terminal as well as rendered; a no-break space keeps each number with its unit.
pub fn markdown(results: &Results) -> String {
    let mut out = String::new();
    let m = &results.machine;
    let _ = writeln!(
        out,
        "Measured by `cargo xtask bench`{} on {}: {}, {} CPU{}, {} MiB of memory{}; Linux {}; {}.",
        if results.quick { " --quick (too few runs to mean much)" } else { "" },
        &results.date[..results.date.len().min(10)],
        m.cpu,
        m.cpus,
        if m.cpus == 1 { "" } else { "s" },
        m.memory_mib,
        if m.virtual_machine { ", a virtual machine" } else { "" },
        m.kernel,
        m.os,
    );
    let _ = writeln!(
        out,
        "Each time runs from fork(2) to the end of wait4(2): {} measured rounds after {} warm-up \
         rounds, each round running every command once, in a rotating order.\n",
        results.runs, results.warmup
    );

    let _ = writeln!(out, "**Start to exit of `/bin/true`**\n");
    let rows: Vec<Vec<String>> = results
        .startup
        .iter()
        .map(|t| {
            vec![
                what(results, t),
                format!("`{}`", shortened(t)),
                format!("{:.2}\u{a0}ms", t.median_ms),
                format!("{:.2}\u{a0}ms", t.min_ms),
                format!("{}\u{a0}KiB", t.peak_rss_kib),
            ]
        })
        .collect();
    table(
        &mut out,
        &["what", "command", "median", "min", "peak RSS"],
        &[false, false, true, true, true],
        &rows,
    );

    let scripts: Vec<&Timing> =
        results.startup.iter().filter(|t| shortened(t) != t.command).collect();
    if !scripts.is_empty() {
        let _ = writeln!(out, "\nThe scripts, in full:\n");
        for t in scripts {
            let _ = writeln!(out, "- {}: `{}`", what(results, t), t.command);
        }
    }

    if !results.comparisons.is_empty() {
        let _ = writeln!(
            out,
            "\n**Each step against what it imitates, and against the real runtimes**\n"
        );
        let rows: Vec<Vec<String>> =
            results.comparisons.iter().map(|c| comparison_row(results, c)).collect();
        table(
            &mut out,
            &["step", "against", "time", "peak RSS", "target", "met?"],
            &[false, false, true, true, false, false],
            &rows,
        );
    }

    if !results.kernel.is_empty() {
        let _ = writeln!(
            out,
            "\n**One kernel operation at a time** (in a child process; only the operation is timed)\n"
        );
        let rows: Vec<Vec<String>> = results
            .kernel
            .iter()
            .map(|k| {
                vec![
                    format!("`{}`", k.name),
                    format!("{:.1}\u{a0}µs", k.median_us),
                    format!("{:.1}\u{a0}µs", k.min_us),
                    k.about.clone(),
                ]
            })
            .collect();
        table(
            &mut out,
            &["operation", "median", "min", "what it makes"],
            &[false, true, true, false],
            &rows,
        );
    }

    let _ = writeln!(out, "\nCgroups on this machine: {}.", m.cgroups);
    if !results.notes.is_empty() {
        let _ = writeln!(out);
        for note in &results.notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    let tools: Vec<String> = m.tools.iter().map(|t| format!("{}: {}", t.name, t.version)).collect();
    let _ = writeln!(out, "\nVersions: {}.", tools.join("; "));
    out
}

/// The command as the first table shows it: whole, or, for a script too
/// long to read in a table, its gist (which then names the timing).
fn shortened(timing: &Timing) -> &str {
    if timing.kind == Kind::Counterpart && timing.name != timing.command {
        &timing.name
    } else {
        &timing.command
    }
}

/// What a timing is: `step04`, `runc`, `floor`, `what step02 imitates`.
fn what(results: &Results, timing: &Timing) -> String {
    let imitated: Vec<&str> = results
        .comparisons
        .iter()
        .filter(|c| c.against == timing.name && c.rss_target)
        .map(|c| c.step.as_str())
        .collect();
    let imitated = if imitated.is_empty() {
        String::new()
    } else {
        format!("what {} imitates", imitated.join(", "))
    };
    match timing.kind {
        Kind::Floor if imitated.is_empty() => "floor".into(),
        Kind::Floor => format!("floor; {imitated}"),
        Kind::Counterpart => imitated,
        Kind::Step | Kind::Variant | Kind::Runtime => timing.name.clone(),
    }
}

fn comparison_row(results: &Results, c: &Comparison) -> Vec<String> {
    let against = match results.timing(&c.against) {
        Some(t) if t.kind == Kind::Runtime => t.name.clone(),
        Some(t) => format!("`{}`", t.name), // the command line, or a long one's gist
        None => c.against.clone(),
    };
    let target = if c.rss_target {
        format!("≤ {:.1}× time, ≤ 1× RSS", c.target)
    } else {
        format!("≤ {:.1}× time", c.target)
    };
    let verdict = if c.met {
        "yes".to_owned()
    } else {
        let mut missed = Vec::new();
        if c.time_ratio > c.target {
            missed.push(format!("time by {:.0}%", (c.time_ratio / c.target - 1.0) * 100.0));
        }
        if c.rss_target && c.rss_ratio > 1.0 {
            missed.push(format!("RSS by {:.0}%", (c.rss_ratio - 1.0) * 100.0));
        }
        format!("no: {}", missed.join(", "))
    };
    vec![
        c.step.clone(),
        against,
        format!("{:.2}×", c.time_ratio),
        format!("{:.2}×", c.rss_ratio),
        target,
        verdict,
    ]
}

/// A Markdown table with padded columns; `right` says which to align right.
fn table(out: &mut String, header: &[&str], right: &[bool], rows: &[Vec<String>]) {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].chars().count(), 3])
            .max()
            .unwrap_or(3)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cells: Vec<String>| format!("| {} |", cells.join(" | "));
    let pad = |text: &str, i: usize| {
        let fill = " ".repeat(widths[i] - text.chars().count());
        if right[i] { format!("{fill}{text}") } else { format!("{text}{fill}") }
    };
    let _ = writeln!(out, "{}", line(header.iter().enumerate().map(|(i, h)| pad(h, i)).collect()));
    let rules = widths
        .iter()
        .zip(right)
        .map(|(w, r)| if *r { format!("{}:", "-".repeat(w - 1)) } else { "-".repeat(*w) })
        .collect();
    let _ = writeln!(out, "{}", line(rules));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.iter().enumerate().map(|(i, c)| pad(c, i)).collect()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_padded_markdown() {
        let mut out = String::new();
        let rows =
            vec![vec!["a".into(), "1.00 ms".into()], vec!["longer".into(), "10.00 ms".into()]];
        table(&mut out, &["name", "median"], &[false, true], &rows);
        assert_eq!(
            out,
            "| name   |   median |\n\
             | ------ | -------: |\n\
             | a      |  1.00 ms |\n\
             | longer | 10.00 ms |\n"
        );
    }
}

//! What a bench run found, as written to `results.json`, and the statistics.

use serde::{Deserialize, Serialize};

/// Everything one `cargo xtask bench` found. `results.json` is this, and the
/// Markdown table and the chart are drawn from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// Bumped when a field changes meaning.
    pub schema: u32,
    /// When the run started, UTC, RFC 3339.
    pub date: String,
    /// Whether this was a `--quick` run (too few runs for the numbers to mean much).
    pub quick: bool,
    /// Rounds run first and thrown away.
    pub warmup: usize,
    /// Rounds measured. In each round every command runs once, in a rotating order.
    pub runs: usize,
    pub machine: Machine,
    /// Start-to-exit of `/bin/true`, one entry per command.
    pub startup: Vec<Timing>,
    /// Each step against its counterpart, and the last step against each runtime.
    pub comparisons: Vec<Comparison>,
    /// What single kernel operations cost, measured alone.
    pub kernel: Vec<KernelCost>,
    /// What was skipped and why, and other facts worth a line.
    pub notes: Vec<String>,
}

/// Where the numbers come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// The CPU model, from /proc/cpuinfo.
    pub cpu: String,
    /// CPUs this process may run on.
    pub cpus: usize,
    /// Total memory, MiB.
    pub memory_mib: u64,
    /// `uname -r`.
    pub kernel: String,
    /// PRETTY_NAME from /etc/os-release.
    pub os: String,
    /// Whether the CPU says it runs under a hypervisor (the `hypervisor` flag).
    pub virtual_machine: bool,
    /// The cgroup layout: v1, v2 or hybrid, and where.
    pub cgroups: String,
    /// The version line of each tool measured, and of rustc.
    pub tools: Vec<Tool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

/// What a command is, for the tables and the chart's colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `/bin/true` alone, and chroot(1).
    Floor,
    /// One of the workshop's steps.
    Step,
    /// The last step built another way (linked dynamically), or run another way
    /// (its layer on a tmpfs), to show what the build or the machine changes.
    Variant,
    /// The command a step imitates.
    Counterpart,
    /// A real container runtime.
    Runtime,
}

/// Start-to-exit of one command, over all measured runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// `step04`, `runc`, or the command line for floors and counterparts (for
    /// a counterpart whose command line is a long script, its gist).
    pub name: String,
    pub kind: Kind,
    /// The command line, with the root filesystem shown as `rootfs`.
    pub command: String,
    /// Measured runs.
    pub runs: usize,
    /// Milliseconds from fork to the end of wait4, median of the runs.
    pub median_ms: f64,
    /// The fastest run.
    pub min_ms: f64,
    /// Peak resident set size of the command and its children (wait4's
    /// `ru_maxrss`), median of the runs, KiB.
    pub peak_rss_kib: u64,
}

/// A step against what it is measured against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The step.
    pub step: String,
    /// The counterpart's or the runtime's `name` in `startup`.
    pub against: String,
    /// Median time of the step / median time of the other.
    pub time_ratio: f64,
    /// Peak RSS of the step / peak RSS of the other.
    pub rss_ratio: f64,
    /// The time ratio to stay at or under.
    pub target: f64,
    /// Whether the step's peak RSS must also be at most the other's.
    pub rss_target: bool,
    /// Whether the targets are met.
    pub met: bool,
}

/// One kernel operation, timed alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelCost {
    /// `unshare(CLONE_NEWNS)`, `cgroup v2: mkdir + rmdir`, ...
    pub name: String,
    /// What it is, and who uses it.
    pub about: String,
    pub runs: usize,
    /// Microseconds, median of the runs.
    pub median_us: f64,
    /// The fastest run.
    pub min_us: f64,
}

impl Results {
    /// The timing called `name`.
    pub fn timing(&self, name: &str) -> Option<&Timing> {
        self.startup.iter().find(|t| t.name == name)
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The smallest of `values`.
pub fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

/// `step` against `other`: the ratios, and whether they meet `target` (and the RSS target).
pub fn compare(step: &Timing, other: &Timing, target: f64, rss_target: bool) -> Comparison {
    let time_ratio = step.median_ms / other.median_ms;
    let rss_ratio = step.peak_rss_kib as f64 / other.peak_rss_kib as f64;
    Comparison {
        step: step.name.clone(),
        against: other.name.clone(),
        time_ratio,
        rss_ratio,
        target,
        rss_target,
        met: time_ratio <= target && (!rss_target || rss_ratio <= 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_min() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(min(&[3.0, 1.0, 2.0]), 1.0);
    }

    #[test]
    fn a_comparison_meets_its_targets_or_not() {
        let timing = |name: &str, ms, kib| Timing {
            name: name.into(),
            kind: Kind::Step,
            command: name.into(),
            runs: 1,
            median_ms: ms,
            min_ms: ms,
            peak_rss_kib: kib,
        };
        let fast = compare(&timing("step", 0.8, 900), &timing("tool", 1.0, 1000), 0.9, true);
        assert!(fast.met && (fast.time_ratio - 0.8).abs() < 1e-9, "{fast:?}");
        let heavy = compare(&timing("step", 0.8, 1100), &timing("tool", 1.0, 1000), 0.9, true);
        assert!(!heavy.met);
        let slow = compare(&timing("step", 0.95, 900), &timing("tool", 1.0, 1000), 0.9, true);
        assert!(!slow.met);
        let no_rss = compare(&timing("step", 0.1, 2000), &timing("runc", 1.0, 1000), 0.2, false);
        assert!(no_rss.met);
    }
}

//! The chart: start-up times on a log scale next to published VM boot times,
//! and below, what single kernel operations cost. Drawn with `plotters` into SVG.

use anyhow::{Result, anyhow};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::results::{Kind, Results};

/// A published virtual machine start time, shown next to what was measured.
pub struct Published {
    pub label: &'static str,
    pub ms: f64,
    /// Where the number comes from.
    pub source: &'static str,
}

/// VM start times from their makers' own documents (the chapter cites them).
pub const VM_FIGURES: &[Published] = &[
    Published {
        label: "Firecracker microVM: API call to guest /sbin/init (spec: at most)",
        ms: 125.0,
        source: "https://github.com/firecracker-microvm/firecracker/blob/main/SPECIFICATION.md",
    },
    Published {
        label: "QEMU, PVH kernel, no firmware: start to guest init (measured)",
        ms: 159.06,
        source: "https://stefano-garzarella.github.io/posts/2019-12-22-qemu-kernel-initrd-mmapped/",
    },
];

struct Bar {
    label: String,
    value: f64,
    color: RGBColor,
    /// The legend entry, for bars of this colour.
    group: &'static str,
}

const STEP: RGBColor = RGBColor(0xd3, 0x5f, 0x0b);
const VARIANT: RGBColor = RGBColor(0xf0, 0xa0, 0x6a);
const COUNTERPART: RGBColor = RGBColor(0x3a, 0x6e, 0xa5);
const FLOOR: RGBColor = RGBColor(0x8a, 0x8a, 0x8a);
const RUNTIME: RGBColor = RGBColor(0x6a, 0x3d, 0x9a);
const VM: RGBColor = RGBColor(0xb2, 0x22, 0x22);
const KERNEL: RGBColor = RGBColor(0x2e, 0x7d, 0x32);

/// The chart as an SVG document.
pub fn svg(results: &Results) -> Result<String> {
    let mut startup: Vec<Bar> = results
        .startup
        .iter()
        .map(|t| {
            let (color, group) = match t.kind {
                Kind::Floor => (FLOOR, "the floor"),
                Kind::Step => (STEP, "the steps"),
                Kind::Variant => (VARIANT, "the last step, built or run another way"),
                Kind::Counterpart => (COUNTERPART, "what the steps imitate"),
                Kind::Runtime => (RUNTIME, "container runtimes"),
            };
            // A counterpart's name is its command line, or the gist of a long one.
            let label = match t.kind {
                Kind::Step | Kind::Variant | Kind::Runtime | Kind::Counterpart => t.name.clone(),
                Kind::Floor => t.command.clone(),
            };
            Bar { label, value: t.median_ms, color, group }
        })
        .collect();
    startup.extend(VM_FIGURES.iter().map(|vm| Bar {
        label: vm.label.into(),
        value: vm.ms,
        color: VM,
        group: "virtual machines (published)",
    }));
    let kernel: Vec<Bar> = results
        .kernel
        .iter()
        .map(|k| Bar { label: k.name.clone(), value: k.median_us, color: KERNEL, group: "" })
        .collect();

    let row = 26;
    let top_height = 100 + row * startup.len() as u32;
    let bottom_height = if kernel.is_empty() { 0 } else { 90 + row * kernel.len() as u32 };
    let size = (1000, top_height + bottom_height + 30);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let (charts, footer) = root.split_vertically(top_height + bottom_height);
        let (top, bottom) = charts.split_vertically(top_height);
        panel(
            &top,
            "Start to exit of /bin/true: median, ms (log scale)",
            "milliseconds",
            &startup,
            "ms",
        )?;
        if !kernel.is_empty() {
            panel(
                &bottom,
                "One kernel operation: median, µs (log scale)",
                "microseconds",
                &kernel,
                "µs",
            )?;
        }
        let m = &results.machine;
        let text = format!(
            "cargo xtask bench{}, {}: {}, {} CPUs, Linux {}. VM figures: their makers' published numbers, not measured here.",
            if results.quick { " --quick" } else { "" },
            &results.date[..results.date.len().min(10)],
            m.cpu,
            m.cpus,
            m.kernel
        );
        footer
            .draw(&Text::new(text, (12, 8), ("sans-serif", 12).into_font()))
            .map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    Ok(out)
}

/// One horizontal bar chart, first bar on top, log-scaled values, a legend
/// entry per group.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    axis: &str,
    bars: &[Bar],
    unit: &str,
) -> Result<()> {
    let positive = bars.iter().map(|b| b.value).filter(|v| *v > 0.0);
    let low = positive.clone().fold(f64::INFINITY, f64::min);
    let high = positive.fold(0.0, f64::max);
    let (low, high) = if low.is_finite() && high > 0.0 { (low, high) } else { (1.0, 10.0) };
    // Whole decades, with room on the right for the value labels.
    let x = 10f64.powf((low.log10() - 0.3).floor())..10f64.powf((high.log10() + 0.6).ceil());
    let n = bars.len();
    // A segmented range holds its end too: 0..n is n + 1 rows; the top one stays empty.
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(430)
        .build_cartesian_2d(x.clone().log_scale(), (0..n).into_segmented())
        .map_err(draw_error)?;
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) if *i < n => bars[n - 1 - *i].label.clone(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&label)
        .y_label_style(("sans-serif", 13))
        .x_desc(axis)
        .x_label_formatter(&|v| format!("{v}"))
        .draw()
        .map_err(draw_error)?;
    let mut groups: Vec<(&str, RGBColor)> = Vec::new();
    for bar in bars {
        if !groups.iter().any(|(g, _)| *g == bar.group) {
            groups.push((bar.group, bar.color));
        }
    }
    for (group, color) in &groups {
        let series = chart
            .draw_series(bars.iter().enumerate().filter(|(_, b)| b.group == *group).map(
                |(i, bar)| {
                    let row = n - 1 - i;
                    let mut rect = Rectangle::new(
                        [
                            (x.start, SegmentValue::Exact(row)),
                            (bar.value.max(x.start), SegmentValue::Exact(row + 1)),
                        ],
                        bar.color.filled(),
                    );
                    rect.set_margin(4, 4, 0, 0);
                    rect
                },
            ))
            .map_err(draw_error)?;
        if !group.is_empty() {
            let color = *color;
            series.label(*group).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
            });
        }
    }
    chart
        .draw_series(bars.iter().enumerate().map(|(i, bar)| {
            let text = if bar.value >= 10.0 {
                format!(" {:.0} {unit}", bar.value)
            } else {
                format!(" {:.2} {unit}", bar.value)
            };
            Text::new(
                text,
                (bar.value, SegmentValue::CenterOf(n - 1 - i)),
                ("sans-serif", 12).into_font(),
            )
        }))
        .map_err(draw_error)?;
    if groups.iter().any(|(g, _)| !g.is_empty()) {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 12))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(draw_error)?;
    }
    Ok(())
}

fn draw_error(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the chart: {err}")
}

#[cfg(test)]
mod tests {
    use super::super::results::{KernelCost, Machine, Timing};
    use super::*;

    #[test]
    fn draws_every_bar_and_the_vm_figures() {
        let timing = |name: &str, kind, ms| Timing {
            name: name.into(),
            kind,
            command: format!("{name} rootfs /bin/true"),
            runs: 3,
            median_ms: ms,
            min_ms: ms,
            peak_rss_kib: 1000,
        };
        let results = Results {
            schema: 1,
            date: "2026-01-01T00:00:00Z".into(),
            quick: true,
            warmup: 1,
            runs: 3,
            machine: Machine {
                cpu: "cpu".into(),
                cpus: 2,
                memory_mib: 1024,
                kernel: "6.1".into(),
                os: "os".into(),
                virtual_machine: false,
                cgroups: "v2".into(),
                tools: vec![],
            },
            startup: vec![
                // A counterpart is named by its command line (or a long one's gist).
                Timing {
                    name: "chroot rootfs /bin/true".into(),
                    ..timing("", Kind::Counterpart, 1.2)
                },
                timing("step01", Kind::Step, 1.0),
                timing("runc", Kind::Runtime, 40.0),
            ],
            comparisons: vec![],
            kernel: vec![KernelCost {
                name: "unshare(CLONE_NEWNS)".into(),
                about: String::new(),
                runs: 3,
                median_us: 20.0,
                min_us: 18.0,
            }],
            notes: vec![],
        };
        let svg = svg(&results).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        for text in [
            "step01",
            "runc",
            "chroot rootfs /bin/true",
            "Firecracker",
            "unshare(CLONE_NEWNS)",
            "1.00 ms",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
    }
}

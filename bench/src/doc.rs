//! `docs/benchmarks.md` from result rows, with PNG bar charts beside it.
//!
//! The charts are drawn with plotters' bitmap backend and carry no text (so
//! no system font is needed): one bar per target, Tidings blue, the peer
//! orange, the floor grey; the markdown next to each chart gives the numbers.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use crate::report::{find, Row};

const TARGETS: [&str; 3] = ["tidings", "peer", "floor"];

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = cpu.lines().filter(|l| l.starts_with("processor")).count();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total_kb: u64 = mem
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    format!(
        "{model}, {cores} logical cores, {:.1} GiB RAM (`/proc/cpuinfo`, `/proc/meminfo`); \
         generator and servers share the machine",
        total_kb as f64 / 1024.0 / 1024.0
    )
}

fn scenario_table(out: &mut String, rows: &[Row], scenario: &str) {
    let mut metrics: Vec<(&str, &str)> = Vec::new();
    for r in rows.iter().filter(|r| r.scenario == scenario) {
        if !metrics.iter().any(|(m, _)| *m == r.metric) {
            metrics.push((&r.metric, &r.unit));
        }
    }
    if metrics.is_empty() {
        return;
    }
    let targets: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| {
            rows.iter()
                .any(|r| r.scenario == scenario && r.target == *t)
        })
        .collect();
    let n = |t: &str| {
        rows.iter()
            .find(|r| r.scenario == scenario && r.target == t)
            .map(|r| r.n)
            .unwrap_or(0)
    };
    let _ = writeln!(out, "\n### {scenario}\n");
    let _ = write!(out, "| metric | unit |");
    for t in &targets {
        let _ = write!(out, " {t} (n={}) |", n(t));
    }
    let _ = write!(out, "\n|---|---|");
    for _ in &targets {
        let _ = write!(out, "---:|");
    }
    out.push('\n');
    for (m, u) in metrics {
        let _ = write!(out, "| {m} | {u} |");
        for t in &targets {
            match find(rows, scenario, t, m) {
                Some(v) if u == "%" => {
                    let _ = write!(out, " {} |", fmt_pct(v));
                }
                Some(v) => {
                    let _ = write!(out, " {} |", fmt(v));
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
}

/// A percentage with three decimals: 99.9996 % must not read as 100.
fn fmt_pct(v: f64) -> String {
    format!("{:.3}", (v * 1000.0).floor() / 1000.0)
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A target comparison: (label, tidings value, other value, target text, met).
struct Check {
    what: &'static str,
    value: Option<f64>,
    goal: &'static str,
    met: Option<bool>,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

fn checks(rows: &[Row]) -> Vec<Check> {
    let f = |s: &str, t: &str, m: &str| find(rows, s, t, m);
    let idle_kb = f("idle", "tidings", "rss_per_conn");
    let idle_ratio = ratio(idle_kb, f("idle", "peer", "rss_per_conn"));
    let warm = ratio(
        f("auth-storm-warm", "tidings", "auths_per_s"),
        f("auth-storm-warm", "peer", "auths_per_s"),
    );
    let cold = ratio(
        f("auth-storm-cold", "tidings", "auths_per_s"),
        f("auth-storm-cold", "peer", "auths_per_s"),
    );
    let push_p99 = f("push-latency", "tidings", "p99");
    let fan_peer = ratio(
        f("fanout", "tidings", "deliveries_per_s"),
        f("fanout", "peer", "deliveries_per_s"),
    );
    let fan_floor = ratio(
        f("fanout", "tidings", "deliveries_per_s"),
        f("fanout", "floor", "deliveries_per_s"),
    );
    let cluster_add = match (f("cluster-push-latency", "tidings", "p99"), push_p99) {
        (Some(c), Some(p)) => Some(c - p),
        _ => None,
    };
    let jitter = f("jitter", "tidings", "delivered");
    let jitter_order = f("jitter", "tidings", "out_of_order");
    let reauth = ratio(
        f("avalanche", "tidings", "reauthenticated"),
        f("avalanche", "tidings", "connected"),
    )
    .map(|r| r * 100.0);
    let lost = f("avalanche", "tidings", "pushes_lost");
    let cluster_p99 = f("cluster-push-latency", "tidings", "p99");
    vec![
        Check {
            what: "idle memory per connection (KiB)",
            value: idle_kb,
            goal: "≤ 20 KB",
            met: idle_kb.map(|v| v <= 20.0 * 1000.0 / 1024.0),
        },
        Check {
            what: "idle memory, Tidings / peer",
            value: idle_ratio,
            goal: "≤ 0.40",
            met: idle_ratio.map(|v| v <= 0.40),
        },
        Check {
            what: "warm auth storm auths/s, Tidings / peer",
            value: warm,
            goal: "≥ 10",
            met: warm.map(|v| v >= 10.0),
        },
        Check {
            what: "cold auth storm auths/s, Tidings / peer",
            value: cold,
            goal: "≥ 1",
            met: cold.map(|v| v >= 1.0),
        },
        Check {
            what: "push latency p99 (ms)",
            value: push_p99,
            goal: "≤ 10 ms at 10k users",
            met: push_p99.map(|v| v <= 10.0),
        },
        Check {
            what: "fanout deliveries/s, Tidings / peer",
            value: fan_peer,
            goal: "≥ 5",
            met: fan_peer.map(|v| v >= 5.0),
        },
        Check {
            what: "fanout deliveries/s, Tidings / floor",
            value: fan_floor,
            goal: "≥ 0.70",
            met: fan_floor.map(|v| v >= 0.70),
        },
        Check {
            what: "cluster push p99 minus single-node p99 (ms)",
            value: cluster_add,
            goal: "≤ 2 ms",
            met: cluster_add.map(|v| v <= 2.0),
        },
        Check {
            what: "push latency p99 with the durable log, one node (ms)",
            value: push_p99,
            goal: "≤ 5 ms at 10k users",
            met: push_p99.map(|v| v <= 5.0),
        },
        Check {
            what: "push latency p99 with the durable log, two nodes (ms)",
            value: cluster_p99,
            goal: "≤ 5 ms at 10k users",
            met: cluster_p99.map(|v| v <= 5.0),
        },
        Check {
            what: "jitter: pushes delivered (%)",
            value: jitter,
            goal: "100.0 % at 10k clients",
            met: jitter.map(|v| v >= 100.0),
        },
        Check {
            what: "jitter: pushes out of order",
            value: jitter_order,
            goal: "0",
            met: jitter_order.map(|v| v == 0.0),
        },
        Check {
            what: "avalanche: clients re-authenticated (%)",
            value: reauth,
            goal: "100 %",
            met: reauth.map(|v| v >= 100.0),
        },
        Check {
            what: "avalanche: pushes lost",
            value: lost,
            goal: "0",
            met: lost.map(|v| v == 0.0),
        },
    ]
}

/// Where a font for chart text is looked for; without one, charts are
/// drawn as bars only (the numbers are in the tables either way).
const FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers the first font found as plotters' "sans-serif", once.
fn font_available() -> bool {
    static FOUND: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        FONTS.iter().any(|path| {
            std::fs::read(path).is_ok_and(|bytes| {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    })
}

/// One labelled bar per target (Tidings blue, peer orange, floor grey) with
/// its value written above it.
pub fn bar_chart(path: &Path, title: &str, unit: &str, values: &[(usize, f64)]) -> Result<()> {
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(127, 127, 127),
    ];
    let root = BitMapBackend::new(path, (560, 360)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = values.iter().map(|(_, v)| *v).fold(0.0f64, f64::max);
    let top = if max > 0.0 { max * 1.2 } else { 1.0 };
    if font_available() {
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..values.len() as f64, 0f64..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_x_axis()
            .y_desc(unit)
            .y_label_formatter(&|v| fmt(*v))
            .draw()?;
        for (slot, (target, v)) in values.iter().enumerate() {
            let x = slot as f64;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x + 0.2, 0.0), (x + 0.8, *v)],
                colors[*target % 3].filled(),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                fmt(*v),
                (x + 0.25, *v + top * 0.06),
                ("sans-serif", 15),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                TARGETS[*target % 3],
                (x + 0.3, -top * 0.02),
                ("sans-serif", 15),
            )))?;
        }
    } else if max > 0.0 {
        let slot = 560 / values.len().max(1) as i32;
        for (i, (target, v)) in values.iter().enumerate() {
            let h = ((v / max) * 300.0) as i32;
            let x0 = i as i32 * slot + slot / 5;
            let x1 = (i as i32 + 1) * slot - slot / 5;
            root.draw(&Rectangle::new(
                [(x0, 350 - h), (x1, 350)],
                colors[*target % 3].filled(),
            ))?;
        }
    }
    root.present()?;
    Ok(())
}

pub fn write(rows: &[Row], out: &Path, command: &str) -> Result<()> {
    let dir = out.parent().unwrap_or(Path::new("."));
    let charts = dir.join("bench");
    std::fs::create_dir_all(&charts)?;
    let mut md = String::new();
    md.push_str(include_str!("doc_method.md"));
    let _ = writeln!(
        md,
        "\n## This run\n\nMachine: {}.\n\nCommand: `{command}`\n",
        machine()
    );
    md.push_str("\n## Targets\n\n| target | measured | goal | met |\n|---|---:|---|---|\n");
    for c in checks(rows) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            c.what,
            c.value
                .map(|v| if c.what.ends_with("(%)") {
                    fmt_pct(v)
                } else {
                    fmt(v)
                })
                .unwrap_or_else(|| "–".into()),
            c.goal,
            match c.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            }
        );
    }
    md.push_str("\n## Results\n");
    for s in [
        "idle",
        "auth-storm-cold",
        "auth-storm-warm",
        "push-latency",
        "fanout",
        "cluster-push-latency",
        "cluster-fanout",
        "jitter",
        "avalanche",
    ] {
        scenario_table(&mut md, rows, s);
    }
    // log-cost-<depth>, in the order measured.
    let mut depths: Vec<&str> = Vec::new();
    for r in rows.iter().filter(|r| r.scenario.starts_with("log-cost-")) {
        if !depths.contains(&r.scenario.as_str()) {
            depths.push(&r.scenario);
        }
    }
    for s in depths {
        scenario_table(&mut md, rows, s);
    }
    let failed: Vec<&Row> = rows.iter().filter(|r| r.metric == "failed").collect();
    if !failed.is_empty() {
        md.push_str("\nFailed runs: ");
        for r in failed {
            let _ = write!(md, "{} on {}; ", r.scenario, r.target);
        }
        md.push('\n');
    }
    md.push_str("\n## Charts\n\nBars: Tidings blue, peer orange, floor grey; the same numbers as the tables above.\n\n");
    for (scenario, metric, file, caption) in [
        (
            "idle",
            "rss_per_conn",
            "idle-rss.png",
            "idle: server RSS per connection (lower is better)",
        ),
        (
            "auth-storm-warm",
            "auths_per_s",
            "auth-warm.png",
            "warm auth storm: auths/s (higher is better)",
        ),
        (
            "auth-storm-cold",
            "auths_per_s",
            "auth-cold.png",
            "cold auth storm: auths/s (higher is better)",
        ),
        (
            "push-latency",
            "p99",
            "push-p99.png",
            "push latency p99 (lower is better)",
        ),
        (
            "fanout",
            "deliveries_per_s",
            "fanout-rate.png",
            "fanout deliveries/s (higher is better)",
        ),
    ] {
        let values: Vec<(usize, f64)> = TARGETS
            .iter()
            .enumerate()
            // The floor only stands for fan-out; its idle memory is
            // tungstenite's default buffers and would dwarf the bars.
            .filter(|(_, t)| scenario == "fanout" || **t != "floor")
            .filter_map(|(i, t)| find(rows, scenario, t, metric).map(|v| (i, v)))
            .collect();
        if values.is_empty() {
            continue;
        }
        let unit = rows
            .iter()
            .find(|r| r.scenario == scenario && r.metric == metric)
            .map(|r| r.unit.clone())
            .unwrap_or_default();
        bar_chart(&charts.join(file), caption, &unit, &values)?;
        let _ = writeln!(md, "![{caption}](bench/{file})\n\n*{caption}*\n");
    }
    std::fs::write(out, md)?;
    Ok(())
}

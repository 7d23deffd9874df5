//! Result rows: printed as a table and written as CSV under `bench/results/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub scenario: String,
    pub target: String,
    pub n: usize,
    pub metric: String,
    pub value: f64,
    pub unit: String,
}

impl Row {
    pub fn new(
        scenario: &str,
        target: &str,
        n: usize,
        metric: &str,
        value: f64,
        unit: &str,
    ) -> Self {
        Self {
            scenario: scenario.into(),
            target: target.into(),
            n,
            metric: metric.into(),
            value,
            unit: unit.into(),
        }
    }
}

pub const CSV_HEADER: &str = "scenario,target,n,metric,value,unit";

pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:<8} {:>7} {:<26} {:>14} unit",
        "scenario", "target", "n", "metric", "value"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<22} {:<8} {:>7} {:<26} {:>14.3} {}",
            r.scenario, r.target, r.n, r.metric, r.value, r.unit
        );
    }
    out
}

pub fn to_csv(rows: &[Row]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{}",
            r.scenario, r.target, r.n, r.metric, r.value, r.unit
        );
    }
    out
}

pub fn parse_csv(text: &str) -> Vec<Row> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != 6 {
                return None;
            }
            Some(Row::new(
                f[0],
                f[1],
                f[2].parse().ok()?,
                f[3],
                f[4].parse().ok()?,
                f[5],
            ))
        })
        .collect()
}

/// `bench/results/` of this checkout.
pub fn results_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results")
}

/// Writes `rows` to `path`, or to `bench/results/<unix time>.csv`.
pub fn write_csv(rows: &[Row], path: Option<&Path>) -> Result<PathBuf> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            results_dir().join(format!("{secs}.csv"))
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, to_csv(rows)).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// The value of one metric, if measured.
pub fn find(rows: &[Row], scenario: &str, target: &str, metric: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.target == target && r.metric == metric)
        .map(|r| r.value)
}

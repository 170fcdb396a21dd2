//! The eval report for people: the figures of each prompt set side by side, then per
//! label, the confusion matrices, the mistakes by kind, calibration, and the cases
//! whose verdict changed.

use std::fmt::Write as _;

use super::Report;
use super::report::{FALLBACK, Figures};
use crate::record::summary::Percentiles;

/// Width of the first column and of each run's column.
const NAME: usize = 24;
const CELL: usize = 22;

/// The whole report as text.
pub fn render(report: &Report) -> String {
    let runs: Vec<&Figures> = std::iter::once(&report.prompts)
        .chain(report.against.as_ref())
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "eval: {} cases from {} through {}",
        report.cases, report.set, report.classifier
    );
    if report.unreviewed > 0 {
        let _ = writeln!(
            out,
            "({} cases marked needs_review were left out)",
            report.unreviewed
        );
    }
    let _ = writeln!(out, "prompts: {}", report.prompts.prompts);
    let Some(against) = &report.against else {
        out.push('\n');
        return body(out, report, &runs);
    };
    let _ = writeln!(out, "against: {}\n", against.prompts);
    // Folder names can be long: the columns are headed by the flag, not the path.
    let _ = writeln!(out, "{:<NAME$}{:<CELL$}against", "", "prompts");
    body(out, report, &runs)
}

/// The figures, per label, confusion matrices and (with `--against`) the changes.
fn body(mut out: String, report: &Report, runs: &[&Figures]) -> String {
    row(&mut out, "accuracy", runs, |f| {
        format!("{}/{} {}", f.correct, f.cases, percent(Some(f.accuracy)))
    });
    row(&mut out, "routed right", runs, |f| {
        format!(
            "{}/{} {}",
            f.routed_correct,
            f.cases,
            percent(Some(f.routed_accuracy))
        )
    });
    row(&mut out, "fallbacks", runs, |f| {
        let b = &f.fallbacks;
        format!("{} ({} got no answer)", b.count, b.unreachable)
    });
    row(&mut out, "cost-weighted error", runs, |f| {
        format!("{:.3} ({:.2} in all)", f.cost.per_case, f.cost.total)
    });
    row(&mut out, "latency ms p50/p95/p99", runs, |f| {
        latency(&f.latency_ms)
    });
    row(&mut out, "calibration (ECE)", runs, |f| {
        f.calibration.as_ref().map_or_else(
            || "no confidences".into(),
            |c| format!("{:.3} ({} cases)", c.ece, c.cases),
        )
    });
    per_label(&mut out, report, runs);
    for f in runs {
        confusion(&mut out, report, f, runs.len() > 1);
        mistakes(&mut out, f);
        calibration(&mut out, f);
    }
    if report.against.is_some() {
        let _ = writeln!(out, "\nchanged verdicts: {}", report.changed.len());
        for c in &report.changed {
            let how = if c.after == c.label {
                "fixed"
            } else if c.before == c.label {
                "broken"
            } else {
                "still wrong"
            };
            let _ = writeln!(
                out,
                "  {}  {}  {} → {}  ({how})",
                c.id, c.label, c.before, c.after
            );
        }
    }
    if let Some(gate) = &report.gate {
        let _ = writeln!(
            out,
            "\ngate: accuracy {} {} --min-accuracy {}",
            percent(Some(gate.accuracy)),
            if gate.passed { "meets" } else { "is below" },
            percent(Some(gate.min_accuracy))
        );
    }
    out
}

/// One line: `name`, then `cell` of each run.
fn row(out: &mut String, name: &str, runs: &[&Figures], cell: impl Fn(&Figures) -> String) {
    let _ = write!(out, "{name:<NAME$}");
    for f in runs {
        let _ = write!(out, "{:<CELL$}", cell(f));
    }
    // The last cell's padding would trail the line.
    out.truncate(out.trim_end().len());
    out.push('\n');
}

fn per_label(out: &mut String, report: &Report, runs: &[&Figures]) {
    let _ = writeln!(out, "\nprecision / recall (support)");
    for (index, label) in report.labels.iter().enumerate() {
        row(out, &format!("  {label}"), runs, |f| {
            f.per_label.get(index).map_or_else(String::new, |l| {
                format!(
                    "{} / {} ({})",
                    percent(l.precision),
                    percent(l.recall),
                    l.support
                )
            })
        });
    }
}

fn confusion(out: &mut String, report: &Report, f: &Figures, named: bool) {
    let which = if !named {
        ""
    } else if std::ptr::eq(f, &report.prompts) {
        " of prompts"
    } else {
        " of against"
    };
    let _ = writeln!(
        out,
        "\nconfusion{which} (rows: the right label; columns: the router's verdict)"
    );
    let columns: Vec<&str> = report
        .labels
        .iter()
        .map(String::as_str)
        .chain([FALLBACK])
        .collect();
    let width = columns.iter().map(|c| c.len()).max().unwrap_or(8) + 2;
    let _ = write!(out, "  {:<12}", "");
    for column in &columns {
        let _ = write!(out, "{column:>width$}");
    }
    out.push('\n');
    for label in &report.labels {
        let Some(cells) = f.confusion.get(label) else {
            continue;
        };
        // Rows for labels only the router gave (no case has them) would be all zeros.
        if !f
            .per_label
            .iter()
            .any(|l| &l.label == label && l.support > 0)
        {
            continue;
        }
        let _ = write!(out, "  {label:<12}");
        for column in &columns {
            let count = cells.get(*column).copied().unwrap_or(0);
            let _ = write!(out, "{count:>width$}");
        }
        out.push('\n');
    }
}

fn mistakes(out: &mut String, f: &Figures) {
    if f.cost.mistakes.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nmistakes (right>routed: count, cost)");
    for (pair, m) in &f.cost.mistakes {
        let _ = writeln!(out, "  {pair:<22}{:>4}  {:>6.2}", m.count, m.cost);
    }
}

fn calibration(out: &mut String, f: &Figures) {
    let Some(c) = &f.calibration else {
        let _ = writeln!(out, "\ncalibration: no confidences recorded");
        return;
    };
    let _ = writeln!(
        out,
        "\ncalibration: {} cases, expected calibration error {:.3}",
        c.cases, c.ece
    );
    let _ = writeln!(out, "  confidence    cases  mean conf  accuracy");
    for b in &c.buckets {
        let _ = writeln!(
            out,
            "  {:.1}–{:.1}   {:>8}  {:>9}  {:>8}",
            b.from,
            b.to,
            b.count,
            percent(Some(b.confidence)),
            percent(Some(b.accuracy))
        );
    }
}

fn latency(p: &Percentiles) -> String {
    let ms = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| v.to_string());
    format!(
        "{}/{}/{} ({} asked)",
        ms(p.p50),
        ms(p.p95),
        ms(p.p99),
        p.count
    )
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{:.1}%", v * 100.0))
}

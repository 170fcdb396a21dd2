//! Summarises logged sessions for `ai-router sessions stats` and `GET /stats`: shares
//! per route and label, latency percentiles, errors, fallbacks and META suspects by
//! reason, xAI tokens and cost, and what the same traffic would have cost all-cloud.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

pub use super::cost::Cloud;
use super::cost::StepCost;
use super::store::LoggedSession;

/// Latency percentiles (nearest rank) over `count` values, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
}

/// Token counts and what they cost.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Spend {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Models that had tokens but no price in `[prices]` (their cost counts as 0).
    pub unpriced_models: Vec<String>,
}

/// The whole summary; `Serialize` gives the `--json` and `/stats` shape.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub sessions: usize,
    pub routes: BTreeMap<String, usize>,
    pub classes: BTreeMap<String, usize>,
    pub meta_share: f64,
    pub outcomes: BTreeMap<String, usize>,
    pub classification_ms: Percentiles,
    pub total_ms: BTreeMap<String, Percentiles>,
    pub ttft_ms: BTreeMap<String, Percentiles>,
    pub errors: BTreeMap<String, usize>,
    pub classification_fallbacks: BTreeMap<String, usize>,
    pub route_fallbacks: BTreeMap<String, usize>,
    /// Requests that looked like a client's task but matched no META rule, by the
    /// `[[suspect]]` table they fit: a new client template to add a rule for.
    pub meta_suspects: BTreeMap<String, usize>,
    /// Spend on the cloud backends (xAI, as shipped).
    pub xai: Spend,
    /// The same answers from the cloud model, plus the search hops.
    pub all_cloud: Spend,
    /// What answering locally saved: the all-cloud estimate less the cloud spend.
    pub saving_usd: f64,
}

/// Summarises `sessions`; `cloud` says which backends cost money and which model
/// prices the all-cloud estimate.
pub fn summarise(sessions: &[LoggedSession], cloud: &Cloud) -> Summary {
    let mut summary = Summary {
        sessions: sessions.len(),
        ..Summary::default()
    };
    let mut classification = Vec::new();
    let mut totals: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut ttfts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for session in sessions {
        let decision = &session.decision;
        let route = decision
            .route
            .as_ref()
            .map_or_else(|| "rejected".to_string(), |r| r.to_string());
        *summary.routes.entry(route.clone()).or_default() += 1;
        if let Some(class) = &decision.classification {
            *summary.classes.entry(class.to_string()).or_default() += 1;
        }
        *summary.outcomes.entry(session.outcome.clone()).or_default() += 1;
        if let Some(step) = session.step("classify") {
            classification.push(step.duration_ms.max(decision.classification_ms));
        }
        totals
            .entry(route.clone())
            .or_default()
            .push(session.total_ms);
        if let Some(ttft) = session.step("answer").and_then(|s| s.ttft_ms) {
            ttfts.entry(route).or_default().push(ttft);
        }
        if session.outcome == "error"
            && let Some(error) = &session.error
        {
            *summary.errors.entry(reason(error)).or_default() += 1;
        }
        if let Some(why) = &decision.classification_fallback {
            *summary
                .classification_fallbacks
                .entry(reason(why))
                .or_default() += 1;
        }
        if let Some(why) = &decision.route_fallback {
            *summary.route_fallbacks.entry(reason(why)).or_default() += 1;
        }
        if let Some(why) = &decision.meta_suspect {
            *summary.meta_suspects.entry(reason(why)).or_default() += 1;
        }
        for step in &session.steps {
            let priced = cloud.step(&StepCost {
                step: &step.step,
                provider: &step.provider,
                model: &step.model,
                usage: step.usage.as_ref(),
            });
            if let Some(cost) = priced.paid {
                add(
                    &mut summary.xai,
                    &step.model,
                    priced.input,
                    priced.output,
                    cost,
                );
            }
            if let Some((model, cost)) = priced.all_cloud {
                add(
                    &mut summary.all_cloud,
                    model,
                    priced.input,
                    priced.output,
                    cost,
                );
            }
        }
    }
    let meta = summary.classes.get("META").copied().unwrap_or(0);
    summary.meta_share = round(share(meta, sessions.len()), 4);
    // Sums of many small costs carry float noise (25.125999999999999); ten decimals
    // keep a single cheap answer's cost exact.
    summary.xai.cost_usd = round(summary.xai.cost_usd, 10);
    summary.all_cloud.cost_usd = round(summary.all_cloud.cost_usd, 10);
    summary.saving_usd = round(summary.all_cloud.cost_usd - summary.xai.cost_usd, 10);
    summary.classification_ms = percentiles(classification);
    summary.total_ms = totals
        .into_iter()
        .map(|(k, v)| (k, percentiles(v)))
        .collect();
    summary.ttft_ms = ttfts
        .into_iter()
        .map(|(k, v)| (k, percentiles(v)))
        .collect();
    summary
}

/// `value` to `digits` decimals.
pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// `part / whole`, 0 when there is nothing.
fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Nearest-rank percentiles: p is the smallest value with at least p% of values ≤ it.
pub fn percentiles(mut values: Vec<u64>) -> Percentiles {
    values.sort_unstable();
    let rank = |p: usize| -> Option<u64> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let index = (p * n).div_ceil(100).clamp(1, n) - 1;
        values.get(index).copied()
    };
    Percentiles {
        count: values.len(),
        p50: rank(50),
        p95: rank(95),
        p99: rank(99),
    }
}

/// A reason without its specifics after `;` (e.g. "…; used MODERATE (the default)"),
/// cut to a readable length, so equal causes count together.
fn reason(text: &str) -> String {
    let head = text.split(';').next().unwrap_or(text).trim();
    super::session::cut(head, 100)
}

/// Adds a step's tokens and cost (`None`: its model has no price) to `spend`.
fn add(spend: &mut Spend, model: &str, input: u64, output: u64, cost: Option<f64>) {
    if input + output == 0 {
        return;
    }
    spend.input_tokens += input;
    spend.output_tokens += output;
    match cost {
        Some(usd) => spend.cost_usd += usd,
        None if !spend.unpriced_models.iter().any(|m| m == model) => {
            spend.unpriced_models.push(model.to_string());
        }
        None => {}
    }
}

/// The summary for people.
pub fn render(summary: &Summary) -> String {
    let mut out = String::new();
    let n = summary.sessions;
    let _ = writeln!(out, "sessions        {n}");
    let _ = writeln!(out, "routes          {}", counts(&summary.routes, n));
    let _ = writeln!(out, "labels          {}", counts(&summary.classes, n));
    let _ = writeln!(out, "META share      {:.1}%", summary.meta_share * 100.0);
    let _ = writeln!(out, "outcomes        {}", counts(&summary.outcomes, n));
    let _ = writeln!(out, "classification  {}", pct(&summary.classification_ms));
    for (route, p) in &summary.total_ms {
        let _ = writeln!(out, "total {route:<9} {}", pct(p));
    }
    for (route, p) in &summary.ttft_ms {
        let _ = writeln!(out, "ttft {route:<10} {}", pct(p));
    }
    for (title, reasons) in [
        ("errors", &summary.errors),
        ("classifier fallbacks", &summary.classification_fallbacks),
        ("route fallbacks", &summary.route_fallbacks),
        (
            "META suspects (a client task no rule matched)",
            &summary.meta_suspects,
        ),
    ] {
        let _ = writeln!(
            out,
            "{title}: {}",
            if reasons.is_empty() { "none" } else { "" }
        );
        for (why, count) in reasons {
            let _ = writeln!(out, "  {count:>5}× {why}");
        }
    }
    let _ = writeln!(out, "xAI spend       {}", spend(&summary.xai));
    let _ = writeln!(out, "all-cloud       {}", spend(&summary.all_cloud));
    let _ = writeln!(
        out,
        "saving          ${:.4} against all-cloud",
        summary.saving_usd
    );
    out
}

fn counts(map: &BTreeMap<String, usize>, total: usize) -> String {
    let mut items: Vec<_> = map.iter().collect();
    items.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let parts: Vec<String> = items
        .iter()
        .map(|(k, v)| format!("{k} {v} ({:.1}%)", share(**v, total) * 100.0))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("  ")
    }
}

fn pct(p: &Percentiles) -> String {
    let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v}"));
    format!(
        "p50 {} ms  p95 {} ms  p99 {} ms  (n={})",
        ms(p.p50),
        ms(p.p95),
        ms(p.p99),
        p.count
    )
}

fn spend(s: &Spend) -> String {
    let mut text = format!(
        "{} in / {} out tokens ≈ ${:.4}",
        s.input_tokens, s.output_tokens, s.cost_usd
    );
    if !s.unpriced_models.is_empty() {
        let _ = write!(text, " (no price for: {})", s.unpriced_models.join(", "));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Price;
    use crate::record::cost::usd;

    #[test]
    fn nearest_rank_percentiles() {
        let p = percentiles((1..=100).collect());
        assert_eq!(
            (p.p50, p.p95, p.p99, p.count),
            (Some(50), Some(95), Some(99), 100)
        );
        let few = percentiles(vec![30, 10, 20]);
        assert_eq!((few.p50, few.p95, few.p99), (Some(20), Some(30), Some(30)));
        assert_eq!(percentiles(vec![]).p50, None);
        assert_eq!(percentiles(vec![7]).p99, Some(7));
    }

    #[test]
    fn costs_and_shares_carry_no_float_noise() {
        let price = Price {
            input_per_million: 0.2,
            output_per_million: 0.5,
        };
        let mut spend = Spend::default();
        // 0.1 + 0.2 in floats is 0.30000000000000004.
        for input in [500_000, 1_000_000] {
            add(&mut spend, "grok", input, 0, Some(usd(&price, input, 0)));
        }
        assert_ne!(spend.cost_usd, 0.3);
        assert_eq!(round(spend.cost_usd, 10), 0.3);
        assert_eq!(round(25.125999999999999, 10).to_string(), "25.126");
        assert_eq!(round(share(1, 3), 4), 0.3333);
    }

    #[test]
    fn reasons_group_without_their_specifics() {
        assert_eq!(
            reason("the classifier timed out after 10 s; used MODERATE (the default)"),
            "the classifier timed out after 10 s"
        );
    }
}

//! The figures of one run over the golden set: accuracy, per-label precision and
//! recall, the confusion matrix, cost-weighted error, confidence calibration and
//! latency percentiles; and the cases two runs decided differently.

use std::collections::BTreeMap;

use serde::Serialize;

use super::verdict::Verdict;
use crate::config::EvalConfig;
use crate::record::summary::{Percentiles, percentiles};

/// The confusion matrix's column for cases the classifier gave no usable label.
pub const FALLBACK: &str = "fallback";

/// Calibration buckets: predicted confidence in tenths.
const BUCKETS: usize = 10;

/// One prompt set's figures.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    /// The prompts folder measured.
    pub prompts: String,
    pub cases: usize,
    /// Cases the classifier labelled right (a fallback is never right, even when the
    /// fallback label happens to be: it is not the classifier's verdict).
    pub correct: usize,
    pub accuracy: f64,
    /// Cases whose route would have been right, fallbacks included: what users got.
    pub routed_correct: usize,
    pub routed_accuracy: f64,
    pub fallbacks: Fallbacks,
    /// Per label, in the order of `labels`.
    pub per_label: Vec<LabelFigures>,
    /// `confusion[true label][verdict]`: every label of `labels` and `fallback` as
    /// columns, zeros included.
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    pub cost: Cost,
    /// `None` when no decision recorded a confidence.
    pub calibration: Option<Calibration>,
    /// The classifier's time per case it was asked.
    pub latency_ms: Percentiles,
    pub verdicts: Vec<Verdict>,
}

/// Cases the router decided without the classifier's label.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Fallbacks {
    pub count: usize,
    /// Of them, the classifier could not be asked (down, timed out, an error status).
    pub unreachable: usize,
    /// Of them, the fallback's label was the right one.
    pub routed_correct: usize,
}

/// Precision, recall and support of one label.
#[derive(Clone, Debug, Serialize)]
pub struct LabelFigures {
    pub label: String,
    /// Right / given: `None` when the classifier never gave the label.
    pub precision: Option<f64>,
    /// Right / support: `None` when the set has no case of the label.
    pub recall: Option<f64>,
    /// Cases whose right label it is.
    pub support: usize,
    /// Cases the classifier gave it.
    pub predicted: usize,
}

/// What the mistakes cost, by `[eval.costs]`, counted on the route that answers.
#[derive(Clone, Debug, Serialize)]
pub struct Cost {
    pub total: f64,
    /// `total / cases`: 0 is perfect; `eval.default_cost` is a default mistake on every case.
    pub per_case: f64,
    /// `"TRUE>ROUTED"`: how many, and what they cost.
    pub mistakes: BTreeMap<String, Mistakes>,
}

/// One kind of mistake.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Mistakes {
    pub count: usize,
    pub cost: f64,
}

/// How well the classifier's confidence predicts its accuracy.
#[derive(Clone, Debug, Serialize)]
pub struct Calibration {
    /// Cases with a recorded confidence.
    pub cases: usize,
    /// The non-empty buckets, lowest first.
    pub buckets: Vec<Bucket>,
    /// Expected calibration error: the case-weighted mean gap between each bucket's
    /// mean confidence and its accuracy (0 is perfect).
    pub ece: f64,
}

/// The cases whose confidence is in `[from, to)` (the last bucket includes 1).
#[derive(Clone, Debug, Serialize)]
pub struct Bucket {
    pub from: f64,
    pub to: f64,
    pub count: usize,
    pub confidence: f64,
    pub accuracy: f64,
}

/// A case two prompt sets decided differently.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub id: String,
    pub label: String,
    pub before: String,
    pub after: String,
}

/// The figures of `verdicts`, with `labels` as the rows and columns (in that order).
pub fn figures(
    prompts: &str,
    verdicts: Vec<Verdict>,
    labels: &[String],
    eval: &EvalConfig,
) -> Figures {
    let cases = verdicts.len();
    let correct = verdicts
        .iter()
        .filter(|v| v.predicted.as_deref() == Some(v.label.as_str()))
        .count();
    let routed_correct = verdicts.iter().filter(|v| v.routed == v.label).count();
    let fell_back: Vec<&Verdict> = verdicts.iter().filter(|v| v.predicted.is_none()).collect();
    let fallbacks = Fallbacks {
        count: fell_back.len(),
        unreachable: fell_back.iter().filter(|v| v.unreachable).count(),
        routed_correct: fell_back.iter().filter(|v| v.routed == v.label).count(),
    };
    let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for row in labels {
        let cells = confusion.entry(row.clone()).or_default();
        for column in labels.iter().map(String::as_str).chain([FALLBACK]) {
            cells.insert(column.to_string(), 0);
        }
    }
    for v in &verdicts {
        if let Some(cell) = confusion
            .get_mut(&v.label)
            .and_then(|r| r.get_mut(v.shown()))
        {
            *cell += 1;
        }
    }
    let per_label = labels
        .iter()
        .map(|label| label_figures(label, &verdicts))
        .collect();
    let samples: Vec<(bool, f64)> = verdicts
        .iter()
        .filter_map(|v| {
            let p = v.confidence.as_ref()?.p;
            Some((v.said.as_deref() == Some(v.label.as_str()), p))
        })
        .collect();
    let latency = verdicts.iter().filter_map(|v| v.ms).collect();
    Figures {
        prompts: prompts.to_string(),
        cases,
        correct,
        accuracy: share(correct, cases),
        routed_correct,
        routed_accuracy: share(routed_correct, cases),
        fallbacks,
        per_label,
        confusion,
        cost: cost(&verdicts, eval),
        calibration: calibrate(&samples),
        latency_ms: percentiles(latency),
        verdicts,
    }
}

fn label_figures(label: &str, verdicts: &[Verdict]) -> LabelFigures {
    let support = verdicts.iter().filter(|v| v.label == label).count();
    let predicted = verdicts
        .iter()
        .filter(|v| v.predicted.as_deref() == Some(label))
        .count();
    let right = verdicts
        .iter()
        .filter(|v| v.label == label && v.predicted.as_deref() == Some(label))
        .count();
    LabelFigures {
        label: label.to_string(),
        precision: (predicted > 0).then(|| share(right, predicted)),
        recall: (support > 0).then(|| share(right, support)),
        support,
        predicted,
    }
}

/// Mistakes are weighed on the route that answers, a fallback's included: that is
/// where the money or the quality goes.
fn cost(verdicts: &[Verdict], eval: &EvalConfig) -> Cost {
    let mut mistakes: BTreeMap<String, Mistakes> = BTreeMap::new();
    for v in verdicts.iter().filter(|v| v.routed != v.label) {
        let entry = mistakes
            .entry(format!("{}>{}", v.label, v.routed))
            .or_default();
        entry.count += 1;
        entry.cost += eval.cost(&v.label, &v.routed);
    }
    let total: f64 = mistakes.values().map(|m| m.cost).sum();
    Cost {
        total,
        per_case: if verdicts.is_empty() {
            0.0
        } else {
            total / verdicts.len() as f64
        },
        mistakes,
    }
}

/// Calibration of `(right, confidence)` samples in tenths; `None` without samples.
pub fn calibrate(samples: &[(bool, f64)]) -> Option<Calibration> {
    if samples.is_empty() {
        return None;
    }
    let mut sums = [(0usize, 0.0f64, 0usize); BUCKETS];
    for &(right, p) in samples {
        let p = p.clamp(0.0, 1.0);
        // Truncation is the bucketing; 1.0 belongs to the last bucket.
        let index = ((p * BUCKETS as f64) as usize).min(BUCKETS - 1);
        let bucket = &mut sums[index];
        bucket.0 += 1;
        bucket.1 += p;
        bucket.2 += usize::from(right);
    }
    let total = samples.len() as f64;
    let mut ece = 0.0;
    let mut buckets = Vec::new();
    for (index, &(count, p_sum, right)) in sums.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let confidence = p_sum / count as f64;
        let accuracy = share(right, count);
        ece += count as f64 / total * (accuracy - confidence).abs();
        buckets.push(Bucket {
            from: index as f64 / BUCKETS as f64,
            to: (index + 1) as f64 / BUCKETS as f64,
            count,
            confidence,
            accuracy,
        });
    }
    Some(Calibration {
        cases: samples.len(),
        buckets,
        ece,
    })
}

/// The cases whose verdict differs between two runs over the same set.
pub fn changes(before: &[Verdict], after: &[Verdict]) -> Vec<Change> {
    before
        .iter()
        .zip(after)
        .filter(|(b, a)| b.shown() != a.shown())
        .map(|(b, a)| Change {
            id: b.id.clone(),
            label: b.label.clone(),
            before: b.shown().to_string(),
            after: a.shown().to_string(),
        })
        .collect()
}

/// The labels as rows and columns: the set's in the order it first uses them, then any
/// other the router gave (META from a rule, say), alphabetically.
pub fn labels(verdicts: &[Verdict]) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for v in verdicts {
        if !labels.contains(&v.label) {
            labels.push(v.label.clone());
        }
    }
    let mut others: Vec<String> = verdicts
        .iter()
        .filter_map(|v| v.predicted.clone())
        .filter(|p| !labels.contains(p))
        .collect();
    others.sort();
    others.dedup();
    labels.extend(others);
    labels
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_buckets_confidence_and_weighs_the_gaps() {
        // Hand-checked: 0.95 and 0.91 land in [0.9, 1], one right → conf 0.93, acc 0.5;
        // 0.6 and 0.65 in [0.6, 0.7), both right → conf 0.625, acc 1; 1.0 in the last
        // bucket, right; 0.3 in [0.3, 0.4), wrong.
        let samples = [
            (true, 0.95),
            (false, 0.91),
            (true, 0.6),
            (true, 0.65),
            (true, 1.0),
            (false, 0.3),
        ];
        let c = calibrate(&samples).unwrap();
        assert_eq!(c.cases, 6);
        let shape: Vec<(usize, usize)> = c
            .buckets
            .iter()
            .map(|b| ((b.from * 10.0).round() as usize, b.count))
            .collect();
        assert_eq!(shape, vec![(3, 1), (6, 2), (9, 3)]);
        let top = &c.buckets[2];
        assert!((top.confidence - (0.95 + 0.91 + 1.0) / 3.0).abs() < 1e-12);
        assert!((top.accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.buckets[1].confidence - 0.625).abs() < 1e-12);
        assert!((c.buckets[0].accuracy - 0.0).abs() < 1e-12);
        // ECE = 1/6·|0 − 0.3| + 2/6·|1 − 0.625| + 3/6·|2/3 − 2.86/3|
        let expected = 0.3 / 6.0 + 2.0 / 6.0 * 0.375 + 0.5 * ((2.86 - 2.0) / 3.0);
        assert!((c.ece - expected).abs() < 1e-12, "{} vs {expected}", c.ece);
        assert!(calibrate(&[]).is_none());
        let perfect = calibrate(&[(true, 1.0), (true, 1.0)]).unwrap();
        assert!(perfect.ece.abs() < 1e-12);
    }

    #[test]
    fn mistakes_cost_what_the_config_says_on_the_route_that_answers() {
        let verdict = |label: &str, predicted: Option<&str>, routed: &str| Verdict {
            id: label.into(),
            label: label.into(),
            predicted: predicted.map(String::from),
            routed: routed.into(),
            fallback: predicted.is_none().then(|| "no label".into()),
            said: predicted.map(String::from),
            confidence: None,
            ms: Some(5),
            unreachable: false,
        };
        let eval = EvalConfig {
            default_cost: 1.0,
            costs: [("COMPLEX>MODERATE".to_string(), 2.0)].into(),
        };
        let verdicts = vec![
            verdict("COMPLEX", Some("MODERATE"), "MODERATE"),
            verdict("COMPLEX", None, "MODERATE"),
            verdict("SIMPLE", Some("COMPLEX"), "COMPLEX"),
            verdict("MODERATE", None, "MODERATE"),
        ];
        let c = cost(&verdicts, &eval);
        assert!((c.total - 5.0).abs() < 1e-12);
        assert!((c.per_case - 1.25).abs() < 1e-12);
        assert_eq!(c.mistakes["COMPLEX>MODERATE"].count, 2);
        assert_eq!(c.mistakes["SIMPLE>COMPLEX"].count, 1);
        assert!(!c.mistakes.contains_key("MODERATE>MODERATE"));
    }
}

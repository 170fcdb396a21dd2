//! Holding the classifier to the route table's labels, and reading how sure it was.
//!
//! The request side is decided once, at start-up: the fields each backend kind wants
//! (vLLM's `structured_outputs` or older `guided_choice`, llama-server's GBNF `grammar`),
//! thinking off in those modes, and `logprobs` when asked, are merged into the
//! classifier's parameters, so the session log's `params` shows exactly what was sent.
//! An admin's own `classifier_params` win over every one of them.
//!
//! The reply side turns the log-probabilities at the label's first token into the
//! label's probability among the labels the classifier could give, and the runner-up's.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::config::Constrain;
use crate::names::Label;
use crate::record::decision::Confidence;
use crate::record::summary::round;

use super::table::{META_LABEL, RouteTable};

/// How many alternatives per token are asked for: the most OpenAI's API allows, so a
/// label the model hesitated over is among them.
const TOP_LOGPROBS: u64 = 20;

/// The labels the classifier may give: the table's, but META and those a route keeps
/// from it (`classifier_may_choose = false`).
pub fn choosable(table: &RouteTable) -> Vec<Label> {
    table
        .iter()
        .filter(|route| route.classifier_may_choose && route.label != META_LABEL)
        .map(|route| route.label.clone())
        .collect()
}

/// `params` with the fields `mode` and `logprobs` need, where the admin set none.
pub fn shape(
    params: &Map<String, Value>,
    mode: Constrain,
    logprobs: bool,
    labels: &[Label],
) -> Map<String, Value> {
    let mut params = params.clone();
    let mut add = |key: &str, value: Value| {
        params.entry(key).or_insert(value);
    };
    match mode {
        Constrain::None => {}
        Constrain::StructuredOutputs => add("structured_outputs", json!({"choice": labels})),
        Constrain::GuidedChoice => add("guided_choice", json!(labels)),
        Constrain::Grammar => add("grammar", Value::from(grammar(labels))),
    }
    if logprobs {
        add("logprobs", Value::Bool(true));
        add("top_logprobs", Value::from(TOP_LOGPROBS));
    }
    if mode != Constrain::None {
        // A label is a word: thinking first would spend the call on tokens the
        // constraint then throws away (and vLLM applies it after the thinking).
        let kwargs = params
            .entry("chat_template_kwargs")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(kwargs) = kwargs.as_object_mut() {
            kwargs
                .entry("enable_thinking")
                .or_insert(Value::Bool(false));
        }
    }
    params
}

/// A GBNF grammar whose only sentences are the labels (labels are upper-case letters,
/// digits and `_`, so they need no escaping).
fn grammar(labels: &[Label]) -> String {
    let choices: Vec<String> = labels.iter().map(|l| format!("\"{l}\"")).collect();
    format!("root ::= {}", choices.join(" | "))
}

/// How sure the classifier was of `chosen`, from the `logprobs` of its reply, among
/// `labels`; `None` when the reply has none or they do not show the label.
pub fn confidence(reply: &Value, chosen: &Label, labels: &[Label]) -> Option<Confidence> {
    let tokens = reply.pointer("/choices/0/logprobs/content")?.as_array()?;
    let at = label_start(tokens, chosen)?;
    let mut mass: BTreeMap<&Label, f64> = BTreeMap::new();
    let mut seen: Vec<&str> = Vec::new();
    // The least probable alternative shown: a label not among them was at most this
    // probable. Servers report the model's own probabilities, before the constraint, so
    // a label the model did not favour is forced, not sure, and must not read as 1.0.
    let mut floor = f64::INFINITY;
    let sampled = &tokens[at];
    // The backend wrote this list: only as many as were asked for are read.
    let shown = sampled
        .get("top_logprobs")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let shown = &shown[..shown.len().min(TOP_LOGPROBS as usize)];
    if shown.is_empty() {
        return None; // nothing to compare the label with
    }
    // The sampled token last: it may lie outside the alternatives shown.
    for (i, alternative) in shown.iter().chain(std::iter::once(sampled)).enumerate() {
        let (Some(token), Some(logprob)) = (
            alternative.get("token").and_then(Value::as_str),
            alternative.get("logprob").and_then(Value::as_f64),
        ) else {
            continue;
        };
        // A log-probability is finite and at most 0; anything else is not one.
        if !logprob.is_finite() || logprob > 0.0 {
            continue;
        }
        // The sampled token is usually among the alternatives too: count it once.
        if seen.contains(&token) {
            continue;
        }
        seen.push(token);
        if i < shown.len() {
            floor = floor.min(logprob.exp());
        }
        if let Some(label) = only_label_starting(token, labels) {
            *mass.entry(label).or_default() += logprob.exp();
        }
    }
    let unseen = labels.iter().filter(|l| !mass.contains_key(l)).count();
    let total: f64 = mass.values().sum::<f64>() + unseen as f64 * floor.min(1.0);
    let own = mass.get(chosen).copied().unwrap_or(0.0);
    if !(total > 0.0 && own > 0.0 && total.is_finite()) {
        return None;
    }
    let runner_up = mass
        .iter()
        .filter(|(label, _)| **label != chosen)
        .max_by(|a, b| a.1.total_cmp(b.1));
    Some(Confidence {
        p: round(own / total, DIGITS),
        runner_up: runner_up.map(|(label, _)| (*label).clone()),
        runner_up_p: runner_up.map(|(_, p)| round(p / total, DIGITS)),
    })
}

/// The index of the token where `chosen` begins: the first whose text, with what
/// follows, starts with the label (ignoring case and leading spaces or quotes).
fn label_start(tokens: &[Value], chosen: &Label) -> Option<usize> {
    fn text(token: &Value) -> &str {
        token.get("token").and_then(Value::as_str).unwrap_or("")
    }
    let wanted = chosen.to_ascii_uppercase();
    (0..tokens.len()).find(|&i| {
        let first = trim(text(&tokens[i]));
        if first.is_empty() || !wanted.starts_with(&first.to_ascii_uppercase()) {
            return false;
        }
        let ahead: String = tokens[i..tokens.len().min(i + 8)]
            .iter()
            .map(text)
            .collect();
        trim(&ahead).to_ascii_uppercase().starts_with(&wanted)
    })
}

/// The one label `token` could begin, if exactly one.
fn only_label_starting<'a>(token: &str, labels: &'a [Label]) -> Option<&'a Label> {
    let token = trim(token).to_ascii_uppercase();
    if token.is_empty() {
        return None;
    }
    let mut matching = labels.iter().filter(|l| l.starts_with(token.as_str()));
    match (matching.next(), matching.next()) {
        (Some(label), None) => Some(label),
        _ => None,
    }
}

fn trim(token: &str) -> &str {
    token.trim_start_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '`')
}

/// Four decimals: more would be noise in a log a person reads.
const DIGITS: i32 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<Label> {
        ["COMPLEX", "ENRICH", "MODERATE", "SIMPLE"]
            .map(Label::from)
            .to_vec()
    }

    fn reply(tokens: Value) -> Value {
        json!({"choices": [{"message": {"content": "x"}, "logprobs": {"content": tokens}}]})
    }

    #[test]
    fn each_backend_kind_gets_its_constraint_and_thinking_off() {
        let labels = labels();
        let none = shape(&Map::new(), Constrain::None, false, &labels);
        assert!(none.is_empty());
        let vllm = shape(&Map::new(), Constrain::StructuredOutputs, true, &labels);
        assert_eq!(
            vllm["structured_outputs"],
            json!({"choice": ["COMPLEX", "ENRICH", "MODERATE", "SIMPLE"]})
        );
        assert_eq!(vllm["chat_template_kwargs"]["enable_thinking"], false);
        assert_eq!(
            (vllm["logprobs"].clone(), vllm["top_logprobs"].clone()),
            (json!(true), json!(20))
        );
        let old = shape(&Map::new(), Constrain::GuidedChoice, false, &labels);
        assert_eq!(old["guided_choice"][3], "SIMPLE");
        assert!(old.get("logprobs").is_none());
        let llama = shape(&Map::new(), Constrain::Grammar, false, &labels);
        assert_eq!(
            llama["grammar"],
            "root ::= \"COMPLEX\" | \"ENRICH\" | \"MODERATE\" | \"SIMPLE\""
        );
    }

    #[test]
    fn the_admins_own_parameters_win() {
        let mut own = Map::new();
        own.insert(
            "chat_template_kwargs".into(),
            json!({"enable_thinking": true}),
        );
        own.insert("top_logprobs".into(), json!(3));
        let params = shape(&own, Constrain::Grammar, true, &labels());
        assert_eq!(params["chat_template_kwargs"]["enable_thinking"], true);
        assert_eq!(params["top_logprobs"], 3);
        assert_eq!(params["logprobs"], true);
    }

    #[test]
    fn confidence_is_the_labels_share_of_the_label_tokens() {
        // Every label's first token shown, and one that begins none ("The").
        let tokens = json!([
            {"token": "SIMPLE", "logprob": 0.6f64.ln(), "top_logprobs": [
                {"token": "SIMPLE", "logprob": 0.6f64.ln()},
                {"token": "MOD", "logprob": 0.2f64.ln()},
                {"token": " COMP", "logprob": 0.05f64.ln()},
                {"token": "EN", "logprob": 0.05f64.ln()},
                {"token": "The", "logprob": 0.1f64.ln()}
            ]}
        ]);
        let c = confidence(&reply(tokens), &Label::from("SIMPLE"), &labels()).unwrap();
        assert_eq!(c.p, 0.6667);
        assert_eq!(c.runner_up.as_deref(), Some("MODERATE"));
        assert_eq!(c.runner_up_p, Some(0.2222));
    }

    #[test]
    fn a_label_the_model_did_not_favour_is_not_reported_as_sure() {
        // As llama-server answers under a grammar: the sampled "C" was 0.2 % likely,
        // the alternatives shown (0.6 % and up) begin no label.
        let tokens = json!([
            {"token": "C", "logprob": -6.1, "top_logprobs": [
                {"token": "class", "logprob": -1.5},
                {"token": "The", "logprob": -5.1}
            ]},
            {"token": "OMPLEX", "logprob": -0.1, "top_logprobs": []}
        ]);
        let c = confidence(&reply(tokens), &Label::from("COMPLEX"), &labels()).unwrap();
        assert!(c.p < 0.15, "{c:?}");
    }

    #[test]
    fn a_label_after_thinking_is_found_where_it_starts() {
        let tokens = json!([
            {"token": "Sure", "logprob": -0.1, "top_logprobs": []},
            {"token": ":", "logprob": -0.1, "top_logprobs": []},
            {"token": " COMP", "logprob": 0.9f64.ln(), "top_logprobs": [
                {"token": " COMP", "logprob": 0.9f64.ln()},
                {"token": " EN", "logprob": 0.04f64.ln()},
                {"token": " S", "logprob": 0.05f64.ln()},
                {"token": "MOD", "logprob": 0.01f64.ln()}
            ]},
            {"token": "LEX", "logprob": -0.01, "top_logprobs": []}
        ]);
        let c = confidence(&reply(tokens), &Label::from("COMPLEX"), &labels()).unwrap();
        assert_eq!(c.p, 0.9);
        assert_eq!(c.runner_up_p, Some(0.05));
    }

    #[test]
    fn a_backends_nonsense_is_no_confidence_never_nan() {
        let tokens = json!([
            {"token": "SIMPLE", "logprob": 800.0, "top_logprobs": [
                {"token": "SIMPLE", "logprob": 800.0},
                {"token": "MOD", "logprob": 900.0}
            ]}
        ]);
        assert!(confidence(&reply(tokens), &Label::from("SIMPLE"), &labels()).is_none());
    }

    #[test]
    fn no_logprobs_or_no_label_token_means_no_confidence() {
        let plain = json!({"choices": [{"message": {"content": "SIMPLE"}}]});
        assert!(confidence(&plain, &Label::from("SIMPLE"), &labels()).is_none());
        let elsewhere = json!([{"token": "hello", "logprob": -0.1, "top_logprobs": []}]);
        assert!(confidence(&reply(elsewhere), &Label::from("SIMPLE"), &labels()).is_none());
    }

    #[test]
    fn a_token_two_labels_could_begin_counts_for_neither() {
        let labels = ["MODERATE", "MATH"].map(Label::from).to_vec();
        assert_eq!(only_label_starting("M", &labels), None);
        assert_eq!(
            only_label_starting(" MO", &labels).map(|l| l.as_str()),
            Some("MODERATE")
        );
    }
}

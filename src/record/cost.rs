//! What an answer cost: the tokens a backend reported (estimated from characters when it
//! reported none, and marked so), priced from `[prices]`; which backends cost money; and
//! what the same traffic would have cost all-cloud. `summary`, the budget ledger and
//! `/stats` all price steps here, so they agree.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::log::StepRecord;
use crate::config::{Config, Price};

/// Characters per token, for an estimate when a backend reports no usage: English text
/// with common tokenizers runs at about four.
const CHARS_PER_TOKEN: usize = 4;

/// The backends that cost money, and what the traffic would cost all-cloud.
#[derive(Clone, Debug, Default)]
pub struct Cloud {
    /// Backends that need a key or serve a priced model (xAI, as shipped).
    pub backends: Vec<String>,
    /// The model every answer is priced at for the all-cloud estimate: the cloud
    /// backends' model with the highest output price.
    pub model: String,
    /// `[prices]`.
    pub prices: BTreeMap<String, Price>,
}

impl Cloud {
    /// The cloud of `config`'s backends.
    pub fn of(config: &Config) -> Self {
        let prices = config.prices.clone();
        let paid: Vec<(&String, &crate::config::BackendConfig)> = config
            .backends
            .iter()
            .filter(|(_, b)| !b.api_key_env.trim().is_empty() || prices.contains_key(&b.model))
            .collect();
        let model = paid
            .iter()
            .filter_map(|(_, b)| Some((&b.model, prices.get(&b.model)?)))
            .max_by(|a, b| a.1.output_per_million.total_cmp(&b.1.output_per_million))
            .map(|(m, _)| m.clone())
            .unwrap_or_default();
        Cloud {
            backends: paid.iter().map(|(name, _)| (*name).clone()).collect(),
            model,
            prices,
        }
    }

    /// Whether `backend` costs money.
    pub fn is_paid(&self, backend: &str) -> bool {
        self.backends.iter().any(|b| b == backend)
    }

    /// What one step cost on its own backend (0 on a free one, `None` for a paid one
    /// whose model has no price), and what it adds to the all-cloud estimate.
    pub fn step<'a>(&'a self, step: &StepCost<'a>) -> Priced<'a> {
        let (input, output) = tokens(step.usage);
        let priced = |model: &str| self.prices.get(model).map(|p| usd(p, input, output));
        let paid = self.is_paid(step.provider).then(|| priced(step.model));
        // Every answer at the cloud model's price; a search hop is cloud work already.
        let all_cloud = match step.step {
            "answer" if !self.model.is_empty() => Some(self.model.as_str()),
            "enrich" => Some(step.model),
            _ => None,
        }
        .map(|model| (model, priced(model)));
        Priced {
            input,
            output,
            paid,
            all_cloud,
        }
    }
}

/// The parts of a step, live or read back from its file, that decide its cost.
#[derive(Clone, Copy, Debug)]
pub struct StepCost<'a> {
    /// `classify`, `enrich` or `answer`.
    pub step: &'a str,
    /// The backend's name.
    pub provider: &'a str,
    pub model: &'a str,
    pub usage: Option<&'a Value>,
}

/// One step, priced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Priced<'a> {
    pub input: u64,
    pub output: u64,
    /// `None` on a free backend; on a paid one its cost, `None` when its model has no
    /// price.
    pub paid: Option<Option<f64>>,
    /// For a step the all-cloud estimate counts (answers and search hops): the model it
    /// is priced at, and its cost (`None` when that model has no price).
    pub all_cloud: Option<(&'a str, Option<f64>)>,
}

impl Priced<'_> {
    /// What the step adds to the all-cloud estimate, in USD.
    pub fn all_cloud_usd(&self) -> f64 {
        self.all_cloud.and_then(|(_, usd)| usd).unwrap_or(0.0)
    }
}

/// USD for `input` and `output` tokens at `price`.
pub fn usd(price: &Price, input: u64, output: u64) -> f64 {
    (input as f64 * price.input_per_million + output as f64 * price.output_per_million)
        / 1_000_000.0
}

/// Input and output tokens from a chat (`prompt_tokens`) or Responses (`input_tokens`)
/// usage object.
pub fn tokens(usage: Option<&Value>) -> (u64, u64) {
    let Some(usage) = usage else { return (0, 0) };
    let get = |keys: [&str; 2]| {
        keys.iter()
            .find_map(|k| usage.get(*k).and_then(Value::as_u64))
            .unwrap_or(0)
    };
    (
        get(["prompt_tokens", "input_tokens"]),
        get(["completion_tokens", "output_tokens"]),
    )
}

/// Gives a step that answered but reported no usage (a stream cut short, a server that
/// ignores `include_usage`) an estimate from characters, marked `"estimated": true`, so
/// budgets and cost figures still count it and a reader knows it is a guess.
pub fn estimate_usage(step: &mut StepRecord) {
    let answered = step.status.is_some_and(|s| (200..300).contains(&s));
    let said = step.response_content.chars().count() + step.reasoning_content.chars().count();
    if step.usage.is_some() || !answered || said == 0 {
        return;
    }
    let input = step.sent_chars.div_ceil(CHARS_PER_TOKEN);
    let output = said.div_ceil(CHARS_PER_TOKEN);
    step.usage = Some(json!({
        "prompt_tokens": input,
        "completion_tokens": output,
        "total_tokens": input + output,
        "estimated": true,
    }));
}

/// Characters of text in `messages` (string contents and text parts).
pub(super) fn text_chars(messages: &Value) -> usize {
    let Some(messages) = messages.as_array() else {
        return 0;
    };
    messages
        .iter()
        .map(|message| match message.get("content") {
            Some(Value::String(text)) => text.chars().count(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .map(|text| text.chars().count())
                .sum(),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{BackendId, Step};

    fn answered(content: &str, usage: Option<Value>) -> StepRecord {
        let body = json!({"messages": [{"role": "user", "content": "x".repeat(40)}]});
        let mut step = StepRecord::sending(
            Step::Answer,
            &BackendId::from("xai"),
            "grok-4.3",
            body.as_object().unwrap(),
            "messages",
            false,
        );
        step.status = Some(200);
        step.response_content = content.into();
        step.usage = usage;
        step
    }

    #[test]
    fn an_answer_without_usage_gets_an_estimate_that_says_so() {
        let mut step = answered(&"y".repeat(10), None);
        estimate_usage(&mut step);
        let usage = step.usage.unwrap();
        assert_eq!(usage["prompt_tokens"], 10, "40 characters of input");
        assert_eq!(usage["completion_tokens"], 3, "10 characters, rounded up");
        assert_eq!(usage["estimated"], true);
    }

    #[test]
    fn reported_usage_and_failed_calls_are_left_alone() {
        let mut reported = answered("hi", Some(json!({"prompt_tokens": 7})));
        estimate_usage(&mut reported);
        assert_eq!(reported.usage, Some(json!({"prompt_tokens": 7})));
        let mut failed = answered("", None);
        failed.status = Some(502);
        estimate_usage(&mut failed);
        assert!(failed.usage.is_none());
    }

    #[test]
    fn a_paid_step_is_priced_and_a_free_one_is_not() {
        let cloud = Cloud {
            backends: vec!["xai".into()],
            model: "grok".into(),
            prices: [(
                "grok".to_string(),
                Price {
                    input_per_million: 1.0,
                    output_per_million: 2.0,
                },
            )]
            .into(),
        };
        let usage = json!({"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000});
        let step = |provider, model| StepCost {
            step: "answer",
            provider,
            model,
            usage: Some(&usage),
        };
        let paid = cloud.step(&step("xai", "grok"));
        assert_eq!(paid.paid, Some(Some(3.0)));
        assert_eq!(paid.all_cloud_usd(), 3.0);
        let free = cloud.step(&step("primary", "nemotron"));
        assert_eq!(free.paid, None);
        assert_eq!(
            free.all_cloud,
            Some(("grok", Some(3.0))),
            "priced at the cloud model"
        );
        assert_eq!(cloud.step(&step("xai", "unpriced")).paid, Some(None));
    }

    #[test]
    fn tokens_from_both_usage_shapes() {
        let chat = json!({"prompt_tokens": 10, "completion_tokens": 5});
        let responses = json!({"input_tokens": 7, "output_tokens": 3});
        assert_eq!(tokens(Some(&chat)), (10, 5));
        assert_eq!(tokens(Some(&responses)), (7, 3));
        assert_eq!(tokens(None), (0, 0));
    }
}

//! Property tests: whatever a client or a model sends, parsing never panics and keeps
//! its promises. (CI runs the default 256 cases per property.)

use ai_router::config::Config;
use ai_router::openai::ChatRequest;
use ai_router::routing::RouteTable;
use ai_router::routing::classify::cut_middle;
use ai_router::routing::meta_rules::MetaRules;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Arbitrary JSON, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                "(role|content|messages|stream|model|[a-z]{1,8})",
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The shipped route table, whose labels the classifier may write.
fn table() -> RouteTable {
    RouteTable::new(&Config::default())
}

fn shipped_rules() -> MetaRules {
    MetaRules::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/meta_rules.toml"
    )))
    .unwrap()
}

proptest! {
    #[test]
    fn any_bytes_parse_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(error) = ChatRequest::parse(&bytes) {
            prop_assert_eq!(error.status().as_u16(), 400);
        }
    }

    #[test]
    fn any_json_body_parses_or_names_the_problem(body in any_json()) {
        match ChatRequest::parse(body.to_string().as_bytes()) {
            Ok(request) => {
                prop_assert!(!request.messages().is_empty());
                let _ = request.last_user_text();
            }
            Err(error) => {
                prop_assert_eq!(error.status().as_u16(), 400);
                prop_assert!(!error.to_string().is_empty());
            }
        }
    }

    #[test]
    fn a_label_is_found_whatever_surrounds_it(
        index in 0usize..5,
        before in "[ .,:*#\\n]{0,5}",
        after in "[ .,:*!\\n]{0,5}",
        lower in any::<bool>(),
        thought in "[a-z ]{0,30}",
    ) {
        let table = table();
        let label = table.iter().nth(index).unwrap().label.clone();
        let word = if lower { label.to_lowercase() } else { label.to_string() };
        let reply = format!("<think>{thought} COMPLEX?</think>{before}{word}{after}");
        prop_assert_eq!(table.parse_label(&reply), Some(label));
    }

    #[test]
    fn label_parsing_never_panics(reply in ".{0,200}") {
        let _ = table().parse_label(&reply);
    }

    #[test]
    fn meta_detection_never_panics(messages in prop::collection::vec(any_json(), 0..6)) {
        let _ = shipped_rules().detect(&messages);
    }

    #[test]
    fn a_plain_question_is_never_meta(question in "[A-Za-z ,?]{1,200}") {
        let messages = vec![json!({"role": "user", "content": question})];
        let rules = shipped_rules();
        prop_assert_eq!(rules.detect(&messages), None);
    }

    #[test]
    fn truncation_respects_the_budget_and_char_boundaries(text in ".{0,3000}", budget in 200usize..2000) {
        let cut = cut_middle(&text, budget, |n| format!("[{n}]"));
        let chars = text.chars().count();
        if chars <= budget {
            prop_assert_eq!(cut, text);
        } else {
            let note = format!("[{}]", chars - 2 * (budget / 2));
            prop_assert_eq!(cut.chars().count(), 2 * (budget / 2) + note.chars().count() + 4);
            prop_assert!(cut.contains(&note));
        }
    }
}

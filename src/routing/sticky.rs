//! Conversations that don't bounce (`routing.sticky_secs`, off by default). A chat that
//! needed the cloud model once should not have its next turn ("and what about n = 5?")
//! answered by a weaker one because the follow-up alone looks easy: within the window,
//! a follow-up is never routed lower than the highest route its conversation took.
//!
//! Clients send no conversation id, so a conversation is recognised as hosted routers
//! do: by who asks and how it opened (the system prompt and the first user message,
//! which every later turn resends). Labels outside `routing.sticky_order` (ENRICH:
//! fresh facts are needed turn by turn) neither raise nor are raised. Per replica, in
//! memory, bounded.

use std::time::Duration;

use serde_json::Value;

use crate::config::RoutingConfig;
use crate::names::Label;
use crate::openai::content_text;

use super::cache::{Recent, hash_of};

/// Conversations remembered at once; the oldest are forgotten first.
const CONVERSATIONS: usize = 4096;

/// The highest route of recent conversations.
#[derive(Debug)]
pub struct Sticky {
    /// Labels from lowest to highest.
    order: Vec<Label>,
    window: Duration,
    highest: Recent<Label>,
}

impl Sticky {
    /// The policy `[routing]` sets; off when `sticky_secs` is 0.
    pub fn new(config: &RoutingConfig) -> Self {
        let on = config.sticky_secs > 0;
        Sticky {
            order: config
                .sticky_order
                .iter()
                .map(|l| Label::from(l.as_str()))
                .collect(),
            window: Duration::from_secs(config.sticky_secs),
            highest: Recent::new(
                if on { CONVERSATIONS } else { 0 },
                Duration::from_secs(config.sticky_secs),
            ),
        }
    }

    /// Whether the policy is on (`routing.sticky_secs` above 0).
    pub fn enabled(&self) -> bool {
        self.highest.enabled()
    }

    /// The conversation `messages` belongs to, for the client `who`; `None` when the
    /// policy is off or the conversation has no user message.
    pub fn conversation(&self, who: &str, messages: &[Value]) -> Option<u64> {
        if !self.highest.enabled() {
            return None;
        }
        let text_of = |role: &str| {
            messages
                .iter()
                .find(|m| m.get("role").and_then(Value::as_str) == Some(role))
                .map(|m| content_text(m.get("content")))
        };
        let opening = text_of("user")?;
        Some(hash_of(&(who, text_of("system"), opening)))
    }

    /// `label` for a turn of `conversation`: raised to the conversation's highest within
    /// the window when this is a follow-up, with why; the highest is remembered.
    pub fn apply(
        &self,
        conversation: u64,
        label: Label,
        follow_up: bool,
    ) -> (Label, Option<String>) {
        let Some(rank) = self.rank(&label) else {
            return (label, None);
        };
        if !follow_up {
            // A first turn starts the conversation afresh (the same opening may begin a
            // new chat): what it needs is all that is remembered.
            self.highest.put(conversation, label.clone());
            return (label, None);
        }
        let before = self.highest.get(conversation);
        match before.filter(|b| self.rank(b).is_some_and(|r| r > rank)) {
            Some(highest) => {
                let why = format!(
                    "raised {label} to {highest}, this conversation's highest route within routing.sticky_secs ({} s)",
                    self.window.as_secs()
                );
                self.highest.put(conversation, highest.clone());
                (highest, Some(why))
            }
            None => {
                self.highest.put(conversation, label.clone());
                (label, None)
            }
        }
    }

    fn rank(&self, label: &Label) -> Option<usize> {
        self.order.iter().position(|l| l == label)
    }
}

/// Whether `messages` continue a conversation: an answer came before the last message.
pub fn is_follow_up(messages: &[Value]) -> bool {
    messages
        .iter()
        .any(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sticky(secs: u64) -> Sticky {
        let config = RoutingConfig {
            sticky_secs: secs,
            ..RoutingConfig::default()
        };
        Sticky::new(&config)
    }

    fn label(l: &str) -> Label {
        Label::from(l)
    }

    #[test]
    fn a_follow_up_is_never_routed_below_the_conversations_highest() {
        let s = sticky(600);
        let chat = [json!({"role": "user", "content": "prove it"})];
        let key = s.conversation("10.0.0.1", &chat).unwrap();
        assert_eq!(
            s.apply(key, label("COMPLEX"), false),
            (label("COMPLEX"), None)
        );
        let (raised, why) = s.apply(key, label("SIMPLE"), true);
        assert_eq!(raised, label("COMPLEX"));
        assert!(why.unwrap().starts_with("raised SIMPLE to COMPLEX"));
        // Unranked labels pass, and do not lower what is remembered.
        assert_eq!(s.apply(key, label("ENRICH"), true), (label("ENRICH"), None));
        assert_eq!(s.apply(key, label("MODERATE"), true).0, label("COMPLEX"));
        // A first turn is never raised, and starts afresh (a new chat that opens the
        // same way).
        assert_eq!(s.apply(key, label("SIMPLE"), false).0, label("SIMPLE"));
        assert_eq!(s.apply(key, label("MODERATE"), true).0, label("MODERATE"));
    }

    #[test]
    fn conversations_are_told_apart_by_who_asks_and_how_they_open() {
        let s = sticky(600);
        let a = [json!({"role": "user", "content": "hi"})];
        let b = [json!({"role": "user", "content": "hello"})];
        let with_system = [
            json!({"role": "system", "content": "be brief"}),
            json!({"role": "user", "content": "hi"}),
        ];
        let later = [
            json!({"role": "user", "content": "hi"}),
            json!({"role": "assistant", "content": "Hello!"}),
            json!({"role": "user", "content": "and now?"}),
        ];
        let key = |who, m: &[Value]| s.conversation(who, m).unwrap();
        assert_eq!(
            key("x", &a),
            key("x", &later),
            "later turns resend the opening"
        );
        assert_ne!(key("x", &a), key("y", &a));
        assert_ne!(key("x", &a), key("x", &b));
        assert_ne!(key("x", &a), key("x", &with_system));
        assert!(is_follow_up(&later) && !is_follow_up(&a));
    }

    #[test]
    fn off_by_default() {
        let s = sticky(0);
        assert!(
            s.conversation("x", &[json!({"role": "user", "content": "hi"})])
                .is_none()
        );
    }
}

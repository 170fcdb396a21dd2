//! Conversations that don't bounce (`routing.sticky_secs`): a follow-up that looks easy
//! keeps the cloud model its conversation needed a turn ago.

use serde_json::{Value, json};

use crate::common::fake::{Fake, label_reply};
use crate::common::{ConfigExt, TestRouter};

fn turn(history: &[(&str, &str)], last: &str) -> Value {
    let mut messages: Vec<Value> = history
        .iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    messages.push(json!({"role": "user", "content": last}));
    json!({"model": "ai-router", "messages": messages})
}

#[tokio::test]
async fn a_follow_up_keeps_its_conversations_highest_route_only_when_asked() {
    let primary = Fake::start().await;
    let xai = Fake::start().await;
    for (secs, second_route) in [(600, "xai"), (0, "primary")] {
        let xai_url = xai.url.clone();
        let router = TestRouter::start(&primary.url, |c| {
            c.backend("xai").base_url = xai_url.as_str().into();
            c.routing.sticky_secs = secs;
        })
        .await;
        router.classifier.set(label_reply("COMPLEX"));
        let first = router
            .chat(&turn(&[], "prove the four colour theorem"))
            .await;
        assert_eq!(first.headers()["x-ai-router-route"], "xai");
        router.classifier.set(label_reply("SIMPLE"));
        let follow = turn(
            &[
                ("user", "prove the four colour theorem"),
                ("assistant", "Proof: …"),
            ],
            "and for n = 5?",
        );
        let second = router.chat(&follow).await;
        assert_eq!(
            second.headers()["x-ai-router-route"],
            second_route,
            "sticky_secs {secs}"
        );
        // A new chat (no answer before it) is never raised.
        let fresh = router.chat(&turn(&[], "hi")).await;
        assert_eq!(fresh.headers()["x-ai-router-route"], "primary");
        let sessions = router.sessions(3).await;
        let raised = sessions
            .iter()
            .find(|s| s["user_query"] == "and for n = 5?")
            .unwrap();
        if secs > 0 {
            assert_eq!(raised["classification"], "COMPLEX");
            let why = raised["sticky"].as_str().unwrap();
            assert!(why.starts_with("raised SIMPLE to COMPLEX"), "{why}");
            assert!(
                router
                    .metrics()
                    .await
                    .contains("ai_router_sticky_raises_total 1")
            );
        } else {
            assert_eq!(raised["classification"], "SIMPLE");
            assert!(raised.get("sticky").is_none());
        }
    }
}

//! A route's "describe, then answer" hop: each image of the chat goes to a vision
//! backend with the hop's instructions and the text it came with; its description,
//! rendered through the hop's injection, takes the image's place, so a text model
//! answers from what the vision model saw. Each call is a `describe` step in the
//! session log. Descriptions are remembered by the image's SHA-256 for an hour, so a
//! follow-up in the same chat does not describe its images again.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::names::Step;
use crate::openai::{ChatRequest, ImagePart, content_text, image_parts};
use crate::prompts::{PromptSet, today};
use crate::record::capture;
use crate::record::session::{Session, millis};
use crate::routing::cache::Recent;
use crate::routing::table::DescribeHop;
use crate::upstream::{Backends, call_json_within};

/// Descriptions remembered: enough for the images of the chats going on at once.
const REMEMBERED: usize = 256;
/// How long a description is remembered: a conversation's follow-ups come within it.
const REMEMBER_FOR: Duration = Duration::from_secs(3600);

/// Descriptions by image, shared by every request.
#[derive(Debug)]
pub struct Descriptions(Recent<String>);

impl Default for Descriptions {
    fn default() -> Self {
        Descriptions(Recent::new(REMEMBERED, REMEMBER_FOR))
    }
}

/// `request` with every image replaced by its description from `hop`'s backend.
pub async fn describe_images(
    backends: &Backends,
    descriptions: &Descriptions,
    hop: &DescribeHop,
    prompts: &PromptSet,
    mut request: ChatRequest,
    session: &mut Session,
) -> Result<ChatRequest, Error> {
    let Some(backend) = backends.get(&hop.backend) else {
        return Err(Error::UpstreamProtocol {
            backend: hop.backend.clone(),
            reason: "not configured".into(),
        });
    };
    let messages = request
        .body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let found: Vec<ImagePart<'_>> = image_parts(messages).collect();
    if found.len() > hop.max_images {
        return Err(Error::invalid(
            format!(
                "this chat has {} images; the route that answers it describes at most {} (its describe.max_images)",
                found.len(),
                hop.max_images
            ),
            "messages",
        ));
    }
    let deadline = Instant::now() + hop.timeout;
    let mut texts = Vec::with_capacity(found.len());
    for (i, image) in found.iter().enumerate() {
        let key = key_of(image.url);
        let description = match descriptions.0.get(key) {
            Some(known) => known,
            None => {
                let context = content_text(messages[image.message].get("content"));
                let body = request_body(&backend.model, hop, prompts, &context, image.url);
                let left = deadline.saturating_duration_since(Instant::now());
                let text = describe_one(backend, body, left, hop.timeout, session).await?;
                descriptions.0.put(key, text.clone());
                text
            }
        };
        let number = (i + 1).to_string();
        texts.push(prompts.render(
            &hop.injection,
            &[
                ("description", description.trim()),
                ("number", &number),
                ("date", &today()),
            ],
        ));
    }
    // Each image's text takes its place in the request itself: no copy of the chat.
    let places: Vec<(usize, usize)> = found.iter().map(|i| (i.message, i.part)).collect();
    let mut messages = request
        .body
        .get_mut("messages")
        .and_then(Value::as_array_mut);
    for ((message, part), text) in places.into_iter().zip(texts) {
        if let Some(part) = messages
            .as_mut()
            .and_then(|m| m.get_mut(message))
            .and_then(|m| m.get_mut("content"))
            .and_then(Value::as_array_mut)
            .and_then(|parts| parts.get_mut(part))
        {
            *part = json!({"type": "text", "text": text.trim()});
        }
    }
    Ok(request)
}

/// One vision call within `left` of the hop's time, recorded as a `describe` step.
async fn describe_one(
    backend: &crate::upstream::Backend,
    body: Map<String, Value>,
    left: Duration,
    whole: Duration,
    session: &mut Session,
) -> Result<String, Error> {
    let step = session.push_sending(
        Step::Describe,
        &backend.id,
        &backend.model,
        &body,
        "messages",
    );
    let started = Instant::now();
    let result = call_json_within(
        backend,
        "/chat/completions",
        &body,
        left,
        whole,
        session,
        step,
    )
    .await;
    let record = session.step(step);
    match (result, record) {
        (Ok(reply), Some(record)) => {
            record.duration_ms = millis(started.elapsed());
            capture::completion(record, &reply, usize::MAX);
            let text = record.response_content.clone();
            if text.trim().is_empty() {
                return Err(backend.protocol_error("an empty description"));
            }
            Ok(text)
        }
        (Ok(reply), None) => Ok(content_text(reply.pointer("/choices/0/message/content"))),
        (Err(error), Some(record)) => {
            record.duration_ms = millis(started.elapsed());
            record.set_failed_status(&error);
            record.error = Some(error.to_string());
            Err(error)
        }
        (Err(error), None) => Err(error),
    }
}

/// The vision call: the hop's instructions, and the image with the text it came with.
fn request_body(
    model: &str,
    hop: &DescribeHop,
    prompts: &PromptSet,
    context: &str,
    url: &str,
) -> Map<String, Value> {
    let instructions = prompts.render(&hop.prompt, &[("date", &today())]);
    let mut parts = Vec::new();
    if !context.trim().is_empty() {
        parts.push(json!({"type": "text", "text": context}));
    }
    parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
    let mut body = Map::new();
    body.insert("model".into(), Value::from(model));
    body.insert(
        "messages".into(),
        json!([
            {"role": "system", "content": instructions},
            {"role": "user", "content": parts},
        ]),
    );
    body
}

/// The cache key of an image: its SHA-256, so one user's image cannot be made to look
/// like another's and be given that one's description.
fn key_of(url: &str) -> u64 {
    let digest = Sha256::digest(url.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

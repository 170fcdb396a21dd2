//! Runs a routing decision: which routes answer (`routing::answering`), the search hop,
//! the calls with failover, request shaping, and the SSE relay to the client. Every path
//! ends the session record exactly once.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::Response;

use crate::config::{Config, MissingKey};
use crate::names::RouteName;
use crate::openai::ChatRequest;
use crate::prompts::PromptSet;
use crate::record::budget::Budgets;
use crate::record::session::Session;
use crate::routing::answering::{self, Gate};
use crate::routing::table::META_LABEL;
use crate::routing::{InputLimits, RouteTable};
use crate::upstream::Backends;

pub mod describe;
mod drain;
pub mod execute;
pub mod passthrough;
pub mod relay;
pub mod search;
pub mod shape;

pub use drain::Drain;

/// The response header that names the route taken.
pub const ROUTE_HEADER: &str = "x-ai-router-route";

/// The response header that says a failover happened (`primary->xai`).
pub const FAILOVER_HEADER: &str = "x-ai-router-failover";

/// What running a decision needs, built once at start-up.
#[derive(Debug)]
pub struct Proxy {
    /// Every backend.
    pub backends: Arc<Backends>,
    /// The route table.
    pub table: Arc<RouteTable>,
    /// What a route whose backend has no key does.
    pub missing_key: MissingKey,
    /// The cloud budgets and their spend.
    pub budgets: Arc<Budgets>,
    /// How much of the conversation a search hop sees.
    pub limits: InputLimits,
    /// The model name clients see in every answer.
    pub virtual_model: Arc<str>,
    /// A `: keep-alive` comment after this much silence on a stream.
    pub keep_alive: Duration,
    /// The end of shutdown's grace period.
    pub drain: Drain,
    /// Most bytes of an answer kept in its session record (`sessions.max_answer_bytes`).
    pub answer_cap: usize,
    /// Images described lately, for routes that describe them.
    pub descriptions: describe::Descriptions,
}

impl Proxy {
    /// The proxy `config` describes, over `backends` and `table`, within `budgets`.
    pub fn new(
        config: &Config,
        backends: Arc<Backends>,
        table: Arc<RouteTable>,
        budgets: Arc<Budgets>,
    ) -> Self {
        Proxy {
            backends,
            table,
            missing_key: config.routing.missing_key,
            budgets,
            limits: InputLimits::of(&config.routing),
            virtual_model: Arc::from(config.server.virtual_model.as_str()),
            keep_alive: Duration::from_secs(config.server.sse_keepalive_secs),
            drain: Drain::default(),
            answer_cap: config.sessions.max_answer_bytes,
            descriptions: describe::Descriptions::default(),
        }
    }

    /// Answers `request`, whose decision (in `session`) gave `label`, and returns the
    /// client's response.
    pub async fn run(
        self: &Arc<Self>,
        prompts: Arc<PromptSet>,
        label: &str,
        request: ChatRequest,
        mut session: Session,
    ) -> Response {
        let asked = self.table.get(label).map(|r| r.name.clone());
        // A chat with images goes only where they can be seen (a client task prompt is
        // text about the chat, and META answers it as it is).
        // Counted once, when the request was admitted (`Session::set_request`).
        let images = session
            .record()
            .and_then(|r| r.images.as_ref())
            .map_or(0, |i| i.count);
        let chosen = session
            .decision()
            .is_some_and(|d| d.client_choice.is_some());
        let gate = Gate {
            backends: &self.backends,
            missing_key: self.missing_key,
            budgets: &self.budgets,
        };
        let answering = if images > 0 && label != META_LABEL {
            answering::resolve_with_images(&self.table, &gate, label, images, chosen)
        } else {
            answering::resolve(&self.table, &gate, label)
        };
        let answering = match answering {
            Ok(answering) => answering,
            Err(error) => {
                let response = execute::fail(session, None, error);
                return with_route(response, asked.as_ref());
            }
        };
        if let Some(decision) = session.decision() {
            decision.route = Some(answering.route.name.clone());
            decision.route_fallback.clone_from(&answering.note);
        }
        tracing::Span::current().record("route", answering.route.name.as_str());
        let route = answering.route.name.clone();
        let request = match answering
            .route
            .describe
            .as_ref()
            .filter(|_| answering.describe)
        {
            None => request,
            Some(hop) => {
                let described = tokio::select! {
                    biased;
                    () = self.drain.drained() => Err(crate::error::Error::ShuttingDown),
                    described = describe::describe_images(
                        &self.backends,
                        &self.descriptions,
                        hop,
                        &prompts,
                        request,
                        &mut session,
                    ) => described,
                };
                match described {
                    Ok(request) => request,
                    Err(error) => {
                        let response = execute::fail(session, None, error);
                        return with_route(response, Some(&route));
                    }
                }
            }
        };
        let response = if answering.search {
            execute::search_then_answer(self.clone(), prompts, answering, request, session).await
        } else {
            execute::answer(self, &prompts, &answering, &request, None, session).await
        };
        with_route(response, Some(&route))
    }
}

/// Names the route on the response, unless a failover already named the one that
/// really answered.
fn with_route(mut response: Response, route: Option<&RouteName>) -> Response {
    let headers = response.headers_mut();
    if let Some(route) = route
        && !headers.contains_key(ROUTE_HEADER)
        && let Ok(value) = HeaderValue::from_str(route)
    {
        headers.insert(ROUTE_HEADER, value);
    }
    response
}

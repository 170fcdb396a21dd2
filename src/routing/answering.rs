//! Which route really answers a label, given what is configured: a route whose backend
//! has no API key is answered by its first failover route that can (else the fallback
//! label's), and a search hop through such a backend is skipped — each with a note for
//! the session log — or, with `routing.missing_key = "error"`, the request is refused.

use std::sync::Arc;

use crate::config::MissingKey;
use crate::error::Error;
use crate::upstream::Backends;

use super::table::{Route, RouteTable};

/// The routes a label is answered by.
#[derive(Clone, Debug)]
pub struct Answering {
    /// The route that answers first.
    pub route: Arc<Route>,
    /// Whether its search hop runs (it has one, and its backend has a key).
    pub search: bool,
    /// The routes that answer, in order, if it fails before the first byte; those whose
    /// backend has no key are left out.
    pub failover: Vec<Arc<Route>>,
    /// Why the route or hop is not the one the label asked for.
    pub note: Option<String>,
}

/// Works out who answers `label` (which the table has).
pub fn resolve(
    table: &RouteTable,
    backends: &Backends,
    policy: MissingKey,
    label: &str,
) -> Result<Answering, Error> {
    let asked = table.get(label).ok_or_else(|| Error::InvalidRequest {
        message: format!("no route for the label {label}"),
        param: None,
    })?;
    let missing = |backend: &str| {
        backends.get(backend).and_then(|b| {
            b.missing_key()
                .map(|variable| (b.id.clone(), variable.to_string()))
        })
    };
    let refuse = |(backend, variable)| Error::KeyMissing { backend, variable };
    let mut note = None;
    let route = match missing(&asked.backend) {
        None => asked,
        Some(gap) if policy == MissingKey::Error => return Err(refuse(gap)),
        Some((backend, variable)) => {
            let instead = asked
                .failover
                .iter()
                .chain(std::iter::once(&table.fallback))
                .filter_map(|l| table.get(l))
                .find(|r| r.label != asked.label && missing(&r.backend).is_none());
            let Some(instead) = instead else {
                return Err(refuse((backend, variable)));
            };
            note = Some(format!(
                "{backend} has no API key ({variable} is not set); answered by {}",
                instead.backend
            ));
            instead
        }
    };
    let search = match route.search.as_ref().map(|hop| missing(&hop.backend)) {
        None => false,
        Some(None) => true,
        Some(Some(gap)) if policy == MissingKey::Error => return Err(refuse(gap)),
        Some(Some((backend, variable))) => {
            note = Some(format!(
                "{backend} has no API key ({variable} is not set); answered without gathered context"
            ));
            false
        }
    };
    let failover = route
        .failover
        .iter()
        .filter_map(|l| table.get(l))
        .filter(|r| r.label != route.label && missing(&r.backend).is_none())
        .cloned()
        .collect();
    Ok(Answering {
        route: route.clone(),
        search,
        failover,
        note,
    })
}

/// Who answers `label` for a chat carrying `count` images: the label's route if it can
/// see them, else (unless the client chose the route itself: `chosen`) the first of
/// `routing.image_routes` that can and has its key; its failover keeps only routes
/// that can see them too. None: a 400 that says why.
pub fn resolve_with_images(
    table: &RouteTable,
    backends: &Backends,
    policy: MissingKey,
    label: &str,
    count: usize,
    chosen: bool,
) -> Result<Answering, Error> {
    let mut tried: Vec<&str> = Vec::new();
    let mut why: Vec<String> = Vec::new();
    // A route the client picked by name is never swapped for another (the cloud, say).
    let others = if chosen {
        &[][..]
    } else {
        table.image_routes.as_slice()
    };
    let candidates = std::iter::once(label).chain(others.iter().map(|l| l.as_str()));
    for candidate in candidates {
        if tried.contains(&candidate) {
            continue;
        }
        tried.push(candidate);
        match resolve(table, backends, policy, candidate) {
            Ok(mut answering) if answering.route.images => {
                answering.failover.retain(|route| route.images);
                if candidate != label {
                    let instead = format!(
                        "the chat has {count} image(s) and the {label} route cannot see them; answered by {} (routing.image_routes)",
                        answering.route.name
                    );
                    answering.note = Some(match answering.note.take() {
                        Some(more) => format!("{instead}; {more}"),
                        None => instead,
                    });
                }
                return Ok(answering);
            }
            Ok(answering) => why.push(match answering.note {
                Some(note) => format!("{candidate}: {note}, which cannot see images"),
                None => format!("{candidate}: {} cannot see images", answering.route.name),
            }),
            Err(error) => why.push(format!("{candidate}: {error}")),
        }
    }
    Err(Error::ImagesUnsupported {
        count,
        why: why.join("; "),
    })
}

//! Which route really answers a label, given what is configured and spent: a route whose
//! backend has no API key, or whose budget is spent, is answered by its first failover
//! route that can (else the fallback label's), and a search hop through such a backend
//! is skipped — each with a note for the session log — or, with
//! `routing.missing_key = "error"` or the budget's `when_spent = "error"`, the request is
//! refused.

use std::sync::Arc;

use crate::config::{MissingKey, WhenSpent};
use crate::error::Error;
use crate::names::BackendId;
use crate::record::budget::{Budgets, Spent};
use crate::upstream::Backends;

use super::table::{Route, RouteTable};

/// The routes a label is answered by.
#[derive(Clone, Debug)]
pub struct Answering {
    /// The route that answers first.
    pub route: Arc<Route>,
    /// Whether its search hop runs (it has one, and its backend has a key).
    pub search: bool,
    /// Whether the chat's images are described for it first (its `describe` hop).
    pub describe: bool,
    /// The routes that answer, in order, if it fails before the first byte; those whose
    /// backend has no key are left out.
    pub failover: Vec<Arc<Route>>,
    /// Why the route or hop is not the one the label asked for.
    pub note: Option<String>,
}

/// What may keep a backend from being called now, and what to do then.
#[derive(Clone, Copy, Debug)]
pub struct Gate<'a> {
    pub backends: &'a Backends,
    /// What a route whose backend has no key does.
    pub missing_key: MissingKey,
    /// The cloud budgets and what they have spent.
    pub budgets: &'a Budgets,
}

/// Why a backend cannot be called now.
enum Gap {
    NoKey {
        backend: BackendId,
        variable: String,
    },
    Spent {
        backend: BackendId,
        spent: Spent,
    },
}

impl Gate<'_> {
    /// Why `backend` cannot be called now, if it cannot.
    fn gap(&self, backend: &str) -> Option<Gap> {
        let found = self.backends.get(backend)?;
        if let Some(variable) = found.missing_key() {
            return Some(Gap::NoKey {
                backend: found.id.clone(),
                variable: variable.to_string(),
            });
        }
        self.budgets.check(backend).map(|spent| Gap::Spent {
            backend: found.id.clone(),
            spent,
        })
    }

    /// Whether `gap` refuses the request instead of answering another way.
    fn refuses(&self, gap: &Gap) -> bool {
        match gap {
            Gap::NoKey { .. } => self.missing_key == MissingKey::Error,
            Gap::Spent { spent, .. } => spent.when_spent == WhenSpent::Error,
        }
    }
}

impl Gap {
    /// The note's first part; what follows `;` is specifics (summaries group by the head).
    fn describe(&self, then: &str) -> String {
        match self {
            Gap::NoKey { backend, variable } => {
                format!("{backend} has no API key ({variable} is not set); {then}")
            }
            Gap::Spent { backend, spent } => {
                format!(
                    "{backend}'s {} budget is spent; {then}: {}",
                    spent.per, spent.why
                )
            }
        }
    }

    fn into_error(self) -> Error {
        match self {
            Gap::NoKey { backend, variable } => Error::KeyMissing { backend, variable },
            Gap::Spent { backend, spent } => Error::BudgetSpent {
                backend,
                why: spent.why,
                retry_after_secs: spent.retry_after_secs,
            },
        }
    }
}

/// Works out who answers `label` (which the table has).
pub fn resolve(table: &RouteTable, gate: &Gate<'_>, label: &str) -> Result<Answering, Error> {
    let asked = table.get(label).ok_or_else(|| Error::InvalidRequest {
        message: format!("no route for the label {label}"),
        param: None,
    })?;
    let callable = |backend: &str| gate.gap(backend).is_none();
    let mut note = None;
    let route = match gate.gap(&asked.backend) {
        None => asked,
        Some(gap) if gate.refuses(&gap) => return Err(gap.into_error()),
        Some(gap) => {
            let instead = asked
                .failover
                .iter()
                .chain(std::iter::once(&table.fallback))
                .filter_map(|l| table.get(l))
                .find(|r| r.label != asked.label && callable(&r.backend));
            let Some(instead) = instead else {
                return Err(gap.into_error());
            };
            note = Some(gap.describe(&format!("answered by {}", instead.backend)));
            instead
        }
    };
    let search = match route.search.as_ref().map(|hop| gate.gap(&hop.backend)) {
        None => false,
        Some(None) => true,
        Some(Some(gap)) if gate.refuses(&gap) => return Err(gap.into_error()),
        Some(Some(gap)) => {
            note = Some(gap.describe("answered without gathered context"));
            false
        }
    };
    let failover = route
        .failover
        .iter()
        .filter_map(|l| table.get(l))
        .filter(|r| r.label != route.label && callable(&r.backend))
        .cloned()
        .collect();
    Ok(Answering {
        route: route.clone(),
        search,
        describe: false,
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
    gate: &Gate<'_>,
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
        match resolve(table, gate, candidate) {
            Ok(mut answering) if !answering.route.images && describable(gate, &answering) => {
                // Described, the chat carries text only: any failover route will do.
                answering.describe = true;
                let route = &answering.route;
                let by = route.describe.as_ref().map_or("", |d| d.backend.as_str());
                let described = format!(
                    "the chat has {count} image(s) and the {} route cannot see them; described by {by} (routes.{}.describe), answered by {}",
                    route.label, route.label, route.name
                );
                answering.note = Some(match answering.note.take() {
                    Some(more) => format!("{described}; {more}"),
                    None => described,
                });
                return Ok(answering);
            }
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

/// Whether `answering`'s route has a describe hop whose vision backend can be called now.
fn describable(gate: &Gate<'_>, answering: &Answering) -> bool {
    answering
        .route
        .describe
        .as_ref()
        .is_some_and(|hop| gate.gap(&hop.backend).is_none())
}

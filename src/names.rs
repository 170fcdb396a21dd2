//! The names the router gives things — backends, route labels, route names, the steps of a
//! request — each its own type so one is never passed for another, and cheap to clone.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

macro_rules! name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(name: &str) -> Self {
                $name(Arc::from(name))
            }
        }

        // Maps keyed by a name are looked up with a `&str`.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }
    };
}

name!(
    /// A backend's name: its key under `[backends]` (`primary`, `classifier`, `xai`…).
    BackendId
);
name!(
    /// A classification label: its key under `[routes]` (`SIMPLE` … `META`, `CODE`…).
    Label
);
name!(
    /// A route's name on the wire (`x-ai-router-route`) and in the session log's `route`.
    RouteName
);

/// What an upstream call within a request was for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// The classifier labelling the request.
    Classify,
    /// A route's search hop (ENRICH's): context gathered before the answer.
    #[serde(rename = "enrich")]
    Search,
    /// An image described by a vision backend for a route that cannot see it.
    Describe,
    /// The call whose reply the client gets.
    #[default]
    Answer,
}

impl Step {
    /// The step's name in the session log.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Classify => "classify",
            Step::Search => "enrich",
            Step::Describe => "describe",
            Step::Answer => "answer",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

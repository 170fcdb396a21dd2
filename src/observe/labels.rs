//! The label sets of the router's metrics: low-cardinality only (route, label, status
//! class, outcome, backend, endpoint, result — each from the config or a fixed list).

use prometheus_client::encoding::EncodeLabelSet;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RequestLabels {
    pub(super) route: String,
    pub(super) class: String,
    pub(super) status: String,
    /// `ok`, `error` or `client_disconnected`: a stream that fails after its 200 is
    /// still an error, which the status class alone would hide.
    pub(super) outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RouteLabel {
    pub(super) route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct BackendLabel {
    pub(super) backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct EndpointLabel {
    pub(super) backend: String,
    /// The endpoint's base URL, without credentials: one per configured URL.
    pub(super) endpoint: String,
}

/// One endpoint's state, as `/metrics` shows it.
#[derive(Clone, Debug)]
pub struct EndpointReading {
    pub backend: String,
    pub endpoint: String,
    /// `None` until it was first probed or called.
    pub up: Option<bool>,
    pub in_flight: u32,
    pub latency_seconds: Option<f64>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct BackendErrorLabel {
    pub(super) backend: String,
    pub(super) kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ResultLabel {
    pub(super) result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct SuspectLabel {
    /// The `[[suspect]]` table's name: one per table in the META rules file.
    pub(super) suspect: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct SpendLabel {
    /// A paid backend from the config.
    pub(super) backend: String,
    /// `day` or `month`.
    pub(super) period: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PeriodLabel {
    /// `day` or `month`.
    pub(super) period: &'static str,
}

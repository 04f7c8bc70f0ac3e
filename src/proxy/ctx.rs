use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::answers::Form;
use crate::config::model::{Config, Upstream};
use crate::identity::Identity;
use crate::login::session::{CurrentContact, SessionEntry};
use crate::metrics::RouteLabel;

/// Per-request state, filled phase by phase.
pub struct Ctx {
    pub started: Instant,
    pub request_id: String,
    /// The config this request started with; a SIGHUP reload never changes it mid-request.
    pub config: Arc<Config>,
    /// The normalised path, for logs and metrics (as received when it cannot be normalised).
    pub path: Vec<u8>,
    /// How the client reads the gateway's own answers.
    pub form: Form,
    pub route: Option<usize>,
    pub upstream: Option<Arc<Upstream>>,
    /// The request-target sent upstream when a rewrite changed the URI.
    pub upstream_uri: Option<Vec<u8>>,
    pub identity: Option<Identity>,
    /// The remembered session `identity` came from (entries, index): what is prepared for it
    /// once serves each of its requests.
    pub session: Option<(Arc<[SessionEntry]>, usize)>,
    /// The session's current external contact, for step 7 when no ticket names one.
    pub session_contact: Option<CurrentContact>,
    pub upgrade: bool,
    pub client_ip: Option<IpAddr>,
    /// Status of an answer written by the gateway itself (not proxied).
    pub answered: Option<u16>,
    /// A location of the nginx file handles the request (SPEC 12): what it decides.
    pub nginx: Option<Box<crate::nginx::Flight>>,
    pub _inflight: InFlight,
}

impl Ctx {
    /// The `route` label of metrics and logs: the location as written, or what answered.
    pub fn route_label(&self) -> &str {
        match self.route_key() {
            RouteLabel::Route(i) => &self.config.routes.routes[i].location,
            RouteLabel::Gateway => "gateway",
            RouteLabel::None => "none",
        }
    }

    /// The same, as an index into the routes' metrics.
    pub fn route_key(&self) -> RouteLabel {
        match self.route {
            Some(i) => RouteLabel::Route(i),
            None if self.path.starts_with(self.config.server.prefix.as_bytes()) => {
                RouteLabel::Gateway
            }
            None => RouteLabel::None,
        }
    }
}

/// Counts requests in flight for the graceful stop; released when the request's context drops,
/// whatever path the request took.
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        crate::metrics::METRICS.in_flight.inc();
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        crate::metrics::METRICS.in_flight.dec();
    }
}

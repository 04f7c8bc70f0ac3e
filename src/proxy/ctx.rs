use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::answers::Form;
use crate::config::model::Upstream;
use crate::identity::Identity;
use crate::login::session::{CurrentContact, SessionEntry};
use crate::metrics::RouteLabel;

/// Per-request state, filled phase by phase.
pub struct Ctx {
    pub started: Instant,
    pub request_id: String,
    /// The config this request started with; a SIGHUP reload never changes it mid-request.
    pub config: crate::config::Snapshot,
    /// The normalised path, for logs and metrics (as received when it cannot be normalised).
    pub path: Vec<u8>,
    /// How the client reads the gateway's own answers.
    pub form: Form,
    pub route: Option<usize>,
    /// Where the upstream was chosen; [`Ctx::upstream`] reads it.
    pub upstream: Option<Chosen>,
    /// The request-target sent upstream when a rewrite changed the URI.
    pub upstream_uri: Option<Vec<u8>>,
    pub identity: Option<Identity>,
    /// The protected area (a `[[routes]]` index) whose login and rules the request passed.
    pub admitted: Option<usize>,
    /// The remembered session `identity` came from (entries, index): what is prepared for it
    /// once serves each of its requests.
    pub session: Option<(Arc<[SessionEntry]>, usize)>,
    /// The session's current external contact, for step 7 when no ticket names one.
    pub session_contact: Option<CurrentContact>,
    pub upgrade: bool,
    pub client_ip: Option<IpAddr>,
    /// The client's address as the nginx file's `set_real_ip_from`/`real_ip_header` read it
    /// (behind a trusted load balancer: the address it names), else `client_ip`: nginx's
    /// `$remote_addr`, its `allow`/`deny`, and the key of the sign-in limit.
    pub remote_ip: Option<IpAddr>,
    /// Status of an answer written by the gateway itself (not proxied).
    pub answered: Option<u16>,
    /// An upstream was asked (its peer chosen): the access line names it only then, not for
    /// the sign-in pages, 401s and 403s the gateway answers on a route's behalf.
    pub proxied: bool,
    /// A location of the nginx file handles the request (SPEC 12): what it decides.
    pub nginx: Option<Box<crate::nginx::Flight>>,
    /// The location that handled the request says `access_log off;`: no access line.
    pub unlogged: bool,
    /// The client asked `Expect: 100-continue`: the gateway answers it, as nginx does, and
    /// the upstream is not asked.
    pub expects_continue: bool,
    /// The request's body, read whole before the upstream was asked (it was small): its
    /// length, which frames it upstream.
    pub buffered_body: Option<usize>,
    /// The nginx file's `keepalive_timeout` at the location that handled the request.
    pub keepalive: Option<std::time::Duration>,
    /// What an `access_log` file's line needs, gathered as the request runs; only when the
    /// configuration names a file.
    pub trace: Option<Box<crate::nginx::log::Trace>>,
    /// The client sent headers of the reserved names (stripped at once): a forward-auth
    /// check refuses such a request, whose front proxy would pass them on.
    pub reserved_sent: bool,
    /// The attempt at a balanced upstream (several servers).
    pub attempt: Attempt,
    pub _inflight: InFlight,
}

/// Which server of a balanced upstream an attempt went to, and the request's way through them.
#[derive(Default)]
pub struct Attempt {
    /// The attempt's server (an index into the upstream's `Balance`).
    pub server: Option<usize>,
    pub tried: crate::domain::balance::Tried,
    /// The next attempt goes on to another server of the same upstream (`tried` kept); any
    /// other attempt (the first, an `error_page`'s) starts afresh.
    pub next: bool,
    /// The server's answer arrived: too late to try another.
    pub answered: bool,
    /// When the request's first attempt at this upstream began (`proxy_next_upstream_timeout`).
    pub first_at: Option<Instant>,
}

/// Which upstream a request goes to. A route's is named by its place in the request's
/// configuration, which holds it: a reference count the workers share would pass its cache line
/// between them twice a request.
pub enum Chosen {
    /// The upstream of `routes[i]` in the request's configuration.
    Route(usize),
    /// The upstream an nginx flight's attempt went to (the flight may name the next one before
    /// it is taken).
    Flight(Arc<Upstream>),
}

impl Ctx {
    /// The upstream chosen for the request, if any.
    pub fn upstream(&self) -> Option<&Upstream> {
        match self.upstream.as_ref()? {
            Chosen::Route(i) => self
                .config
                .routes
                .routes
                .get(*i)
                .and_then(|r| r.upstream.as_deref()),
            Chosen::Flight(u) => Some(u),
        }
    }

    /// The upstream, the attempt and the client address `ip_hash` reads, borrowed apart.
    pub fn attempt_at(&mut self) -> (Option<&Upstream>, &mut Attempt, Option<IpAddr>) {
        let up = match self.upstream.as_ref() {
            Some(Chosen::Route(i)) => self
                .config
                .routes
                .routes
                .get(*i)
                .and_then(|r| r.upstream.as_deref()),
            Some(Chosen::Flight(u)) => Some(&**u),
            None => None,
        };
        (up, &mut self.attempt, self.remote_ip)
    }

    /// `host:port` of the server the request was sent to (`$upstream_addr`).
    pub fn upstream_server(&self) -> Option<&str> {
        let up = self.upstream()?;
        match (up.balance.as_deref(), self.attempt.server) {
            (Some(b), Some(i)) => b.servers.get(i).map(|s| s.label.as_str()),
            // No server was reached ("no live upstreams"): the upstream's name, as nginx.
            (Some(_), None) => Some(up.name.as_str()),
            _ => Some(up.authority.as_str()),
        }
    }

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

/// Counts a request in flight (`wgw_requests_in_flight`, what a graceful stop waits for);
/// released when the request's context drops, whatever path the request took.
pub struct InFlight(usize);

impl InFlight {
    pub fn enter() -> Self {
        InFlight(crate::metrics::IN_FLIGHT.inc())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        crate::metrics::IN_FLIGHT.dec(self.0);
    }
}

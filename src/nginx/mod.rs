//! SPEC section 5 step 4, and everything an nginx file decides around the proxying: the rule
//! set (`config::rules`) is evaluated by `nginx-compat` and this module acts on its answer.
//!
//! - [`phase`] (the request filter's step 4): an answer nginx makes itself (a `return`, a
//!   redirect, an error page, a static file, `444`), a `[[routes]]` entry to continue with, or
//!   a location of the nginx file whose `proxy_pass` picks the upstream. It decides and
//!   writes nothing: the caller learns which location handles the request (and for a file or
//!   an upstream, which URI), checks the login of that area, then writes ([`Pending`]).
//! - [`upstream`]: what that upstream receives (nginx's request target and the headers the
//!   file decides; the gateway's own on top) and its timeouts.
//! - [`response`]: nginx's response filters on the upstream's answer (`proxy_redirect`,
//!   `add_header`, `expires`, `gzip`), `proxy_intercept_errors` and `error_page` for an
//!   upstream that failed, and `client_max_body_size` on a streamed body.
//!
//! A `[[routes]]` entry is the gateway's own: only the rewrite rules apply to it, its upstream
//! request keeps the client's headers and its answers are the CRM's, untouched.

mod answer;
mod decide;
pub mod log;
mod request;
pub mod response;
pub mod upstream;

use std::sync::Arc;

use nginx_compat::{Action, Proxy, Request};
use pingora::prelude::*;
use pingora::proxy::Session;

use crate::config::model::ServerSettings;
use crate::config::model::Upstream;
use crate::config::rules::Rules;

pub use decide::{decide, Decision};
pub use request::{request, DiskFs};

/// A request on its way to an upstream chosen by a location of the nginx file.
pub struct Flight {
    /// The rule set this request started with (a reload never changes it mid-request).
    pub rules: Arc<Rules>,
    /// The request as nginx's variables see it, kept for the questions asked later.
    pub request: Request,
    /// The request nginx's proxy module would send.
    pub proxy: Box<Proxy>,
    pub upstream: Arc<Upstream>,
    /// An answer that replaces the upstream's (an `error_page` after an upstream error),
    /// written by the failure phase.
    pub pending: Option<Action>,
    /// Request body bytes seen so far (`client_max_body_size` of a chunked body).
    pub body_seen: u64,
    /// An error page sends the request to another upstream: the engine's retry must run.
    pub reproxy: bool,
    /// Headers of an upstream's `X-Accel-Redirect` answer that nginx keeps on the answer the
    /// redirect leads to (`Content-Type`, `Content-Disposition`, `Cache-Control`, `Expires`,
    /// `Set-Cookie`).
    pub carried: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl Flight {
    /// The location's `proxy_next_upstream`, `_tries` and `_timeout`.
    pub fn next_upstream(
        &self,
    ) -> (
        nginx_compat::parse::model::NextUpstream,
        u32,
        Option<std::time::Duration>,
    ) {
        let proxy = &self.rules.server.settings_for(&self.proxy.state).proxy;
        (
            proxy.next_upstream,
            proxy.next_upstream_tries,
            proxy.next_upstream_timeout,
        )
    }

    /// The location that handles the request.
    pub fn location(&self) -> &nginx_compat::LocRef {
        &self.proxy.state.loc
    }

    /// The request target the upstream receives (nginx's, escaped).
    pub fn target(&self) -> &[u8] {
        &self.proxy.target
    }

    /// The URI the handling location was chosen for (`$uri` after rewrites, decoded).
    pub fn uri(&self) -> &[u8] {
        &self.proxy.state.uri
    }
}

/// An answer the rule set makes without an upstream, not yet written: a `return`, a
/// redirect, an error page, a static file, or `444`.
pub struct Pending {
    rules: Arc<Rules>,
    request: Request,
    action: Action,
}

impl Pending {
    /// For a file, the URI it is served for (`$uri` after `try_files`, index files and error
    /// pages): its content is the site's, so the caller decides first who may read it. `None`
    /// for an answer with no content of the site's (a `return`, a redirect, nginx's own page,
    /// a closed connection).
    pub fn file_uri(&self) -> Option<&[u8]> {
        match &self.action {
            Action::File(f) => Some(&f.state.uri),
            _ => None,
        }
    }

    /// `access_log off;` in the configuration that answers: no access line for it.
    pub fn logged(&self) -> bool {
        self.action
            .state()
            .is_none_or(|st| self.rules.server.settings_for(st).access_log)
    }

    /// The request and the state it is answered in, for an access line of the nginx file.
    pub fn log_place(&self) -> Option<Box<(Request, nginx_compat::State)>> {
        let st = self.action.state()?;
        Some(Box::new((self.request.clone(), st.clone())))
    }

    /// How long the connection stays open after this answer, where the nginx file decides
    /// it (its `keepalive_timeout`, or nginx closing after the status).
    pub fn keepalive_timeout(&self) -> Option<std::time::Duration> {
        let st = self.action.state()?;
        self.rules.server.keepalive_for(st)
    }

    /// The nginx file's `send_timeout` where the answer is made, if it writes one.
    pub fn send_timeout(&self) -> Option<std::time::Duration> {
        let st = self.action.state()?;
        self.rules.server.settings_for(st).send_timeout
    }

    /// Writes the answer; returns the status it went out with (444 for a closed connection).
    pub async fn write(self, session: &mut Session, request_id: &str) -> Result<u16> {
        answer::write(session, request_id, &self.rules, &self.request, self.action).await
    }
}

/// What the proxy does after the rewrite phase.
pub enum Next {
    /// Go on with route selection's result (`None`: no route); `target` is the request target
    /// to send when a rewrite changed it.
    Route {
        index: Option<usize>,
        target: Option<Vec<u8>>,
    },
    /// A location of the nginx file chose the upstream.
    Proxy(Box<Flight>),
    /// The rule set answers itself.
    Answer(Box<Pending>),
}

/// The request of `session` as nginx-compat reads it (see [`request`]).
pub fn of_session(
    session: &Session,
    drop_underscored: bool,
    server: &ServerSettings,
    client_ip: Option<std::net::IpAddr>,
    request_id: &str,
) -> Request {
    let h = session.req_header();
    request(
        h.method.as_str(),
        h.version,
        h.raw_path(),
        &h.headers,
        drop_underscored,
        server,
        client_ip,
        session.client_addr().and_then(|a| a.as_inet()).copied(),
        session
            .as_downstream()
            .server_addr()
            .and_then(|a| a.as_inet())
            .copied(),
        request_id,
    )
}

/// What nginx's catch-all server answers a host the site does not name, when it redirects
/// (`return 301 https://crm.example.com$request_uri;`): its `return` or `rewrite` run as nginx
/// runs them, the answer written as nginx writes it (its page, with `Location`). `None`: the
/// connection closes (`return 444` reached in it).
pub fn catch_all(
    session: &Session,
    catch_all: &nginx_compat::Server,
    server: &ServerSettings,
    client_ip: Option<std::net::IpAddr>,
    request_id: &str,
) -> Option<(Box<pingora::http::ResponseHeader>, bytes::Bytes)> {
    let req = of_session(session, false, server, client_ip, request_id);
    let response = match catch_all.handle(&req, &nginx_compat::NoFiles) {
        Action::Respond(r) => r,
        Action::Close => return None,
        // A rewrite that did not match left nginx looking for a file in its default root:
        // the catch-all serves none.
        Action::File(_) | Action::Proxy(_) => nginx_compat::Response {
            status: 404,
            location: None,
            body: nginx_compat::Body::Page,
            state: nginx_compat::State::of(&req),
        },
    };
    Some(answer::render(&response, request_id, "text/plain"))
}

/// Step 4: ask `nginx-compat` what nginx would do with the request. Reads the file system
/// (a `stat` per `try_files` candidate, as nginx does) but writes nothing.
pub fn phase(
    session: &Session,
    rules: &Arc<Rules>,
    server: &ServerSettings,
    client_ip: Option<std::net::IpAddr>,
    request_id: &str,
) -> Next {
    let drop_underscored = rules.server.drops_underscored_headers();
    let req = of_session(session, drop_underscored, server, client_ip, request_id);
    match decide(rules, &req) {
        Decision::Route { index, target } => Next::Route {
            index: Some(index),
            target,
        },
        Decision::NoRoute => Next::Route {
            index: None,
            target: None,
        },
        Decision::Upstream { proxy, upstream } => Next::Proxy(Box::new(Flight {
            rules: rules.clone(),
            request: req,
            proxy,
            upstream,
            pending: None,
            body_seen: 0,
            reproxy: false,
            carried: Vec::new(),
        })),
        Decision::Answer(action) => Next::Answer(Box::new(Pending {
            rules: rules.clone(),
            request: req,
            action: *action,
        })),
    }
}

//! The public listener as pingora phases. Each phase reads like a step of SPEC section 5 and
//! hands the work to the module that owns it.

mod balance;
mod callback_endpoint;
mod contact_gate;
mod ctx;
mod endpoints;
mod forward_auth;
mod jssdk_endpoints;
mod login_endpoints;
mod login_gate;
mod miniprogram_endpoints;
mod nginx;
pub mod request;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::ErrorType;

use crate::answers::{self, Answer, Failure, Form, Kind};
use crate::config::model::ExternalContactMode;
use crate::config::rules::GuardAnswer;
use crate::config::Config;
use crate::headers;
use crate::metrics::METRICS;
use crate::provider::Provider;
use crate::request_id;
use crate::routing::{self, Final, Routed};

pub use ctx::Ctx;

pub struct Gateway {
    pub config: Arc<ArcSwap<Config>>,
    /// The one WeCom / WeChat API client, shared with the qyapi endpoint.
    pub provider: Provider,
    /// WeCom's callbacks: the queue and the store they are kept in.
    pub callbacks: Arc<crate::callback::Callbacks>,
    /// The config at start compresses some answers: the engine's compression module is set
    /// up (for the process's life: modules are made once).
    pub compression: bool,
}

/// What the pipeline decided for a request that did not fail.
enum Next {
    /// On to the upstream chosen in the context.
    Proxy,
    /// The gateway answers itself.
    Answer(Answer),
    /// The nginx file answers itself (a `return`, a redirect, an error page, a file, `444`).
    Nginx(Box<crate::nginx::Pending>),
    /// No answer: the connection closes (nginx's catch-all `return 444` for a host the site
    /// does not name).
    Close,
}

/// Writes an answer produced by the gateway itself.
async fn answer(session: &mut Session, ctx: &mut Ctx, (header, body): Answer) -> Result<bool> {
    ctx.answered = Some(header.status.as_u16());
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(header, head_only).await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(true)
}

/// Writes what the pipeline decided when it was not to proxy.
async fn respond(
    session: &mut Session,
    ctx: &mut Ctx,
    decided: Result<Next, Failure>,
) -> Result<bool> {
    match decided {
        Ok(Next::Proxy) => Ok(false),
        Ok(Next::Answer(a)) => answer(session, ctx, a).await,
        Ok(Next::Nginx(a)) => nginx::write(session, ctx, a).await,
        Ok(Next::Close) => {
            session.set_keepalive(None);
            ctx.answered = Some(444);
            Ok(true)
        }
        Err(f) => fail(session, ctx, &f).await,
    }
}

/// Writes a failure in the form the client reads: the one place the public listener turns an
/// error into an answer.
async fn fail(session: &mut Session, ctx: &mut Ctx, f: &Failure) -> Result<bool> {
    if f.close {
        session.set_keepalive(None);
    }
    let a = answers::render(f, &ctx.request_id, ctx.form);
    answer(session, ctx, a).await
}

impl Gateway {
    /// Steps 1-7 of SPEC section 5, each a call into the module that owns it.
    async fn pipeline(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Next, Failure> {
        // Step 1: nginx's normalisation; all matching uses this path, never the query. The path
        // is kept in the context for logs, and lent out of it while the steps read it beside
        // the context (a copy per request otherwise).
        normalise(ctx, session.req_header().raw_path())?;
        let path = std::mem::take(&mut ctx.path);
        let decided = self.steps(session, ctx, &path).await;
        // Whatever the steps left there (the forward-auth check reads another request's path).
        ctx.path = path;
        if let Some(idle) = ctx.keepalive {
            crate::connection::keep_alive(session, idle);
        }
        decided
    }

    /// Steps 2-7 on the normalised `path`.
    async fn steps(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        path: &[u8],
    ) -> Result<Next, Failure> {
        // Step 2 (no client copy of an identity header) was done as the request arrived.

        // Step 3: the gateway's own endpoints. The forward-auth check runs steps 4-7 itself.
        // Both are boxed: their futures (API calls, bodies) are several KiB, and inline they
        // would make every proxied request's future as large, allocated and copied per request.
        let config = ctx.config.clone();
        let config = &*config;
        // nginx's catch-all server beside the site: a host the site does not name is refused
        // before anything, the gateway's own paths included, as nginx refuses it on that port
        // (but `healthz`, which a load balancer asks by address, and which says nothing).
        let guard = config.rules.as_deref().and_then(|r| r.host_guard.as_ref());
        let health = || endpoints::under_prefix(path, &config.server.prefix) == Some(b"/healthz");
        if let Some(g) = guard.filter(|_| !health()) {
            let req = session.req_header();
            let host = req
                .headers
                .get(http::header::HOST)
                .map(|v| v.as_bytes())
                .or_else(|| req.uri.host().map(str::as_bytes))
                .unwrap_or_default();
            if let Some(answer) = g.route(host) {
                let kind = match answer {
                    GuardAnswer::Status(444) => return Ok(Next::Close),
                    GuardAnswer::Status(400) => Kind::BadRequest,
                    GuardAnswer::Status(404) => Kind::NotFound,
                    GuardAnswer::Status(_) => Kind::Forbidden,
                    GuardAnswer::Redirect(server) => {
                        let answered = crate::nginx::catch_all(
                            session,
                            server,
                            &config.server,
                            ctx.remote_ip,
                            &ctx.request_id,
                        );
                        return Ok(answered.map_or(Next::Close, Next::Answer));
                    }
                };
                return Err(Failure::new(kind, "this host is not served here").closing());
            }
        }
        if let Some(rest) = endpoints::under_prefix(path, &config.server.prefix) {
            if rest == b"/auth" {
                return Box::pin(self.forward_auth(session, ctx))
                    .await
                    .map(Next::Answer);
            }
            let handled = endpoints::handle(session, ctx, rest, &self.provider, &self.callbacks);
            return Box::pin(handled).await.map(Next::Answer);
        }

        // From here on the request is only read: its path as received borrows from it.
        let session: &Session = session;
        let (raw_path, _query) =
            nginx_compat::uri::split_request_uri(session.req_header().raw_path());
        let (handler, final_paths) = match self.locate(session, ctx, config, path)? {
            Located::Handler(h, final_paths) => (h, final_paths),
            Located::Done(next) => return Ok(next),
            Located::NotFound => return Err(no_route()),
        };
        self.gates(session, ctx, config, final_paths.as_deref(), path, raw_path)
            .await?;
        match handler {
            Handler::File(a) => Ok(Next::Nginx(a)),
            Handler::Route(_) | Handler::Upstream => Ok(Next::Proxy),
        }
    }

    /// Steps 4 and 5: which location handles the request (the rewrite phase may answer
    /// itself, or change the URI), and the paths the request finally carries.
    fn locate(
        &self,
        session: &Session,
        ctx: &mut Ctx,
        config: &Config,
        path: &[u8],
    ) -> Result<Located, Failure> {
        let handler = match &config.rules {
            Some(rules) => match nginx::phase(session, ctx, rules) {
                // A file is the site's content: it waits for the area's login.
                nginx::Next::Answer(a) if a.file_uri().is_some() => Handler::File(a),
                nginx::Next::Answer(a) => return Ok(Located::Done(Next::Nginx(a))),
                nginx::Next::Route(None) => return Ok(Located::NotFound),
                nginx::Next::Route(Some(i)) => Handler::Route(i),
                nginx::Next::Proxy => Handler::Upstream,
            },
            None => match routing::route(&config.routes, path) {
                Routed::Route(i) => Handler::Route(i),
                Routed::Redirect(i) => {
                    return Ok(Located::Done(Next::Answer(slash_redirect(session, ctx, i))))
                }
                Routed::NotFound => return Ok(Located::NotFound),
                // PCRE gave up on a regex route: fail closed, as nginx's 500.
                Routed::Unmatchable => {
                    return Err(Failure::new(
                        Kind::Internal,
                        "the route could not be matched",
                    ))
                }
            },
        };
        let final_paths = match (&handler, &ctx.upstream_uri) {
            (Handler::File(a), _) => Some(vec![Final::Normal(
                a.file_uri().unwrap_or_default().to_vec(),
            )]),
            (Handler::Upstream, _) => Some(nginx::final_paths(ctx).map_err(area_failure)?),
            (_, Some(target)) => Some(vec![Final::sent(target).map_err(area_failure)?]),
            (_, None) => None,
        };
        if let Handler::Route(i) = handler {
            ctx.route = Some(i);
            ctx.upstream = Some(ctx::Chosen::Route(i));
        }
        Ok(Located::Handler(handler, final_paths))
    }

    /// Step 6: the login of the protected area the request falls in, whichever location
    /// handles it; step 7: that area's external contact. The proxied request and the
    /// forward-auth check (SPEC section 19) pass these same gates.
    async fn gates(
        &self,
        session: &Session,
        ctx: &mut Ctx,
        config: &Config,
        final_paths: Option<&[Final]>,
        path: &[u8],
        raw_path: &[u8],
    ) -> Result<(), Failure> {
        let protecting = |final_path: &Final| {
            final_path
                .protecting(&config.routes, path, raw_path)
                .map_err(area_failure)
        };
        let area = match final_paths {
            // The request's own path when no rewrite or handler changed it.
            None => {
                routing::protecting(&config.routes, path, path, raw_path).map_err(area_failure)?
            }
            Some(finals) => {
                let mut area = None;
                for final_path in finals {
                    area = protecting(final_path)?;
                    if area.is_some() {
                        break;
                    }
                }
                area
            }
        };
        if let Some((i, area)) = area.map(|i| (i, &config.routes.routes[i])) {
            if let Some(app) = &area.login {
                login_gate::check(session, ctx, app, self.provider.store()).await?;
                crate::access::admit(config, &self.provider, area, ctx.identity.as_ref()).await?;
                ctx.admitted = Some(i);
            }
            if area.external_contact != ExternalContactMode::None {
                contact_gate::check(
                    session,
                    ctx,
                    area.external_contact,
                    &**self.provider.store(),
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// When an X-Accel-Redirect a `[[routes]]` upstream sent was last logged.
static ACCEL_DROPPED: std::sync::LazyLock<wecom_api::Throttle<()>> =
    std::sync::LazyLock::new(wecom_api::Throttle::per_minute);

/// Step 1 on a request-target: nginx's normalised path into the context (for matching, logs and
/// metrics), or a 400 with the path as received kept there instead.
fn normalise(ctx: &mut Ctx, target: &[u8]) -> Result<(), Failure> {
    let (raw_path, _query) = nginx_compat::uri::split_request_uri(target);
    match nginx_compat::uri::normalize_path(raw_path) {
        Ok(p) => {
            ctx.path = p;
            Ok(())
        }
        Err(e) => {
            ctx.path = raw_path.to_vec();
            Err(Failure::new(
                Kind::BadRequest,
                format!("malformed path: {e}"),
            ))
        }
    }
}

/// What steps 4 and 5 found.
enum Located {
    /// This location handles the request, whose path is finally one of these (`None`: the
    /// path it came with).
    Handler(Handler, Option<Vec<Final>>),
    /// The gateway or the nginx file answers itself (a redirect, `return`, `deny`).
    Done(Next),
    /// No location.
    NotFound,
}

/// The location that handles a request.
enum Handler {
    /// A `[[routes]]` entry.
    Route(usize),
    /// An nginx location with `proxy_pass`; the upstream is in the context.
    Upstream,
    /// A static file of an nginx location.
    File(Box<crate::nginx::Pending>),
}

fn no_route() -> Failure {
    Failure::new(Kind::NotFound, "no route for this path")
}

fn area_failure(e: routing::AreaError) -> Failure {
    let kind = match e {
        routing::AreaError::Unmatchable => Kind::Internal,
        _ => Kind::BadRequest,
    };
    Failure::new(kind, e.describe())
}

/// nginx's 301 from `/p` to the prefix route `/p/`, arguments kept, on the public origin.
fn slash_redirect(session: &Session, ctx: &Ctx, route: usize) -> Answer {
    use nginx_compat::escape::{escape, Escape};
    let name = &ctx.config.routes.routes[route].location;
    let pattern = nginx_compat::Location::parse(name)
        .map(|l| l.pattern().to_owned())
        .unwrap_or_else(|_| name.clone());
    let mut location = ctx.config.server.public_origin.as_bytes().to_vec();
    location.extend(escape(pattern.as_bytes(), Escape::Uri));
    if let Some(q) = session.req_header().uri.query() {
        location.push(b'?');
        location.extend_from_slice(q.as_bytes());
    }
    answers::nginx_redirect(301, &location, &ctx.request_id)
        .unwrap_or_else(|| answers::render(&no_route(), &ctx.request_id, ctx.form))
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        let config = crate::config::Snapshot::of(&self.config);
        let trace = config
            .rules
            .as_ref()
            .is_some_and(|r| !r.log_paths.is_empty())
            .then(Box::default);
        Ctx {
            started: Instant::now(),
            request_id: String::new(),
            config,
            path: Vec::new(),
            form: Form::Json,
            route: None,
            upstream: None,
            upstream_uri: None,
            identity: None,
            admitted: None,
            session: None,
            session_contact: None,
            upgrade: false,
            client_ip: None,
            remote_ip: None,
            answered: None,
            proxied: false,
            nginx: None,
            unlogged: false,
            expects_continue: false,
            buffered_body: None,
            keepalive: None,
            trace,
            reserved_sent: false,
            attempt: Default::default(),
            _inflight: ctx::InFlight::enter(),
        }
    }

    /// The engine's compression module only when the config compresses something: otherwise
    /// it is a context built, three boxed phases and a teardown per request that does nothing
    /// (~0.8k instructions). A reload that turns `gzip` on says it needs a restart.
    fn init_downstream_modules(&self, modules: &mut pingora::modules::http::HttpModules) {
        if self.compression {
            modules.add_module(
                pingora::modules::http::compression::ResponseCompressionBuilder::enable(0),
            );
        }
    }

    /// Steps 1-7: normalise, strip, gateway endpoints, route, login, external contact.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // RFC 9112 3.2.2: an absolute-form target (a forward-proxy client's `GET http://h/x`)
        // is served as its path, as nginx serves it (the engine has refused one whose authority
        // is not the Host). Every step, log line and the upstream then see the origin form; a
        // target that does not become one is left to step 1's 400.
        if let Some(origin) = crate::connection::origin_form(session.req_header().raw_path()) {
            let _ = session.req_header_mut().set_raw_path(&origin);
        }
        let req = session.req_header();
        let asked = headers::Asked::of(req);
        ctx.request_id = match asked.request_id {
            Some(v) if headers::sane_request_id(v) => String::from_utf8_lossy(v).into_owned(),
            _ => request_id::generate(),
        };
        ctx.form = Form::of(&req.method, asked.accept);
        ctx.expects_continue = asked.expect_continue;
        let malformed = crate::connection::malformed_as(&req.method, req.version, &asked);
        // Step 2 of the pipeline, done here where the look at the headers says whether there
        // is anything to do: no client copy of an identity header survives, logged in or not.
        if asked.reserved {
            ctx.reserved_sent = true;
            headers::strip_reserved(session.req_header_mut());
        }
        ctx.client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.remote_ip = match (ctx.client_ip, &ctx.config.rules) {
            (Some(peer), Some(rules)) => {
                let h = &session.req_header().headers;
                let real = rules.server.real_ip(peer, |name| {
                    let values: Vec<&str> = h
                        .get_all(name)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect();
                    (!values.is_empty()).then(|| values.join(", "))
                });
                real.or(ctx.client_ip)
            }
            _ => ctx.client_ip,
        };
        // RFC 9110 7.8: `Upgrade` counts only where `Connection` lists it (a front proxy
        // reusing its connection reads a request without it as a plain one): otherwise it is
        // not passed on as an upgrade (an nginx file's `proxy_set_header Upgrade $http_upgrade`
        // still reads it, as nginx does).
        ctx.upgrade =
            session.is_upgrade_req() && headers::connection_lists_upgrade(session.req_header());
        // RFC 9110 15.2: no 1xx to an HTTP/1.0 client (nginx in front speaks 1.0 by default).
        let http_10 = session.req_header().version == http::Version::HTTP_10;
        session.set_ignore_info_resp(http_10);
        crate::connection::on_request(session, &ctx.config.server);
        let decided = match malformed {
            Some((kind, why)) => Err(Failure::new(kind, why).closing()),
            None => self.pipeline(session, ctx).await,
        };
        match decided {
            // nginx reads a proxied request's body itself, sending the `100 Continue` a client
            // waits for once the request may go on; the upstream is not asked (`Expect` is not
            // passed on). Without this a client waits out its own timer (a second for PHP's
            // curl) wherever the upstream does not answer `100` itself.
            Ok(Next::Proxy) if ctx.expects_continue => {
                request::continue_if_expected(session).await;
                request::buffer_small_body(session, ctx).await?;
                Ok(false)
            }
            Ok(Next::Proxy) => {
                request::buffer_small_body(session, ctx).await?;
                Ok(false)
            }
            // Boxed for the same reason as the gateway's endpoints: writing an answer (its
            // header, an nginx page or file) would otherwise sit in every proxied request's
            // future.
            other => Box::pin(respond(session, ctx, other)).await,
        }
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        ctx.proxied = true;
        let addr = match balance::server(ctx) {
            Ok(addr) => addr,
            // No server is left: nginx's 502, through its error_page as a failed attempt's.
            Err(e) if *e.esource() == ErrorSource::Upstream => {
                upstream_failed(ctx, &e);
                return Err(nginx::fail_to_connect(ctx, e));
            }
            Err(e) => return Err(e),
        };
        let Some(up) = ctx.upstream() else {
            return Error::e_explain(ErrorType::InternalError, "no upstream chosen");
        };
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(up.connect_timeout);
        peer.options.read_timeout = Some(up.read_timeout);
        peer.options.write_timeout = Some(up.write_timeout);
        peer.options.idle_timeout = Some(up.idle_timeout);
        nginx::peer(session, ctx, &mut peer);
        if let Some(trace) = ctx.trace.as_mut() {
            // An attempt's times run from its connection, as nginx's `u->start_time`.
            trace.upstream_sent = Some(Instant::now());
            trace.upstream_answered = None;
            trace.upstream_failed = None;
            trace.upstream_connected = None;
        }
        Ok(Box::new(peer))
    }

    /// The attempt's connection is there (`$upstream_connect_time`).
    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(trace) = ctx.trace.as_mut() {
            trace.upstream_connected = Some(Instant::now());
        }
        Ok(())
    }

    /// Step 8: what the upstream is told.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        nginx::upstream_request(req, ctx)?;
        if ctx.expects_continue {
            req.remove_header(&http::header::EXPECT);
        }
        if let Some(uri) = ctx.upstream_uri.take() {
            // Built from the rewritten URI with nginx's escaping, so it always parses.
            let uri = http::Uri::try_from(uri)
                .map_err(|e| Error::because(ErrorType::InternalError, "rewritten URI", e))?;
            req.set_uri(uri);
        }
        // Every header is in place (the nginx file's `proxy_set_header` included): one look at
        // the names says which of the steps below have anything to do.
        let gateway_xff = ctx.client_ip.is_some() && !nginx::sets_forwarded_for(ctx);
        let present = headers::Present::of(req, ctx.upgrade, gateway_xff);
        headers::strip_hop_by_hop(req, ctx.upgrade, &present);
        // A body read whole is sent with its length, as nginx sends what it buffered: a
        // server that reads no chunked body (Python's `http.server`, wsgiref) gets it all.
        if let Some(n) = ctx.buffered_body {
            let chunked = session
                .req_header()
                .headers
                .contains_key(http::header::TRANSFER_ENCODING);
            if chunked {
                req.remove_header(&http::header::TRANSFER_ENCODING);
                req.insert_header(http::header::CONTENT_LENGTH, n.to_string())?;
            }
        }
        // A request with a body ends its connection to the upstream, as nginx's default
        // HTTP/1.0 hop ends each: a server that answers without reading the body (an early
        // 401, a GET handler) and keeps the connection reads the body as a request of its own,
        // with headers the client wrote there (`X-WeCom-UserId`), before the engine can see
        // it. `close` asks the server to read no further; the engine does not reuse it either.
        if !ctx.upgrade && !session.is_body_empty() {
            req.insert_header(http::header::CONNECTION, "close")?;
        }
        if let (false, Some(up)) = (present.host, ctx.upstream()) {
            crate::connection::upstream_host(req, up)?;
        }
        if present.cookie {
            let cookie_name = ctx.config.session.as_ref().map(|s| s.cookie_name.as_str());
            headers::strip_gateway_cookies(req, cookie_name);
        }
        // Our mini-program token is the gateway's credential, not the CRM's; a foreign bearer
        // token is the CRM's own business and passes.
        if present.authorization
            && req
                .headers
                .get_all(http::header::AUTHORIZATION)
                .iter()
                .any(|v| crate::login::bearer::ours(v.as_bytes()).is_some())
        {
            let foreign: Vec<http::HeaderValue> = req
                .headers
                .get_all(http::header::AUTHORIZATION)
                .iter()
                .filter(|v| crate::login::bearer::ours(v.as_bytes()).is_none())
                .cloned()
                .collect();
            req.remove_header(&http::header::AUTHORIZATION);
            for v in foreign {
                req.append_header(http::header::AUTHORIZATION, v)?;
            }
        }
        if present.contact {
            headers::remove_present(req, &headers::names::WGW_CONTACT);
        }
        // The client's copies; one the nginx file sets is the operator's.
        if present.overrides {
            headers::strip_overrides(req, |name| nginx::sets(ctx, name));
        }

        // The headers the gateway sets follow the request's own on the wire, written once
        // rather than inserted into pingora's two header maps (values and name cases) that
        // nothing reads again; no other copy of them may stay in the map.
        let xff = ctx.client_ip.filter(|_| gateway_xff).map(|ip| {
            let prev = present
                .forwarded_for
                .then(|| req.headers.get(headers::names::X_FORWARDED_FOR))
                .flatten();
            headers::forwarded_for(prev, ip)
        });
        headers::strip_set(req, gateway_xff, &present);
        if let Some(xff) = xff {
            req.append_wire_header(&headers::names::X_FORWARDED_FOR, xff.as_bytes())?;
        }
        // A `[[routes]]` entry passes the client's address as nearly every nginx file does
        // (`proxy_set_header X-Real-IP $remote_addr`); a location of the nginx file passes
        // what it sets, as nginx. A client's own copy is gone either way.
        let route = matches!(ctx.upstream, Some(ctx::Chosen::Route(_)));
        if let Some(ip) = ctx
            .client_ip
            .filter(|_| route && !nginx::sets(ctx, "x-real-ip"))
        {
            let mut buf = [0u8; 46];
            req.append_wire_header(&headers::names::X_REAL_IP, headers::ip_text(ip, &mut buf))?;
        }
        req.append_wire_header(
            &headers::names::X_FORWARDED_PROTO,
            ctx.config.server.public_url.scheme().as_bytes(),
        )?;
        // The host browsers use, as public_url says: a client's made-up Host header must not
        // become the host the CRM builds links and mails with.
        let server = &ctx.config.server;
        if server.trust_host_header {
            let asked = session.req_header();
            let host = match asked.headers.get(http::header::HOST) {
                Some(h) => Some(h.as_bytes()),
                None => asked.uri.authority().map(|a| a.as_str().as_bytes()),
            };
            if let Some(h) = host {
                req.append_wire_header(&headers::names::X_FORWARDED_HOST, h)?;
            }
        } else {
            req.append_wire_header(
                &headers::names::X_FORWARDED_HOST,
                server.public_host.as_bytes(),
            )?;
        }
        req.append_wire_header(&headers::names::X_REQUEST_ID, ctx.request_id.as_bytes())?;
        if let Some(identity) = &ctx.identity {
            identity.apply(req)?;
            if let Some(jwt) = assertion(ctx) {
                req.append_wire_header(&headers::names::X_GATEWAY_ASSERTION, &jwt)?;
            }
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        nginx::request_body(ctx, body.as_ref())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(trace) = ctx.trace.as_mut() {
            trace.upstream_answered = Some((upstream_response.status.as_u16(), Instant::now()));
        }
        // A 101 is the answer of a WebSocket: what the tunnel does after is not the server's
        // failure to answer.
        let status = upstream_response.status;
        if status == http::StatusCode::SWITCHING_PROTOCOLS || !status.is_informational() {
            balance::answered(ctx);
        }
        // The upstream's `Server` names the CRM's software and version to every client; nginx
        // hides it (`ngx_http_proxy_hide_headers`). Before the nginx file's `add_header`.
        if upstream_response.headers.contains_key(http::header::SERVER) {
            upstream_response.remove_header(&http::header::SERVER);
        }
        // A length written as a list (`2, 2`) or twice: a client or proxy in front may frame
        // the answer otherwise than the engine did; nginx refuses it with a 502 too.
        let mut lengths = upstream_response
            .headers
            .get_all(http::header::CONTENT_LENGTH)
            .iter();
        if let Some(first) = lengths.next() {
            if lengths.next().is_some() || !headers::is_one_number(first.as_bytes()) {
                let mut e = Error::explain(
                    ErrorType::InvalidHTTPHeader,
                    "the upstream sent a Content-Length that is not one number",
                );
                e.as_up();
                return Err(e);
            }
        }
        // A coding other than `chunked` (`xchunked`, `gzip`): the engine would read the body to
        // the connection's end and pass the header on with it, which a proxy in front may read
        // as chunks (a second answer in the body); nginx refuses it with a 502.
        if let Some(te) = upstream_response
            .headers
            .get(http::header::TRANSFER_ENCODING)
        {
            if !te.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") {
                let mut e = Error::explain(
                    ErrorType::InvalidHTTPHeader,
                    "the upstream sent a Transfer-Encoding other than chunked",
                );
                e.as_up();
                return Err(e);
            }
        }
        // The answer is the gateway's, in its own version (nginx's status line too): an
        // HTTP/1.0 status line passed on with chunked framing (a body the upstream ended by
        // closing, or compressed here) is a message a strict client reads as badly framed.
        if upstream_response.version == http::Version::HTTP_10 {
            upstream_response.set_version(http::Version::HTTP_11);
        }
        nginx::accel_redirect(ctx, upstream_response)?;
        nginx::upstream_answered(ctx, upstream_response.status.as_u16())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        nginx::response(session, resp, ctx);
        // A switch of protocols (a WebSocket): the client may stay quiet as long as it likes,
        // as in nginx, which times only the upstream's side of a tunnel (its read timeout,
        // restarted by traffic either way) — the engine's 60 s for a client's body would
        // close a quiet WebSocket whatever `proxy_read_timeout` says.
        if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
            session.set_read_timeout(None);
        }
        // One look at the answer's names (the nginx file's `add_header` included) rather than
        // a lookup for each of the two the gateway acts on.
        let (mut set_cookie, mut has_id, mut keep_alive) = (false, false, false);
        let mut nginx_only = false;
        for n in resp.headers.keys() {
            set_cookie |= n == http::header::SET_COOKIE;
            has_id |= *n == headers::names::X_REQUEST_ID;
            keep_alive |= *n == headers::names::KEEP_ALIVE;
            nginx_only |= headers::is_for_the_proxy(n);
        }
        // `X-Accel-*` and `X-Pad` speak to the proxy (nginx's own hidden headers): an internal
        // path of `X-Accel-Redirect` is not the client's to see.
        if nginx_only {
            // Followed only where an included nginx file's location proxies (its `internal`
            // locations are what it names): a `[[routes]]` upstream's is dropped, said once a
            // minute so that a CRM relying on it is not a mystery.
            if ctx.nginx.is_none() && resp.headers.contains_key(&headers::names::X_ACCEL_REDIRECT) {
                if let Some(up) = ctx.route.map(|i| &ctx.config.routes.routes[i]) {
                    if ACCEL_DROPPED.due((), crate::clock::clock().now_ms()) {
                        tracing::warn!(
                            route = %up.location,
                            "the upstream's X-Accel-Redirect is not followed on a [[routes]] entry (only an included nginx file's locations follow it): its answer goes out as it is (logged once a minute)"
                        );
                    }
                }
            }
            headers::strip_for_the_proxy(resp);
        }
        // Hop-by-hop: the upstream's idle time is not the client connection's (nginx drops it).
        if keep_alive {
            resp.remove_header(&headers::names::KEEP_ALIVE);
        }
        if set_cookie {
            let cookie_name = ctx.config.session.as_ref().map(|s| s.cookie_name.as_str());
            headers::strip_gateway_set_cookies(resp, cookie_name);
        }
        // An HTTP/1.0 client reads no chunks (nginx sends it the body as it is, ended by the
        // close): the engine chunks every answer without a length, whatever the client's
        // version. Without the coding the body is written as it comes and the connection closes.
        // A 204 has no body to frame (RFC 9110 6.4.1); nginx drops an upstream's coding there.
        let http_10 = session.req_header().version < http::Version::HTTP_11;
        if (http_10 || resp.status == http::StatusCode::NO_CONTENT)
            && resp.headers.contains_key(http::header::TRANSFER_ENCODING)
        {
            resp.remove_header(&http::header::TRANSFER_ENCODING);
            if http_10 {
                session.set_keepalive(None);
            }
        }
        // Written after the answer's own headers, not into pingora's two maps (nothing reads
        // it again); an id the upstream set is kept.
        if !has_id {
            resp.append_wire_header(&headers::names::X_REQUEST_ID, ctx.request_id.as_bytes())?;
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        upstream_failed(ctx, &e);
        // Another server of the upstream first, as nginx: its error_page only once none is left.
        if balance::failed(session, ctx, &e, false) {
            e.set_retry(true);
            return e;
        }
        nginx::fail_to_connect(ctx, e)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        upstream_failed(ctx, &e);
        if balance::failed(session, ctx, &e, true) {
            let mut e = e.more_context(format!("Peer: {peer}"));
            e.set_retry(true);
            return e;
        }
        nginx::error_while_proxy(peer, session, e, ctx, client_reused)
    }

    /// An nginx error_page that replaced the upstream's answer is not a failure to log, nor a
    /// client that went away (nginx's "client prematurely closed connection", at info): its
    /// access line says 499.
    fn suppress_error_log(&self, _session: &Session, ctx: &Ctx, e: &Error) -> bool {
        if crate::nginx::response::is_error_page(e) || crate::connection::client_went_away(e) {
            return true;
        }
        // A body the client framed badly (a broken chunk): the client's fault, which any
        // client can send at will; nginx logs it at info, not as an error of its own.
        if *e.esource() == ErrorSource::Downstream
            && matches!(
                e.etype(),
                ErrorType::InvalidHTTPHeader
                    | ErrorType::Custom("InvalidChunk" | "InvalidTrailerEnd" | "PrematureBodyEnd")
            )
        {
            tracing::info!(
                request_id = %ctx.request_id,
                error = e.etype().as_str(),
                "the client's request body could not be read"
            );
            return true;
        }
        false
    }

    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &Ctx,
        e: &Error,
        _context: pingora::proxy::ProxyWarnLogContext,
    ) -> bool {
        crate::nginx::response::is_error_page(e)
    }

    /// Step 9: the upstream refused, timed out or broke: 502/504 in the form the client reads.
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        if let Some(error_code) = nginx::write_pending(session, ctx).await {
            return FailToProxy {
                error_code,
                can_reuse_downstream: false,
            };
        }
        let bad_body = crate::connection::bad_request_body(session, e);
        let (kind, label) = match e.etype() {
            // The request's body stopped arriving: the client's read timed out (nginx's
            // `client_body_timeout`), or the upstream waited for it (its read is timed afresh
            // with each piece of body passed on). The client is late, as nginx says with a
            // 408; the CRM is not to blame.
            ErrorType::ReadTimedout
                if *e.esource() == ErrorSource::Downstream || !session.is_body_done() =>
            {
                (Kind::RequestTimeout, "")
            }
            _ if bad_body.is_some() => (Kind::BadRequest, ""),
            ErrorType::ConnectTimedout => (Kind::UpstreamUnavailable, "connect_timeout"),
            ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => {
                (Kind::UpstreamUnavailable, "connect")
            }
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                (Kind::UpstreamTimeout, "timeout")
            }
            ErrorType::HTTPStatus(400) => (Kind::BadRequest, ""),
            // The engine refused to send the request on as it is (its `Connection` header names
            // `Host` or an `X-Forwarded-*` header): the client is there and is told.
            ErrorType::InvalidHTTPHeader if *e.esource() == ErrorSource::Downstream => {
                (Kind::BadRequest, "")
            }
            _ => match e.esource() {
                ErrorSource::Upstream => (Kind::UpstreamUnavailable, "protocol"),
                ErrorSource::Downstream => {
                    // The client went away or sent garbage: nothing useful can be written.
                    return FailToProxy {
                        error_code: 0,
                        can_reuse_downstream: false,
                    };
                }
                _ => (Kind::Internal, ""),
            },
        };
        if !label.is_empty() {
            if let Some(up) = ctx.upstream() {
                METRICS
                    .upstream_errors
                    .with_label_values(&[up.name.as_str(), label])
                    .inc();
            }
        }
        if !crate::nginx::response::answered(session) {
            let detail = match kind {
                Kind::UpstreamTimeout => "the application did not answer in time",
                Kind::UpstreamUnavailable => "the application could not be reached",
                Kind::RequestTimeout => "the request's body stopped arriving",
                Kind::BadRequest if bad_body.is_none() => "the request cannot be sent on as it is",
                _ => bad_body.unwrap_or("the request could not be completed"),
            };
            // pingora drops the client connection after a failed proxy attempt; saying so
            // (`Connection: close`) keeps clients from reusing it for their next request.
            let _ = fail(session, ctx, &Failure::new(kind, detail).closing()).await;
        }
        FailToProxy {
            error_code: kind.status(),
            can_reuse_downstream: false,
        }
    }

    /// One line per request, and the request metrics.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            // An interim answer (100, 103) is not the request's; a switch of protocols (a
            // websocket's 101) is its only one.
            .filter(|s| *s >= 200 || *s == 101)
            .or(ctx.answered)
            // Gone before its answer: nginx's 499.
            .unwrap_or(if e.is_some_and(crate::connection::client_went_away) {
                499
            } else {
                0
            });
        let elapsed = ctx.started.elapsed();
        crate::metrics::observe_request(&ctx.config.routes, ctx.route_key(), status, elapsed);
        let route = ctx.route_label();
        let userid = ctx
            .identity
            .as_ref()
            .and_then(|i| i.userid.as_deref().or(i.openid.as_deref()))
            .unwrap_or("-");
        if ctx.unlogged {
            return;
        }
        if let Some(line) = crate::logging::access() {
            line.token("method", session.req_header().method.as_str())
                .client("path", &String::from_utf8_lossy(&ctx.path))
                .quoted("route", route)
                .number("status", status.into())
                .quoted(
                    "upstream",
                    ctx.upstream()
                        .filter(|_| ctx.proxied)
                        .map_or("-", |u| u.name.as_str()),
                )
                .millis("duration_ms", elapsed)
                .token("request_id", &ctx.request_id)
                .quoted("userid", userid)
                .finish();
        }
        if let (Some(trace), Some(rules)) = (&ctx.trace, &ctx.config.rules) {
            let done = crate::nginx::log::Done {
                status,
                elapsed,
                request_id: &ctx.request_id,
                upstream: ctx.upstream_server().filter(|_| ctx.proxied),
                trace,
                at: ctx
                    .nginx
                    .as_ref()
                    .map(|f| (&f.request, &f.proxy.state))
                    .or(trace.at.as_deref().map(|(r, s)| (r, s))),
                server: &ctx.config.server,
                client_ip: ctx.remote_ip,
            };
            crate::nginx::log::write(rules, session, &done);
        }
    }

    /// A request pingora could not read: the same 400 (JSON, a request id, logged) as the
    /// gateway's other listeners give, not the engine's bare one.
    fn malformed_request_response(
        &self,
        session: &pingora::protocols::http::ServerSession,
        error: &Error,
    ) -> Option<(ResponseHeader, Bytes)> {
        crate::served::malformed_response(session, error)
    }

    /// pingora's own error lines use this; the query is left out because it may hold a code.
    /// The path is escaped (and quoted when it needs to be, as in the access line): a `%0a` in
    /// it must not start a line of its own in the text log.
    fn request_summary(&self, session: &Session, ctx: &Ctx) -> String {
        let path = String::from_utf8_lossy(&ctx.path);
        let mut line = format!("{} ", session.req_header().method).into_bytes();
        crate::text::escaped(&mut line, &path, crate::text::needs_quotes(&path));
        line.extend_from_slice(b" rid=");
        line.extend_from_slice(ctx.request_id.as_bytes());
        String::from_utf8(line).unwrap_or_default()
    }
}

/// `X-Gateway-Assertion` for the request's identity, when an `assertion_secret` is set.
/// A remembered session's requests share the part about the person, prepared on the first.
fn assertion(ctx: &Ctx) -> Option<Vec<u8>> {
    use crate::login::assertion::{sign, Prefix};
    let identity = ctx.identity.as_ref()?;
    let settings = ctx.config.session.as_ref()?;
    let key = settings.assertion_key.as_ref()?;
    let audience = settings.assertion_audience.as_deref();
    let now = crate::login::now_secs();
    let prepared = ctx.session.as_ref().map(|(entries, at)| {
        entries[*at]
            .assertion
            .get_or_init(|| Prefix::new(identity, key, audience))
    });
    Some(match prepared {
        Some(p) if p.fits(identity, key, audience) => p.finish(identity, &ctx.request_id, now),
        _ => sign(identity, &ctx.request_id, now, key, audience),
    })
}

/// An upstream that failed before its answer is, for the access line, the status nginx gives
/// the attempt (`$upstream_status`: 502, or 504 when it timed out) at the time it failed.
fn upstream_failed(ctx: &mut Ctx, e: &Error) {
    if let Some(trace) = ctx.trace.as_mut() {
        if trace.upstream_answered.is_none() && *e.esource() == ErrorSource::Upstream {
            trace.upstream_failed = Some(crate::nginx::response::failed_status(e));
        }
    }
}

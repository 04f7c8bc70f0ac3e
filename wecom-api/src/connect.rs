//! How the client reaches WeCom: directly, or through the outbound HTTP proxy the environment
//! names. Many corps allow API calls only from a fixed egress (WeCom's "trusted IPs"), so the
//! gateway runs behind a forward proxy more often than not; `HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY` and `NO_PROXY` are read once, as curl reads them. The proxy is asked for a
//! tunnel (`CONNECT host:port`), so TLS runs end to end with WeCom and the proxy sees no token.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::{BoxError, Service, ServiceExt};

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<TcpStream>, BoxError>> + Send>>;

/// Which destinations go through which proxy.
#[derive(Clone)]
pub struct Proxies(Option<Arc<Matcher>>);

impl Proxies {
    /// The proxies of the process's environment (none when no variable is set).
    pub fn from_env() -> Self {
        Proxies(Some(Arc::new(Matcher::from_env())))
    }

    /// Every call connects directly.
    pub fn none() -> Self {
        Proxies(None)
    }

    /// Every destination except those `no_proxy` lists (curl's `NO_PROXY` syntax) goes through
    /// the HTTP proxy at `proxy` (`http://host:port`, user info for Basic auth).
    pub fn all(proxy: &str, no_proxy: &str) -> Self {
        let matcher = Matcher::builder().all(proxy).no(no_proxy).build();
        Proxies(Some(Arc::new(matcher)))
    }
}

/// The connector under the HTTP client: TCP to the destination, or a tunnel through its proxy.
#[derive(Clone)]
pub(crate) struct Connector {
    pub direct: HttpConnector,
    pub proxies: Proxies,
}

impl Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let mut direct = self.direct.clone();
        let via = self.proxies.0.as_ref().and_then(|m| m.intercept(&dst));
        Box::pin(async move {
            let Some(proxy) = via else {
                return Ok(direct.ready().await?.call(dst).await?);
            };
            // A TLS or SOCKS proxy would need another connector; say so rather than sending
            // the proxy a CONNECT it cannot read.
            if proxy.uri().scheme_str() != Some("http") {
                return Err(format!(
                    "outbound proxy scheme {:?} is not supported (http:// only)",
                    proxy.uri().scheme_str().unwrap_or("")
                )
                .into());
            }
            let mut tunnel = Tunnel::new(proxy.uri().clone(), direct);
            if let Some(auth) = proxy.basic_auth() {
                tunnel = tunnel.with_auth(auth.clone());
            }
            Ok(tunnel.ready().await?.call(dst).await?)
        })
    }
}

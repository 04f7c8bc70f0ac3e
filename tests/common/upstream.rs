//! Test upstreams: an echo server that answers with what it received, and helpers to make it
//! slow. Runs on its own runtime thread so blocking tests can use it too.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::{Json, Router};

/// What the echo server saw.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
pub struct Echo {
    pub name: String,
    pub method: String,
    pub uri: String,
    /// Every header, names lowercased, values of repeated headers joined with "\n".
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Echo {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    /// Requests the echo server received (0 for other servers): proof that the gateway
    /// answered one itself.
    pub hits: Arc<AtomicUsize>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Starts an echo upstream named `name`. `/slow?ms=N` waits N ms before answering.
pub fn echo(name: &str) -> Upstream {
    let name = name.to_owned();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().fallback(any(
        move |method: Method,
              uri: Uri,
              q: Query<BTreeMap<String, String>>,
              headers: HeaderMap,
              body: Bytes| {
            let name = name.clone();
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if uri.path() == "/slow" {
                    let ms: u64 = q.get("ms").and_then(|m| m.parse().ok()).unwrap_or(1000);
                    // The behaviour under test: a slow upstream.
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                let mut hs: BTreeMap<String, String> = BTreeMap::new();
                for (k, v) in headers.iter() {
                    let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    hs.entry(k.as_str().to_owned())
                        .and_modify(|e| {
                            e.push('\n');
                            e.push_str(&v)
                        })
                        .or_insert(v);
                }
                Json(Echo {
                    name,
                    method: method.to_string(),
                    uri: uri.to_string(),
                    headers: hs,
                    body: String::from_utf8_lossy(&body).into_owned(),
                })
                .into_response()
            }
        },
    ));
    let mut up = serve(app);
    up.hits = hits;
    up
}

pub fn serve(app: Router) -> Upstream {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        });
    });
    let addr = addr_rx.recv().unwrap();
    Upstream {
        addr,
        hits: Arc::default(),
        _shutdown: tx,
    }
}

/// An address where nothing listens.
pub fn closed_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], super::free_port()))
}

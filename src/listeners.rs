//! The listeners, bound before pingora starts. A port 0 in `listen`, `admin_listen` or
//! `qyapi_listen` becomes a real port the process then reports (one log line, and the
//! `--ports-file` a test or a supervisor reads), so nothing has to guess a free port and race
//! another process for it. A `public_url` whose port is 0 takes the port `listen` bound.
//!
//! pingora binds each listener itself unless its fd table already holds a socket for the
//! address: that table is how a graceful upgrade hands sockets over. [`PreBound`] puts the
//! socket bound here into that table under its real address just before the service builds
//! its listeners, so pingora adopts it (and would hand it over on an upgrade like its own).

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{IntoRawFd, RawFd};
use std::path::Path;

use async_trait::async_trait;
use pingora::server::{ListenFds, ShutdownWatch};
use pingora::services::Service;

use crate::config::model::ServerSettings;

/// Every listener of `[server]`, bound.
pub struct Bound {
    pub public: PreBound,
    pub admin: Option<PreBound>,
    pub qyapi: Option<PreBound>,
}

/// The addresses the listeners got.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub qyapi_listen: Option<SocketAddr>,
    /// The in-process emulator of `[emulator] enabled = true` (its `listen` may say port 0).
    pub emulator: Option<SocketAddr>,
}

/// A socket bound here, on its way into pingora's fd table.
pub struct PreBound {
    /// The real address: the key pingora looks the socket up by.
    pub addr: SocketAddr,
    listener: TcpListener,
}

fn bind_one(text: &str, key: &str) -> Result<PreBound, String> {
    let asked: SocketAddr = text
        .parse()
        .map_err(|_| format!("[server].{key}: '{text}' is not a socket address"))?;
    let failed = |e: std::io::Error| format!("[server].{key}: cannot listen on {asked}: {e}");
    // std sets SO_REUSEADDR on Unix, as pingora's own bind does; pingora raises the backlog
    // when it adopts the socket, and its runtime needs it non-blocking.
    let listener = TcpListener::bind(asked).map_err(failed)?;
    listener.set_nonblocking(true).map_err(failed)?;
    let addr = listener.local_addr().map_err(failed)?;
    Ok(PreBound { addr, listener })
}

/// Binds every listener `server` names (port 0: any free port).
pub fn bind(server: &ServerSettings) -> Result<Bound, String> {
    Ok(Bound {
        public: bind_one(&server.listen, "listen")?,
        admin: server
            .admin_listen
            .as_deref()
            .map(|a| bind_one(a, "admin_listen"))
            .transpose()?,
        qyapi: server
            .qyapi_listen
            .as_deref()
            .map(|a| bind_one(a, "qyapi_listen"))
            .transpose()?,
    })
}

impl Bound {
    pub fn ports(&self) -> Ports {
        Ports {
            listen: self.public.addr,
            admin_listen: self.admin.as_ref().map(|s| s.addr),
            qyapi_listen: self.qyapi.as_ref().map(|s| s.addr),
            emulator: None,
        }
    }
}

impl Ports {
    /// `server` as bound: the listen addresses are the real ones, and a `public_url` with
    /// port 0 has the public listener's port. Applied to every config the process loads
    /// (a reload reads port 0 from the file again).
    pub fn settle(&self, server: &mut ServerSettings) {
        server.listen = self.listen.to_string();
        if let Some(a) = self.admin_listen {
            server.admin_listen = Some(a.to_string());
        }
        if let Some(q) = self.qyapi_listen {
            server.qyapi_listen = Some(q.to_string());
        }
        settle_public_url(server, self.listen.port());
    }

    /// What the process reports: the real addresses and the public URL.
    pub fn report(&self, server: &ServerSettings) -> serde_json::Value {
        let mut r = serde_json::json!({
            "listen": self.listen.to_string(),
            "admin_listen": self.admin_listen.map(|a| a.to_string()),
            "qyapi_listen": self.qyapi_listen.map(|a| a.to_string()),
            "public_url": server.public_url.as_str(),
        });
        if let Some(e) = self.emulator {
            r["emulator"] = e.to_string().into();
        }
        r
    }
}

/// A `public_url` port 0 means "the port `listen` bound".
pub fn settle_public_url(server: &mut ServerSettings, port: u16) {
    if server.public_url.port() != Some(0) {
        return;
    }
    // An http(s) URL always takes a port.
    let _ = server.public_url.set_port(Some(port));
    server.public_origin = server.public_url.origin().ascii_serialization();
    if let Ok(host) = crate::config::model::url_host(&server.public_url) {
        server.public_host = host;
    }
}

/// Writes `report` to `path` atomically (a temporary file renamed over it), so a reader never
/// sees half of it.
pub fn write_ports_file(path: &Path, report: &serde_json::Value) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, serde_json::to_vec(report)?)?;
    std::fs::rename(&tmp, path)
}

impl PreBound {
    /// `inner`, built to listen on `self.addr`, adopts this socket when it starts.
    pub fn serve<S: Service>(self, inner: S) -> Adopting<S> {
        Adopting {
            inner,
            socket: Some((self.addr.to_string(), self.listener.into_raw_fd())),
        }
    }
}

/// A pingora service that finds its pre-bound sockets in the fd table when it starts.
pub struct Adopting<S> {
    inner: S,
    /// The address and the fd; pingora owns the fd once it is in the table.
    socket: Option<(String, RawFd)>,
}

#[async_trait]
impl<S: Service> Service for Adopting<S> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        if let (Some(table), Some((addr, fd))) = (&fds, self.socket.take()) {
            table.lock().add(addr, fd);
        }
        self.inner
            .start_service(fds, shutdown, listeners_per_fd)
            .await
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn threads(&self) -> Option<usize> {
        self.inner.threads()
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.inner.listen_addresses()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(listen: &str, public_url: &str) -> Result<ServerSettings, String> {
        let text = format!(
            "[server]\nlisten = \"{listen}\"\npublic_url = \"{public_url}\"\nadmin_listen = \"127.0.0.1:0\"\n\
             [upstreams.crm]\nurl = \"http://127.0.0.1:9\"\n[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n"
        );
        crate::config::load_str("gateway.toml", &text, Path::new("."))
            .map(|c| c.server)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn port_zero_listeners_bind_real_ports_and_public_url_takes_the_public_one() {
        let mut s = server("127.0.0.1:0", "http://127.0.0.1:0").unwrap();
        let bound = bind(&s).unwrap();
        let ports = bound.ports();
        assert_ne!(ports.listen.port(), 0);
        assert_ne!(ports.admin_listen.unwrap().port(), 0);
        assert_ne!(ports.listen, ports.admin_listen.unwrap());
        ports.settle(&mut s);
        let p = ports.listen.port();
        assert_eq!(s.listen, format!("127.0.0.1:{p}"));
        assert_eq!(s.public_url.as_str(), format!("http://127.0.0.1:{p}/"));
        assert_eq!(s.public_origin, format!("http://127.0.0.1:{p}"));
        assert_eq!(s.public_host, format!("127.0.0.1:{p}"));
        let report = ports.report(&s);
        assert_eq!(report["listen"], format!("127.0.0.1:{p}"));
        assert_eq!(report["qyapi_listen"], serde_json::Value::Null);
    }

    /// Only port 0 is "the bound port": a public URL behind a proxy keeps its own port, and
    /// one without a port (the scheme's) stays without.
    #[test]
    fn a_public_url_with_its_own_port_is_left_alone() {
        for (public_url, want) in [
            ("https://crm.example.com", "https://crm.example.com/"),
            ("http://127.0.0.1:8443", "http://127.0.0.1:8443/"),
        ] {
            let mut s = server("127.0.0.1:0", public_url).unwrap();
            settle_public_url(&mut s, 41234);
            assert_eq!(s.public_url.as_str(), want);
        }
    }

    #[test]
    fn a_port_zero_public_url_needs_a_port_zero_listen() {
        let e = server("127.0.0.1:8080", "http://127.0.0.1:0")
            .err()
            .unwrap();
        assert!(
            e.contains("[server].public_url") && e.contains("port 0"),
            "{e}"
        );
    }

    #[test]
    fn a_taken_port_is_a_clear_error() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let s = server(&addr, "http://127.0.0.1:8080").unwrap();
        let e = bind(&s).err().unwrap();
        assert!(
            e.starts_with(&format!("[server].listen: cannot listen on {addr}")),
            "{e}"
        );
    }
}

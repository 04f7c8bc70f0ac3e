//! The request as nginx's variables and redirects see it, and the file system as nginx's
//! content phase asks about it.

use std::path::{Path, PathBuf};

use nginx_compat::{FileKind, FileSystem, Request};

use crate::config::model::ServerSettings;

/// Absolute redirects follow nginx's `absolute_redirect on`: the Host header the client sent,
/// with the scheme and port the client used. The gateway listens in plain HTTP, so:
/// - the scheme is `server.public_url`'s (an `https://` public URL gives `https://host/...`,
///   as the nginx that terminated TLS did);
/// - the port (`port_in_redirect on`, nginx's default) is the gateway's own listening port,
///   which is what nginx wrote when clients reached it directly — except behind an `https://`
///   public URL, where TLS is terminated in front and the listening port is never the one
///   clients use: there it is the public URL's port.
///
/// Write `absolute_redirect off;` or `port_in_redirect off;` in the nginx file for other
/// set-ups, as with nginx behind a load balancer.
///
/// `drop_underscored`: headers whose name has `_` are left out, as nginx drops them by
/// default ([`nginx_compat::Server::drops_underscored_headers`]). `remote_addr` is the client's
/// (a trusted proxy's header may name it), `peer` the connection's: its port is
/// `$remote_port` when the two are one.
pub fn request(
    method: &str,
    version: http::Version,
    raw_uri: &[u8],
    headers: &http::HeaderMap,
    drop_underscored: bool,
    server: &ServerSettings,
    remote_addr: Option<std::net::IpAddr>,
    peer: Option<std::net::SocketAddr>,
    local: Option<std::net::SocketAddr>,
    request_id: &str,
) -> Request {
    static PROVIDED: std::sync::Once = std::sync::Once::new();
    PROVIDED
        .call_once(|| nginx_compat::vars::provide_process_variables(super::log::process_variable));
    let url = &server.public_url;
    let public_port = url.port_or_known_default().unwrap_or(80);
    let port = match (url.scheme(), local) {
        ("http", Some(l)) => l.port(),
        _ => public_port,
    };
    // `$server_addr`, and the redirect host when the client sent no Host: the address the
    // connection arrived on, as nginx's getsockname().
    let local_addr = match local.map(|l| l.ip()) {
        Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        Some(ip) => ip.to_string(),
        None => server
            .listen
            .parse::<std::net::SocketAddr>()
            .map_or_else(|_| server.listen.clone(), |a| a.ip().to_string()),
    };
    Request {
        method: method.to_owned(),
        uri: raw_uri.to_vec(),
        http_version: version_number(version),
        scheme: url.scheme().to_owned(),
        port,
        headers: headers
            .iter()
            .filter(|(k, _)| !(drop_underscored && k.as_str().contains('_')))
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
        remote_addr: remote_addr.map(|a| a.to_string()).unwrap_or_default(),
        remote_port: peer
            .filter(|p| remote_addr == Some(p.ip()))
            .map(|p| p.port()),
        started: Some(std::time::Instant::now()),
        local_addr,
        request_id: request_id.to_owned(),
        maps: Default::default(),
    }
}

/// An HTTP version as nginx numbers it (`r->http_version`: HTTP/1.1 is 1001).
pub fn version_number(version: http::Version) -> u16 {
    match version {
        http::Version::HTTP_09 => 9,
        http::Version::HTTP_10 => nginx_compat::gzip::HTTP_10,
        http::Version::HTTP_11 => nginx_compat::gzip::HTTP_11,
        http::Version::HTTP_2 => 2000,
        _ => 3000,
    }
}

/// The file system as the content phase asks about it. Relative roots start at the nginx
/// file's directory (nginx starts them at its prefix). A `stat` is short enough to run on
/// the worker thread, as nginx itself does.
pub struct DiskFs<'a> {
    pub base: &'a Path,
}

impl DiskFs<'_> {
    pub fn full(&self, path: &[u8]) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        self.base.join(std::ffi::OsStr::from_bytes(path))
    }
}

impl FileSystem for DiskFs<'_> {
    fn kind(&self, path: &[u8]) -> FileKind {
        if path.contains(&0) {
            return FileKind::Missing;
        }
        match std::fs::metadata(self.full(path)) {
            Ok(m) if m.is_dir() => FileKind::Dir,
            Ok(_) => FileKind::File,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => FileKind::Denied,
            Err(_) => FileKind::Missing,
        }
    }
}

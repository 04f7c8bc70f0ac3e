//! The request as the evaluator needs it: what nginx's variables and redirects read.

/// One client request. `uri` is the raw request-target (path and query, not decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub uri: Vec<u8>,
    /// The request's HTTP version as nginx numbers it (`1001` is HTTP/1.1: [`crate::gzip`]).
    pub http_version: u16,
    /// `http` or `https`: the scheme the client used to reach this listener.
    pub scheme: String,
    /// The local port the request arrived on (`$server_port`, port_in_redirect).
    pub port: u16,
    /// Header fields in arrival order; `Host` and `Cookie` are read from here.
    pub headers: Vec<(String, Vec<u8>)>,
    pub remote_addr: String,
    /// `$remote_port`: the client's port, when the address is the connection's own.
    pub remote_port: Option<u16>,
    /// When the request came, for `$request_time` (the caller's clock: the crate reads none).
    pub started: Option<std::time::Instant>,
    /// The IP the connection arrived on (IPv6 in brackets): `$server_addr`, and the redirect
    /// host when there is no `Host`.
    pub local_addr: String,
    /// `$request_id`: the caller's id of the request.
    pub request_id: String,
    /// The values of the `map`s worked out for this request, by map: nginx works a map out
    /// once per request (unless `volatile`), at its first use, and that value stands.
    pub maps: MapValues,
}

/// [`Request::maps`].
#[derive(Debug, Default)]
pub struct MapValues(std::sync::Mutex<Worked>, std::sync::atomic::AtomicBool);

#[derive(Debug, Default, Clone)]
struct Worked {
    /// By map.
    values: Vec<(usize, Vec<u8>)>,
    /// The named captures of the map regexes that matched: variables of the request from then
    /// on, as `ngx_http_regex_exec` sets them (`map $host $backend { ~^(?<tenant>\w+)\. ...}`
    /// and `proxy_set_header X-Tenant $tenant`), each with when it was made.
    captured: Vec<Captured>,
    /// When a `set` or another regex last wrote a name, for the names written after some map
    /// captured one (before that, any capture is the later write): nginx's latest write wins.
    written: Vec<(String, u64)>,
    /// Counts the writes above.
    clock: u64,
}

#[derive(Debug, Clone)]
struct Captured {
    name: String,
    value: Vec<u8>,
    at: u64,
}

impl Clone for MapValues {
    fn clone(&self) -> Self {
        MapValues(
            std::sync::Mutex::new(self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            std::sync::atomic::AtomicBool::new(self.any_captured()),
        )
    }
}

/// What was worked out is no part of what was asked: two requests alike are equal.
impl PartialEq for MapValues {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for MapValues {}

impl MapValues {
    pub(crate) fn get(&self, map: usize) -> Option<Vec<u8>> {
        let w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        w.values
            .iter()
            .find(|(m, _)| *m == map)
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn keep(&self, map: usize, value: &[u8]) {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !w.values.iter().any(|(m, _)| *m == map) {
            w.values.push((map, value.to_vec()));
        }
    }

    /// A named capture of a map's regex (lower-cased name): the latest match's value.
    pub(crate) fn capture(&self, name: &str, value: &[u8]) {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        w.clock += 1;
        let c = Captured {
            name: name.to_owned(),
            value: value.to_vec(),
            at: w.clock,
        };
        match w.captured.iter_mut().find(|c| c.name == name) {
            Some(kept) => *kept = c,
            None => w.captured.push(c),
        }
        self.1.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// A `set` or a regex's named capture wrote `name` (lower-cased) into the request's own
    /// variables: later than any map's capture of it so far.
    pub(crate) fn wrote(&self, name: &str) {
        if !self.any_captured() {
            return;
        }
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        w.clock += 1;
        let at = w.clock;
        match w.written.iter_mut().find(|(n, _)| n == name) {
            Some(kept) => kept.1 = at,
            None => w.written.push((name.to_owned(), at)),
        }
    }

    /// Whether any map's regex has captured a name (nothing to look up otherwise).
    pub(crate) fn any_captured(&self) -> bool {
        self.1.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The value of `name` a map's match gave, when it is the latest write of the name.
    pub(crate) fn captured(&self, name: &str) -> Option<Vec<u8>> {
        let w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let c = w.captured.iter().find(|c| c.name == name)?;
        let later = w.written.iter().any(|(n, at)| n == name && *at > c.at);
        (!later).then(|| c.value.clone())
    }
}

impl Request {
    pub fn get(uri: &str, host: &str) -> Request {
        Request {
            method: "GET".into(),
            uri: uri.as_bytes().to_vec(),
            http_version: crate::gzip::HTTP_11,
            scheme: "http".into(),
            port: 80,
            headers: vec![("Host".into(), host.as_bytes().to_vec())],
            remote_addr: "127.0.0.1".into(),
            remote_port: None,
            started: None,
            local_addr: "127.0.0.1".into(),
            request_id: String::new(),
            maps: MapValues::default(),
        }
    }

    /// The first header with this name (case-insensitive), as nginx's `$http_NAME`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// `$http_NAME` (`ngx_http_variable_unknown_header`): the first header whose name,
    /// lower-cased and with `-` read as `_`, is `var` (so `$http_x_a` is `X-A` or `X_A`).
    pub fn header_variable(&self, var: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| {
                n.len() == var.len()
                    && n.bytes().zip(var.bytes()).all(|(c, v)| {
                        let c = if c == b'-' {
                            b'_'
                        } else {
                            c.to_ascii_lowercase()
                        };
                        c == v
                    })
            })
            .map(|(_, v)| v.as_slice())
    }

    /// Every occurrence of a header joined with `sep`, as nginx's `$http_cookie` and
    /// `$http_x_forwarded_for`; `None` when there is none.
    pub fn joined(&self, name: &str, sep: &[u8]) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        for (_, v) in self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            match &mut out {
                Some(o) => {
                    o.extend_from_slice(sep);
                    o.extend_from_slice(v);
                }
                None => out = Some(v.clone()),
            }
        }
        out
    }

    /// The declared body length (`Content-Length`), as nginx's `content_length_n`.
    pub fn content_length(&self) -> Option<u64> {
        let v = self.header("content-length")?;
        std::str::from_utf8(v).ok()?.trim().parse().ok()
    }

    /// The Host header as nginx validates it: lower-cased, without port or trailing dot.
    pub fn host_header(&self) -> Option<Vec<u8>> {
        let h = self.header("host")?;
        let mut h = if h.first() == Some(&b'[') {
            let end = h.iter().position(|&b| b == b']').map_or(h.len(), |i| i + 1);
            h[..end].to_vec()
        } else {
            let end = h.iter().position(|&b| b == b':').unwrap_or(h.len());
            h[..end].to_vec()
        };
        if h.last() == Some(&b'.') {
            h.pop();
        }
        h.make_ascii_lowercase();
        (!h.is_empty()).then_some(h)
    }

    /// `$host`: the validated Host header, else the server name.
    pub fn host_variable(&self, server_name: &str) -> Vec<u8> {
        self.host_header()
            .unwrap_or_else(|| server_name.as_bytes().to_vec())
    }

    /// `$cookie_NAME`: the first `NAME=value` pair across Cookie headers; name compared
    /// case-insensitively like `ngx_http_parse_multi_header_lines`.
    pub fn cookie(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .find_map(|(_, v)| {
                v.split(|&b| b == b';' || b == b',').find_map(|pair| {
                    let pair = trim_start(pair);
                    let eq = pair.iter().position(|&b| b == b'=')?;
                    let (k, val) = (&pair[..eq], &pair[eq + 1..]);
                    let k = trim_end(k);
                    k.eq_ignore_ascii_case(name).then(|| trim_start(val))
                })
            })
    }
}

fn trim_start(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&c| c != b' ').unwrap_or(b.len());
    &b[i..]
}

fn trim_end(b: &[u8]) -> &[u8] {
    let i = b.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    &b[..i]
}

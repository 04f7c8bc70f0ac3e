//! The `Content-Type` nginx gives the answers it makes itself (`return`, static files):
//! `ngx_http_set_content_type`, the request's extension looked up in the `types` of the
//! location, else its `default_type`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::parse::model::Settings;

/// `types { TYPE EXT ...; }`: the content type of each file extension. Extensions are kept
/// lower-cased, as `ngx_http_core_type` lower-cases them; an extension written twice takes
/// the later type (nginx warns "duplicate extension").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MimeTypes {
    by_exten: HashMap<Vec<u8>, Arc<str>>,
}

impl MimeTypes {
    pub fn insert(&mut self, exten: &str, content_type: Arc<str>) {
        self.by_exten
            .insert(exten.to_ascii_lowercase().into_bytes(), content_type);
    }

    /// The type of an extension, compared case-insensitively (`ngx_http_set_content_type`
    /// lower-cases the request's extension before the lookup).
    pub fn get(&self, exten: &[u8]) -> Option<&str> {
        let key: Cow<[u8]> = if exten.iter().any(u8::is_ascii_uppercase) {
            Cow::Owned(exten.to_ascii_lowercase())
        } else {
            Cow::Borrowed(exten)
        };
        self.by_exten.get(key.as_ref()).map(|t| &**t)
    }

    pub fn len(&self) -> usize {
        self.by_exten.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_exten.is_empty()
    }
}

/// `ngx_http_core_default_types`: what a level has when no level above it wrote `types`.
fn builtin_type(exten: &[u8]) -> Option<&'static str> {
    const BUILTIN: &[(&[u8], &str)] = &[
        (b"html", "text/html"),
        (b"gif", "image/gif"),
        (b"jpg", "image/jpeg"),
    ];
    BUILTIN
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(exten))
        .map(|(_, t)| *t)
}

impl Settings {
    /// The `Content-Type` nginx gives an answer it makes for the URI `uri` (`return` with a
    /// code below 400 or a text, a static file): `ngx_http_set_content_type`, the type of the
    /// URI's extension (see [`exten`]) in `types`, else `default_type`. An empty
    /// type means nginx sends no `Content-Type` at all. For a request the eval ran,
    /// [`crate::Server::content_type`] is exact where this is not: it takes the extension
    /// nginx's request-line parser found (see [`crate::uri::ParsedPath`]).
    ///
    /// None when the configuration wrote neither `types` nor `default_type` anywhere: the
    /// caller's own table applies then (nginx's compiled-in defaults are only `html`, `gif`,
    /// `jpg` and `text/plain`, which a stock `nginx.conf` always replaces with
    /// `include mime.types; default_type application/octet-stream;`).
    pub fn content_type(&self, uri: &[u8]) -> Option<&str> {
        if self.types.is_none() && self.default_type.is_none() {
            return None;
        }
        Some(self.content_type_of_exten(exten(uri)))
    }

    /// [`Settings::content_type`] for an extension already taken from the URI, with nginx's
    /// compiled-in defaults for what the configuration did not write.
    pub fn content_type_of_exten(&self, exten: &[u8]) -> &str {
        if !exten.is_empty() {
            let found = match &self.types {
                Some(types) => types.get(exten),
                None => builtin_type(exten),
            };
            if let Some(t) = found {
                return t;
            }
        }
        self.default_type.as_deref().unwrap_or("text/plain")
    }
}

/// `ngx_http_set_exten`: the extension of a (normalised) URI, what follows the last '.' of its
/// last segment; empty when that segment has no '.', or has it only first (`/.png`). This is
/// what nginx looks up in `types` after a rewrite or an internal redirect. (For the URI of
/// the request line itself nginx's parser also passes over the second and third dot of a
/// segment that starts with dots: `/a/..png` has no extension there.)
pub fn exten(uri: &[u8]) -> &[u8] {
    let mut i = uri.len();
    while i > 2 {
        i -= 1;
        match uri[i] {
            b'.' if uri[i - 1] != b'/' => return &uri[i + 1..],
            b'/' => break,
            _ => {}
        }
    }
    &[]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::NoFiles;
    use crate::{Action, Config, Request};

    /// A few lines of Debian's /etc/nginx/mime.types.
    const MIME_TYPES: &str = "types {\n text/html html htm shtml;\n text/css css;\n \
        image/png png;\n application/json json;\n application/octet-stream bin exe;\n}\n";

    /// The http block of a stock Debian nginx.conf, and locations that answer with `return`.
    const STOCK: &str = "http {
        include mime.types;
        default_type application/octet-stream;
        server {
            location /empty { return 200 \"\"; }
            location /none { return 200; }
            location /nf { return 404 \"gone\"; }
            location /r/ { rewrite ^/r/(.*)$ /$1.css; return 200 \"r\"; }
            location /rw { rewrite ^ /rw/..png; return 200 \"x\"; }
            location /dt { default_type text/x-dt; return 200 \"x\"; location /dt/in { return 200 \"y\"; } }
            location /ty { types { text/x-ty ty; } return 200 \"x\"; }
            location /tyempty { types { } return 200 \"x\"; }
            location /multi { types { a/one one; } types { a/two two; a/two2 one; } return 200 \"x\"; }
            location /q { types { \"text/x q\" q; } return 200 \"x\"; }
            location /up { types { a/up UPPER; } return 200 \"x\"; }
            location /if { if ($arg_x) { return 200 \"i\"; } return 200 \"x\"; }
            location /ep { error_page 404 = /e.json; return 404; }
            location /tf { try_files /nothing /e.json; }
            location = /e.json { return 200 \"e\"; }
            location / { return 200 \"x\"; }
        }
        server {
            types { text/x-srv srv; }
            location / { return 200 \"x\"; }
            location /loc { default_type text/x-loc; return 200 \"x\"; }
        }
    }";

    /// A server of an http block without `types` or `default_type`.
    const BARE: &str = "server {
        location /d { default_type a/d; return 200 \"x\"; }
        location /t { types { a/t t; } return 200 \"x\"; }
        location / { return 200 \"x\"; }
    }";

    fn stock() -> Config {
        let cfg = Config::parse_with("nginx.conf", STOCK, &mut |p: &str| {
            assert_eq!(p, "mime.types");
            Ok(vec![(p.to_owned(), MIME_TYPES.to_owned())])
        })
        .unwrap();
        assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
        cfg
    }

    /// The `Content-Type` of the answer to `GET uri`, as the gateway asks for it.
    fn answer_type(configs: &[Config], server: usize, uri: &str) -> String {
        let server = match server {
            2 => &configs[1].servers[0],
            n => &configs[0].servers[n],
        };
        let action = server.handle(&Request::get(uri, "localhost"), &NoFiles);
        let Action::Respond(r) = &action else {
            panic!("{uri}: {action:?}")
        };
        let t = server.content_type(&r.state);
        if !uri.contains("/..") {
            let by_path = server.settings_for(&r.state).content_type(&r.state.uri);
            assert_eq!(by_path, t, "{uri}: Settings::content_type");
        }
        format!("{} {}", r.status, t.unwrap_or("(none)"))
    }

    /// What nginx 1.22 sent for each request (`curl -D -`), one line each: the server (0 and 1
    /// of the stock http block, 2 the bare one), the request, the status and `Content-Type`.
    #[test]
    fn return_answers_take_the_type_of_their_extension() {
        let configs = [stock(), Config::parse("bare.conf", BARE).unwrap()];
        for (server, uri, want) in [
            (0, "/a.png", "200 image/png"),
            (0, "/a.json", "200 application/json"),
            (0, "/health", "200 application/octet-stream"),
            (0, "/A.PNG", "200 image/png"),
            (0, "/a.PnG", "200 image/png"),
            (0, "/a.", "200 application/octet-stream"),
            (0, "/.png", "200 application/octet-stream"),
            (0, "/a/.b.png", "200 image/png"),
            // The request line's parser reads a segment's first dots as "." and "..".
            (0, "/a/..png", "200 application/octet-stream"),
            (0, "/a/...png", "200 application/octet-stream"),
            (0, "/a/....png", "200 image/png"),
            (0, "/a.png?x=1", "200 image/png"),
            (0, "/x.tar.gz", "200 application/octet-stream"),
            (0, "/a.png/", "200 application/octet-stream"),
            (0, "/a%2Epng", "200 image/png"),
            (0, "/a.png%2F", "200 application/octet-stream"),
            (0, "/a.png%3Fb", "200 application/octet-stream"),
            (0, "/a.htm", "200 text/html"),
            (0, "/empty", "200 application/octet-stream"),
            (0, "/empty.png", "200 image/png"),
            (0, "/none", "200 application/octet-stream"),
            (0, "/none.png", "200 image/png"),
            (0, "/nf", "404 application/octet-stream"),
            (0, "/nf.png", "404 image/png"),
            // The URI a rewrite made decides, with ngx_http_set_exten's rules.
            (0, "/r/a.png", "200 text/css"),
            (0, "/rw", "200 image/png"),
            (0, "/dt", "200 text/x-dt"),
            (0, "/dt.png", "200 image/png"),
            (0, "/dt/in", "200 text/x-dt"),
            // A `types` block replaces the inherited map, whatever it holds.
            (0, "/ty.ty", "200 text/x-ty"),
            (0, "/ty.png", "200 application/octet-stream"),
            (0, "/tyempty.html", "200 application/octet-stream"),
            // Two blocks on one level are one map; a repeated extension takes the later type.
            (0, "/multi.one", "200 a/two2"),
            (0, "/multi.two", "200 a/two"),
            (0, "/q.q", "200 text/x q"),
            (0, "/up.upper", "200 a/up"),
            (0, "/up.UPPER", "200 a/up"),
            (0, "/if.png?x=1", "200 image/png"),
            // An internal redirect's URI decides.
            (0, "/ep.png", "200 application/json"),
            (0, "/tf.png", "200 application/json"),
            (1, "/a.png", "200 application/octet-stream"),
            (1, "/a.html", "200 application/octet-stream"),
            (1, "/a.srv", "200 text/x-srv"),
            (1, "/loc.png", "200 text/x-loc"),
            (1, "/loc.srv", "200 text/x-srv"),
            // Neither written: the gateway's own table decides.
            (2, "/a.png", "200 (none)"),
            // One written: nginx's compiled-in `html`, `gif`, `jpg` and `text/plain` fill in.
            (2, "/d.html", "200 text/html"),
            (2, "/d.png", "200 a/d"),
            (2, "/t.t", "200 a/t"),
            (2, "/t.html", "200 text/plain"),
            (2, "/t.png", "200 text/plain"),
        ] {
            assert_eq!(
                answer_type(&configs, server, uri),
                want,
                "server {server} {uri}"
            );
        }
    }

    /// `default_type "";` (or an empty type in `types`): nginx 1.22 sends no `Content-Type`.
    #[test]
    fn an_empty_type_is_an_answer_without_content_type() {
        let cfg = Config::parse(
            "x.conf",
            "types { \"\" e; } default_type \"\"; server { location / { return 200 x; } }",
        )
        .unwrap();
        let s = &cfg.servers[0].root.settings;
        assert_eq!(s.content_type(b"/a"), Some(""));
        assert_eq!(s.content_type(b"/a.e"), Some(""));
    }

    #[test]
    fn exten_as_ngx_http_set_exten() {
        for (uri, want) in [
            ("/a.png", "png"),
            ("/a.b.PNG", "PNG"),
            ("/health", ""),
            ("/a.", ""),
            ("/.png", ""),
            ("/a/.png", ""),
            ("/a/.b.png", "png"),
            ("/a/..png", "png"),
            ("/a.png/", ""),
            ("/a.d/x", ""),
            ("/", ""),
            ("", ""),
        ] {
            assert_eq!(exten(uri.as_bytes()), want.as_bytes(), "{uri}");
        }
    }

    /// Where nginx refuses `types` and `default_type`, with the message `nginx -t` prints.
    #[test]
    fn types_and_default_type_are_refused_where_nginx_refuses_them() {
        for (body, want) in [
            (
                "location / { if ($a) {\n default_type a/b; } }",
                "x.conf:2:2: \"default_type\" directive is not allowed here",
            ),
            (
                "location / { if ($a) {\n types { a/b b; } } }",
                "x.conf:2:2: \"types\" directive is not allowed here",
            ),
            (
                "if ($a) {\n default_type a/b; }",
                "x.conf:2:2: \"default_type\" directive is not allowed here",
            ),
            (
                "default_type a/b;\n default_type a/c;",
                "x.conf:2:2: \"default_type\" directive is duplicate",
            ),
            (
                "\n default_type a/b c;",
                "x.conf:2:2: invalid number of arguments in \"default_type\" directive",
            ),
            (
                "\n types x { }",
                "x.conf:2:2: invalid number of arguments in \"types\" directive",
            ),
            (
                "\n types;",
                "x.conf:2:2: directive \"types\" has no opening \"{\"",
            ),
            ("types {\n a/b c { } }", "x.conf:2:2: unexpected \"{\""),
        ] {
            let e = Config::parse("x.conf", &format!("server {{ {body} }}")).unwrap_err();
            assert_eq!(e.to_string(), want, "{body}");
        }
        // Accepted by nginx: a type without extensions, an empty block, a named location's.
        Config::parse(
            "x.conf",
            "server { types { a/b; } types { } location @n { default_type a/b; types { } } }",
        )
        .unwrap();
    }
}

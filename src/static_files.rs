//! Static files for `root`/`alias`/`index`/`try_files` locations, as nginx's static module
//! serves them: content type by extension, `ETag` and `Last-Modified` with `If-None-Match` /
//! `If-Modified-Since` (304) and `If-Match` / `If-Unmodified-Since` (412), `HEAD`, and a
//! single byte `Range` (206, 416).
//!
//! The body is streamed in fixed-size chunks from the handle the metadata was read from, so
//! memory stays bounded whatever the file's size (a `HEAD` or `Range: bytes=0-0` reads no more
//! than it sends) and a file that shrinks between the `stat` and the last read ends the body
//! early instead of panicking (the connection is then closed, the client sees a short body).
//!
//! Unlike nginx's default (`disable_symlinks off`), a path whose canonical form leaves the
//! canonical document root is refused: an SPA directory is uploaded by people who should not
//! be able to publish `/etc` with a symlink.

use std::path::{Component, Path};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How much of a file is read at a time.
const CHUNK: usize = 64 * 1024;

/// What was asked of the file, from the request headers.
pub struct Conditions<'a> {
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    /// `If-Match` and `If-Unmodified-Since`: the file must still be the one named (a resumed
    /// download, a write guarded by its version), else 412.
    pub if_match: Option<&'a [u8]>,
    pub if_unmodified_since: Option<&'a [u8]>,
    pub range: Option<&'a [u8]>,
    /// `If-Range`: the range only if the file is still the one this ETag or date names (a
    /// download resumed after the file changed gets it whole, not two versions stitched).
    pub if_range: Option<&'a [u8]>,
    /// `etag on` (nginx's default): the file's ETag is sent and `If-None-Match` compared
    /// with it; off, only `If-None-Match: *` matches.
    pub etag: bool,
    /// `if_modified_since` (nginx's default `exact`).
    pub modified_since: nginx_compat::ModifiedSince,
}

/// The opened file's answer: its header, and the part of the file to send.
pub struct FileReply {
    pub header: Box<ResponseHeader>,
    /// The file's mtime in seconds (for `expires modified`).
    pub mtime: i64,
    pub body: Option<FileBody>,
}

/// `len` bytes from `start` of an open file.
pub struct FileBody {
    file: tokio::fs::File,
    start: u64,
    len: u64,
}

pub enum Served {
    Reply(Box<FileReply>),
    /// A range past the file's end (416): the caller writes its page, with the file's length.
    Unsatisfiable(u64),
    /// `If-Match` or `If-Unmodified-Since` names another file (412): the caller writes its page.
    PreconditionFailed,
    Forbidden,
    NotFound,
}

/// Opens the file and builds its answer. `status` is 200 for a plain file; an error page served
/// from a file keeps its error status and ignores validators and ranges (nginx's
/// not_modified and range filters only act on 200s).
pub async fn open(path: &Path, root: &Path, cond: &Conditions<'_>, status: u16) -> Served {
    let path = path.to_path_buf();
    let root = root.to_path_buf();
    let checked = tokio::task::spawn_blocking(move || inside_root(&path, &root)).await;
    let (path, file) = match checked {
        Ok(Ok(found)) => found,
        Ok(Err(refusal)) => return refusal,
        Err(_) => return Served::NotFound,
    };
    let file = tokio::fs::File::from_std(file);
    let Ok(meta) = file.metadata().await else {
        return Served::NotFound;
    };
    if !meta.is_file() {
        return Served::NotFound;
    }
    let len = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    // ngx_http_set_etag: "<mtime hex>-<length hex>".
    let etag = format!("\"{mtime:x}-{len:x}\"");
    let last_modified = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(mtime));
    let plain = status == 200;
    // ngx_http_not_modified_header_filter, first: the file must still be the one named. A date
    // that cannot be read is no date at or after the file's (`ngx_parse_http_time` fails);
    // `If-Match` compares strongly with the ETag sent, and `*` matches any file (`etag off`
    // too).
    let unchanged = cond
        .if_unmodified_since
        .is_none_or(|ius| parse_date(ius).is_some_and(|t| t >= mtime))
        && cond.if_match.is_none_or(|im| {
            im.trim_ascii() == b"*" || (cond.etag && etag_matches_strongly(im, &etag))
        });
    if plain && !unchanged {
        return Served::PreconditionFailed;
    }
    // ngx_http_not_modified_header_filter: each condition sent must hold (a browser sends
    // both, from the same cached answer).
    let not_modified = plain
        && (cond.if_none_match.is_some() || cond.if_modified_since.is_some())
        && cond.if_modified_since.is_none_or(|ims| {
            use nginx_compat::ModifiedSince;
            // A date that cannot be read is no date: modified.
            match (cond.modified_since, parse_date(ims)) {
                (ModifiedSince::Off, _) | (_, None) => false,
                (ModifiedSince::Exact, Some(t)) => t == mtime,
                (ModifiedSince::Before, Some(t)) => t >= mtime,
            }
        })
        && cond.if_none_match.is_none_or(|inm| match cond.etag {
            true => etag_matches(inm, &etag),
            false => inm.trim_ascii() == b"*",
        });
    let content_type = content_type(&path);
    let h = |status: u16| {
        let mut h = ResponseHeader::build(status, Some(8)).expect("valid status");
        let _ = h.insert_header("content-type", content_type);
        // nginx's header filter drops `Last-Modified` from any other status (a file an
        // `error_page` serves with its error's status); the ETag stays.
        if matches!(status, 200 | 206 | 304) {
            let _ = h.insert_header("last-modified", last_modified.as_str());
        }
        if cond.etag {
            let _ = h.insert_header("etag", etag.as_str());
        }
        // nginx's range filter and not-modified filter clear it from a 206, 416 or 304.
        if plain && status == 200 {
            let _ = h.insert_header("accept-ranges", "bytes");
        }
        h
    };
    let reply = |header: ResponseHeader, body: Option<FileBody>| {
        Served::Reply(Box::new(FileReply {
            header: Box::new(header),
            mtime: mtime as i64,
            body,
        }))
    };
    if not_modified {
        let mut head = h(304);
        head.remove_header("content-type");
        return reply(head, None);
    }
    // nginx's range filter: an `If-Range` that names another ETag (compared whole, as
    // written) or another time than the file's drops the range.
    let still_same = |v: &[u8]| {
        let v = v.trim_ascii();
        if v.len() >= 2 && v.ends_with(b"\"") {
            cond.etag && v == etag.as_bytes()
        } else {
            parse_date(v) == Some(mtime)
        }
    };
    let range = cond
        .range
        .filter(|_| plain && cond.if_range.is_none_or(still_same))
        .and_then(|r| parse_range(r, len));
    match range {
        Some(Range::Unsatisfiable) => Served::Unsatisfiable(len),
        Some(Range::Bytes(start, end)) => {
            let part = end - start + 1;
            let mut head = h(206);
            let _ = head.insert_header("content-range", format!("bytes {start}-{end}/{len}"));
            let _ = head.insert_header("content-length", part.to_string());
            reply(
                head,
                Some(FileBody {
                    file,
                    start,
                    len: part,
                }),
            )
        }
        None => {
            let mut head = h(status);
            let _ = head.insert_header("content-length", len.to_string());
            reply(
                head,
                Some(FileBody {
                    file,
                    start: 0,
                    len,
                }),
            )
        }
    }
}

/// The entries of a directory inside the root, for `autoindex`: every name but those
/// starting with `.`, each with what `stat` says of it (of the link itself when it points
/// nowhere), as `ngx_http_autoindex_handler` reads them. An entry that may not be read is left
/// out, as nginx leaves it out.
pub async fn list(dir: &Path, root: &Path) -> Result<Vec<nginx_compat::autoindex::Entry>, Served> {
    use std::os::unix::ffi::OsStrExt;
    let (dir, root) = (dir.to_path_buf(), root.to_path_buf());
    let listed = tokio::task::spawn_blocking(move || {
        inside_root(&dir, &root)?;
        let read = std::fs::read_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => Served::Forbidden,
            _ => Served::NotFound,
        })?;
        let mut out = Vec::new();
        for e in read {
            let Ok(e) = e else { continue };
            let name = e.file_name().as_bytes().to_vec();
            if name.first() == Some(&b'.') {
                continue;
            }
            let path = e.path();
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => continue,
                Err(_) => match std::fs::symlink_metadata(&path) {
                    Ok(m) => m,
                    Err(_) => continue,
                },
            };
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            out.push(nginx_compat::autoindex::Entry {
                name,
                dir: meta.is_dir(),
                file: meta.is_file(),
                mtime,
                size: meta.len(),
            });
        }
        Ok(out)
    })
    .await;
    listed.unwrap_or(Err(Served::NotFound))
}

/// Sends the body chunk by chunk. A file that is shorter than it was when opened ends the
/// body early; the caller must not reuse the connection then (the error says so).
pub async fn stream(session: &mut Session, mut body: FileBody) -> pingora::Result<()> {
    use pingora::{Error, ErrorType};
    if body.start > 0 {
        body.file
            .seek(std::io::SeekFrom::Start(body.start))
            .await
            .map_err(|e| Error::because(ErrorType::FileReadError, "seeking a static file", e))?;
    }
    let mut left = body.len;
    while left > 0 {
        let want = left.min(CHUNK as u64) as usize;
        let mut buf = BytesMut::zeroed(want);
        let n =
            body.file.read(&mut buf).await.map_err(|e| {
                Error::because(ErrorType::FileReadError, "reading a static file", e)
            })?;
        if n == 0 {
            return Error::e_explain(
                ErrorType::FileReadError,
                "the static file became shorter while it was sent",
            );
        }
        buf.truncate(n);
        left -= n as u64;
        session
            .write_response_body(Some(Bytes::from(buf)), left == 0)
            .await?;
    }
    if body.len == 0 {
        session.write_response_body(None, true).await?;
    }
    Ok(())
}

/// The file's canonical path and an open handle, when it is inside the canonical root. `..`
/// and NUL never get this far (the URI is normalised) but are refused again here.
fn inside_root(path: &Path, root: &Path) -> Result<(std::path::PathBuf, std::fs::File), Served> {
    use std::os::unix::ffi::OsStrExt;
    if path.as_os_str().as_bytes().contains(&0)
        || path.components().any(|c| c == Component::ParentDir)
    {
        return Err(Served::Forbidden);
    }
    let root = std::fs::canonicalize(root).map_err(|_| Served::NotFound)?;
    let real = std::fs::canonicalize(path).map_err(|_| Served::NotFound)?;
    if !real.starts_with(&root) {
        return Err(Served::Forbidden);
    }
    let file = std::fs::File::open(&real).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => Served::Forbidden,
        _ => Served::NotFound,
    })?;
    Ok((real, file))
}

fn etag_matches(header: &[u8], etag: &str) -> bool {
    let Ok(h) = std::str::from_utf8(header) else {
        return false;
    };
    h.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/").is_some_and(|weak| weak == etag))
}

/// `If-Match`'s strong comparison (`ngx_http_test_if_match` with `weak` 0): an entry equal
/// to the ETag as sent; a weak one (`W/"..."`) never matches.
fn etag_matches_strongly(header: &[u8], etag: &str) -> bool {
    std::str::from_utf8(header).is_ok_and(|h| h.split(',').map(str::trim).any(|t| t == etag))
}

fn parse_date(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    let t: SystemTime = httpdate::parse_http_date(s.trim()).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

#[derive(Debug, PartialEq, Eq)]
enum Range {
    Bytes(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range; several ranges or a malformed header are ignored (a full 200), as a
/// server may do.
fn parse_range(v: &[u8], len: u64) -> Option<Range> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let spec = s.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Range::Unsatisfiable);
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        if start >= len {
            return Some(Range::Unsatisfiable);
        }
        let end = if b.is_empty() {
            len - 1
        } else {
            b.parse().ok()?
        };
        if end < start {
            return None;
        }
        (start, end)
    };
    Some(Range::Bytes(start, end.min(len - 1)))
}

/// The content type of a file, by its extension: [`type_of_exten`].
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.as_encoded_bytes())
        .unwrap_or_default();
    type_of_exten(ext)
}

/// What a stock nginx gives an extension, which the included files were written for: its
/// `mime.types` (nginx 1.22's, which distributions' `nginx.conf` includes) and, for the rest,
/// the `default_type application/octet-stream` the same `nginx.conf` sets. A few types a
/// front end ships that the file lacks are added (module scripts are refused by browsers
/// without a JavaScript type). Compared without case, as nginx compares.
pub fn type_of_exten(exten: &[u8]) -> &'static str {
    stock_type(exten).unwrap_or(DEFAULT_TYPE)
}

/// The type nginx's `mime.types` (with the few additions) gives an extension, if any.
pub fn stock_type(exten: &[u8]) -> Option<&'static str> {
    let mut lower = [0u8; 16];
    let buf = lower.get_mut(..exten.len())?;
    buf.copy_from_slice(exten);
    buf.make_ascii_lowercase();
    MIME_TYPES
        .binary_search_by(|(e, _)| e.as_bytes().cmp(buf))
        .ok()
        .map(|i| MIME_TYPES[i].1)
}

/// The `default_type` of a stock `nginx.conf`.
pub const DEFAULT_TYPE: &str = "application/octet-stream";

/// nginx 1.22's `mime.types`, sorted by extension (a later line of the file wins, as in nginx).
const MIME_TYPES: &[(&str, &str)] = &[
    ("3gp", "video/3gpp"),
    ("3gpp", "video/3gpp"),
    ("7z", "application/x-7z-compressed"),
    ("ai", "application/postscript"),
    ("asf", "video/x-ms-asf"),
    ("asx", "video/x-ms-asf"),
    ("atom", "application/atom+xml"),
    ("avi", "video/x-msvideo"),
    ("avif", "image/avif"),
    ("bin", "application/octet-stream"),
    ("bmp", "image/x-ms-bmp"),
    ("cco", "application/x-cocoa"),
    ("crt", "application/x-x509-ca-cert"),
    ("css", "text/css"),
    ("deb", "application/octet-stream"),
    ("der", "application/x-x509-ca-cert"),
    ("dll", "application/octet-stream"),
    ("dmg", "application/octet-stream"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("ear", "application/java-archive"),
    ("eot", "application/vnd.ms-fontobject"),
    ("eps", "application/postscript"),
    ("exe", "application/octet-stream"),
    ("flv", "video/x-flv"),
    ("gif", "image/gif"),
    ("hqx", "application/mac-binhex40"),
    ("htc", "text/x-component"),
    ("htm", "text/html"),
    ("html", "text/html"),
    ("ico", "image/x-icon"),
    ("img", "application/octet-stream"),
    ("iso", "application/octet-stream"),
    ("jad", "text/vnd.sun.j2me.app-descriptor"),
    ("jar", "application/java-archive"),
    ("jardiff", "application/x-java-archive-diff"),
    ("jng", "image/x-jng"),
    ("jnlp", "application/x-java-jnlp-file"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", "application/javascript"),
    ("json", "application/json"),
    ("kar", "audio/midi"),
    ("kml", "application/vnd.google-earth.kml+xml"),
    ("kmz", "application/vnd.google-earth.kmz"),
    ("m3u8", "application/vnd.apple.mpegurl"),
    ("m4a", "audio/x-m4a"),
    ("m4v", "video/x-m4v"),
    ("map", "application/json"), // not in nginx's file
    ("mid", "audio/midi"),
    ("midi", "audio/midi"),
    ("mjs", "application/javascript"), // not in nginx's file
    ("mml", "text/mathml"),
    ("mng", "video/x-mng"),
    ("mov", "video/quicktime"),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("mpeg", "video/mpeg"),
    ("mpg", "video/mpeg"),
    ("msi", "application/octet-stream"),
    ("msm", "application/octet-stream"),
    ("msp", "application/octet-stream"),
    ("odg", "application/vnd.oasis.opendocument.graphics"),
    ("odp", "application/vnd.oasis.opendocument.presentation"),
    ("ods", "application/vnd.oasis.opendocument.spreadsheet"),
    ("odt", "application/vnd.oasis.opendocument.text"),
    ("ogg", "audio/ogg"),
    ("otf", "font/otf"), // not in nginx's file
    ("pdb", "application/x-pilot"),
    ("pdf", "application/pdf"),
    ("pem", "application/x-x509-ca-cert"),
    ("pl", "application/x-perl"),
    ("pm", "application/x-perl"),
    ("png", "image/png"),
    ("ppt", "application/vnd.ms-powerpoint"),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("prc", "application/x-pilot"),
    ("ps", "application/postscript"),
    ("ra", "audio/x-realaudio"),
    ("rar", "application/x-rar-compressed"),
    ("rpm", "application/x-redhat-package-manager"),
    ("rss", "application/rss+xml"),
    ("rtf", "application/rtf"),
    ("run", "application/x-makeself"),
    ("sea", "application/x-sea"),
    ("shtml", "text/html"),
    ("sit", "application/x-stuffit"),
    ("svg", "image/svg+xml"),
    ("svgz", "image/svg+xml"),
    ("swf", "application/x-shockwave-flash"),
    ("tcl", "application/x-tcl"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("tk", "application/x-tcl"),
    ("ts", "video/mp2t"),
    ("ttf", "font/ttf"), // not in nginx's file
    ("txt", "text/plain"),
    ("war", "application/java-archive"),
    ("wasm", "application/wasm"),
    ("wbmp", "image/vnd.wap.wbmp"),
    ("webm", "video/webm"),
    ("webmanifest", "application/manifest+json"), // not in nginx's file
    ("webp", "image/webp"),
    ("wml", "text/vnd.wap.wml"),
    ("wmlc", "application/vnd.wap.wmlc"),
    ("wmv", "video/x-ms-wmv"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("xhtml", "application/xhtml+xml"),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("xml", "text/xml"),
    ("xpi", "application/x-xpinstall"),
    ("xspf", "application/xspf+xml"),
    ("zip", "application/zip"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_rfc_9110_reads_them() {
        let cases: &[(&str, u64, Option<Range>)] = &[
            ("bytes=0-3", 10, Some(Range::Bytes(0, 3))),
            ("bytes=0-0", 10, Some(Range::Bytes(0, 0))),
            ("bytes=5-", 10, Some(Range::Bytes(5, 9))),
            ("bytes=-4", 10, Some(Range::Bytes(6, 9))),
            ("bytes=-40", 10, Some(Range::Bytes(0, 9))),
            ("bytes=8-20", 10, Some(Range::Bytes(8, 9))),
            ("bytes=10-", 10, Some(Range::Unsatisfiable)),
            ("bytes=99-", 10, Some(Range::Unsatisfiable)),
            ("bytes=99-100", 10, Some(Range::Unsatisfiable)),
            ("bytes=-0", 10, Some(Range::Unsatisfiable)),
            ("bytes=-3", 0, Some(Range::Unsatisfiable)),
            ("bytes=0-0", 0, Some(Range::Unsatisfiable)),
            ("bytes=3-1", 10, None),
            ("bytes=0-1,4-5", 10, None),
            ("items=0-1", 10, None),
        ];
        for (h, len, want) in cases {
            assert_eq!(&parse_range(h.as_bytes(), *len), want, "{h}");
        }
    }

    /// A directory of its own holding `name`, and the file's path.
    fn temp_file(tag: &str, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("wgw-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, "body").unwrap();
        (dir, file)
    }

    /// A GET without validators or a range.
    fn unconditional() -> Conditions<'static> {
        Conditions {
            if_none_match: None,
            if_match: None,
            if_unmodified_since: None,
            if_modified_since: None,
            range: None,
            if_range: None,
            etag: true,
            modified_since: nginx_compat::ModifiedSince::Exact,
        }
    }

    /// `If-Range` naming the file as it is keeps the range (its ETag, or its `Last-Modified`);
    /// naming another version, or with `etag off` an ETag at all, the file is sent whole.
    #[tokio::test]
    async fn if_range_keeps_the_range_only_for_the_same_file() {
        let (dir, file) = temp_file("ifrange", "a.bin");
        let Served::Reply(r) = open(&file, &dir, &unconditional(), 200).await else {
            panic!("served")
        };
        let tag = r.header.headers["etag"].as_bytes().to_vec();
        let date = r.header.headers["last-modified"].as_bytes().to_vec();
        for (if_range, etag, want) in [
            (&tag[..], true, 206),
            (&date[..], true, 206),
            (&b"\"other\""[..], true, 200),
            (b"Mon, 01 Jan 2001 00:00:00 GMT", true, 200),
            (b"not a date", true, 200),
            (&tag[..], false, 200),
            (&date[..], false, 206),
        ] {
            let cond = Conditions {
                if_none_match: None,
                if_match: None,
                if_unmodified_since: None,
                if_modified_since: None,
                range: Some(b"bytes=0-1"),
                if_range: Some(if_range),
                etag,
                modified_since: nginx_compat::ModifiedSince::Exact,
            };
            let Served::Reply(r) = open(&file, &dir, &cond, 200).await else {
                panic!("served")
            };
            assert_eq!(
                r.header.status.as_u16(),
                want,
                "{} etag={etag}",
                String::from_utf8_lossy(if_range)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A file served with an error's status (`error_page 500 /50x.html`) keeps its ETag and
    /// loses `Last-Modified`, as nginx's header filter drops it from such a status.
    #[tokio::test]
    async fn an_error_pages_file_has_an_etag_and_no_last_modified() {
        let (dir, file) = temp_file("static", "50x.html");
        let cond = unconditional();
        for (status, last_modified) in [(200, true), (502, false), (404, false)] {
            let Served::Reply(r) = open(&file, &dir, &cond, status).await else {
                panic!("served")
            };
            let h = &r.header.headers;
            assert!(h.contains_key("etag"), "{status}");
            assert_eq!(h.contains_key("last-modified"), last_modified, "{status}");
            assert_eq!(h.contains_key("accept-ranges"), status == 200, "{status}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `etag off`: no ETag, and `If-None-Match` matches only as `*` (nginx compares it with
    /// an ETag there is none of).
    #[tokio::test]
    async fn etag_off_sends_none_and_matches_only_a_star() {
        let (dir, file) = temp_file("etag", "a.js");
        let Served::Reply(r) = open(&file, &dir, &unconditional(), 200).await else {
            panic!("served")
        };
        let tag = r.header.headers["etag"].as_bytes().to_vec();
        let status = |inm: &'static [u8], etag: bool| {
            let (file, dir) = (file.clone(), dir.clone());
            let tag = tag.clone();
            async move {
                let inm = if inm == b"TAG" { &tag[..] } else { inm };
                let cond = Conditions {
                    if_none_match: Some(inm),
                    if_match: None,
                    if_unmodified_since: None,
                    if_modified_since: None,
                    range: None,
                    if_range: None,
                    etag,
                    modified_since: nginx_compat::ModifiedSince::Exact,
                };
                match open(&file, &dir, &cond, 200).await {
                    Served::Reply(r) => (
                        r.header.status.as_u16(),
                        r.header.headers.contains_key("etag"),
                    ),
                    _ => (0, false),
                }
            }
        };
        assert_eq!(status(b"TAG", true).await, (304, true));
        assert_eq!(status(b"TAG", false).await, (200, false));
        assert_eq!(status(b"*", false).await, (304, false));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn etags_match_lists_weak_forms_and_star() {
        let e = "\"5f-a\"";
        assert!(etag_matches(b"\"5f-a\"", e));
        assert!(etag_matches(b"\"x\", W/\"5f-a\"", e));
        assert!(etag_matches(b"*", e));
        assert!(!etag_matches(b"\"5f-b\"", e));
    }

    #[test]
    fn types_follow_nginx_mime_types() {
        assert_eq!(content_type(Path::new("a/index.HTML")), "text/html");
        assert_eq!(content_type(Path::new("app.js")), "application/javascript");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
        assert!(
            MIME_TYPES.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, once each"
        );
        assert!(MIME_TYPES.iter().all(|(e, _)| e.len() <= 16));
        for (exten, want) in [
            (
                &b"XLSX"[..],
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            (
                b"docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
            (b"mjs", "application/javascript"),
            (b"woff2", "font/woff2"),
            (b"", "application/octet-stream"),
            (b"averyveryverylongextension", "application/octet-stream"),
        ] {
            assert_eq!(
                type_of_exten(exten),
                want,
                "{}",
                String::from_utf8_lossy(exten)
            );
        }
    }
}

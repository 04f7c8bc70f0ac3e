//! Static files for `root`/`alias`/`index`/`try_files` locations, as nginx's static module
//! serves them: content type by extension, `ETag` and `Last-Modified` with `If-None-Match` /
//! `If-Modified-Since` (304), `HEAD`, and a single byte `Range` (206, 416).
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
    pub range: Option<&'a [u8]>,
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
    let not_modified = plain
        && match (cond.if_none_match, cond.if_modified_since) {
            (Some(inm), _) => etag_matches(inm, &etag),
            // nginx's default `if_modified_since exact`.
            (None, Some(ims)) => parse_date(ims) == Some(mtime),
            (None, None) => false,
        };
    let content_type = content_type(&path);
    let h = |status: u16| {
        let mut h = ResponseHeader::build(status, Some(8)).expect("valid status");
        let _ = h.insert_header("content-type", content_type);
        let _ = h.insert_header("last-modified", last_modified.as_str());
        if plain {
            let _ = h.insert_header("etag", etag.as_str());
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
    let range = cond
        .range
        .filter(|_| plain)
        .and_then(|r| parse_range(r, len));
    match range {
        Some(Range::Unsatisfiable) => {
            let mut head = h(416);
            let _ = head.insert_header("content-range", format!("bytes */{len}"));
            let _ = head.insert_header("content-length", "0");
            head.remove_header("content-type");
            reply(head, None)
        }
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

/// nginx's `mime.types` for what a web front end ships; anything else is
/// `application/octet-stream` (nginx's `default_type`).
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" | "shtml" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "application/javascript",
        "json" => "application/json",
        "map" => "application/json",
        "txt" => "text/plain",
        "xml" => "text/xml",
        "svg" | "svgz" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "avif" => "image/avif",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "webmanifest" => "application/manifest+json",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

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
    }
}

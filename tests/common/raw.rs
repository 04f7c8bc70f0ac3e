//! Raw HTTP/1.1 over a `TcpStream`, for tests that need exact bytes on the wire (pipelining,
//! malformed requests) or many connections without a client library in the way.

use std::io::Read;
use std::net::TcpStream;

/// One response read off a connection: status, headers (lowercased names), body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads exactly one response (Content-Length or chunked) from `s`, keeping what follows it in
/// `pending` for the next call.
pub fn read_response(s: &mut TcpStream, pending: &mut Vec<u8>) -> Response {
    let head_end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(s, pending);
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    pending.drain(..head_end);
    let mut r = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if let Some(len) = r.header("content-length") {
        let len: usize = len.parse().unwrap();
        while pending.len() < len {
            fill(s, pending);
        }
        r.body = pending.drain(..len).collect();
    } else if r.header("transfer-encoding") == Some("chunked") {
        loop {
            let line_end = loop {
                if let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                fill(s, pending);
            };
            let size =
                usize::from_str_radix(String::from_utf8_lossy(&pending[..line_end]).trim(), 16)
                    .unwrap();
            pending.drain(..line_end + 2);
            while pending.len() < size + 2 {
                fill(s, pending);
            }
            r.body.extend(pending.drain(..size));
            pending.drain(..2);
            if size == 0 {
                break;
            }
        }
    }
    r
}

fn fill(s: &mut TcpStream, pending: &mut Vec<u8>) {
    let mut buf = [0u8; 16 * 1024];
    let n = s.read(&mut buf).expect("the gateway answers in time");
    assert!(n > 0, "connection closed mid-response: {pending:?}");
    pending.extend_from_slice(&buf[..n]);
}

/// A request whose body waits for the server's `100 Continue`, as PHP's curl sends one over
/// 1 KiB: `head` (request line and headers, without `Content-Length`, `Expect` and the blank
/// line), then, once a `100` has come, `body`. Returns the final answer. The read timeout is a
/// bound on a hang (a body the server never asks for), not a timing check.
pub fn after_continue(port: u16, head: &str, body: &[u8]) -> Response {
    use std::io::Write;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let head = format!(
        "{head}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut pending = Vec::new();
    let first = read_response(&mut s, &mut pending);
    assert_eq!(first.status, 100, "a 100 Continue before the body");
    s.write_all(body).unwrap();
    read_response(&mut s, &mut pending)
}

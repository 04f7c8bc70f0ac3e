//! An HTTP/1.1 keep-alive server that answers every request with WeCom's `ok` and the number
//! of the connection it came on (1, 2, ... in accept order): which connection a client reused
//! shows in the answer. Also the API client's tests' (`wecom-api/tests/client.rs`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};

pub fn numbering_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let (mut pending, mut buf) = (Vec::new(), [0u8; 4096]);
                loop {
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        let body =
                            format!("{{\"errcode\":0,\"errmsg\":\"ok\",\"conn\":{}}}", n + 1);
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                             Content-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if conn.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => pending.extend_from_slice(&buf[..k]),
                    }
                }
            });
        }
    });
    addr
}

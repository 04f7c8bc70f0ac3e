//! Free loopback ports for the programs that cannot bind port 0 and report what they got.

use std::net::TcpListener;

/// `n` different free ports on 127.0.0.1: bound together (so none repeats) and released, so
/// another process may take one before the program binds it; its starter tries again on
/// other ports when that happens.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

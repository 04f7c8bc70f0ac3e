//! Several servers behind one upstream, shared out as nginx shares out an `upstream` block's
//! (`ngx_http_upstream_round_robin.c`, `ngx_http_upstream_ip_hash_module.c`): the smooth
//! weighted round-robin, or the client address's hash with `ip_hash`; a server that failed
//! `max_fails` times is left out for `fail_timeout`; `down` servers never, `backup` servers
//! only when no other is left; a request tries each server at most once.
//!
//! nginx keeps this state per worker process (per cluster of workers with `zone`); here the
//! worker threads share it, as a `zone` does. An upstream of one server has no `Balance`, and
//! its requests never take the lock.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most servers one upstream may have: a request's tried servers are one word's bits.
pub const MAX_SERVERS: usize = 64;

#[derive(Debug, Clone)]
pub struct Server {
    /// `host:port` as written (the `Host` of a callback sent to it).
    pub authority: String,
    /// What `$upstream_addr` and the logs call it: `authority`, or the address when the name
    /// was resolved to several (nginx makes a server of each address).
    pub label: String,
    pub addr: SocketAddr,
    /// The entry of the configuration it comes from (one entry per address of a name).
    pub entry: usize,
    pub weight: u32,
    /// Failures within `fail_timeout` that leave the server out; 0: never left out.
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub backup: bool,
    pub down: bool,
}

/// How a server is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    RoundRobin,
    IpHash,
}

#[derive(Debug)]
pub struct Balance {
    /// The primary servers, then the backup ones.
    pub servers: Box<[Server]>,
    primaries: usize,
    pub method: Method,
    /// The primaries' weights added up (`ip_hash` reads it).
    total_weight: u32,
    state: Mutex<Vec<Peer>>,
}

/// A server's share of the round-robin and its failures (`ngx_http_upstream_rr_peer_t`).
#[derive(Debug, Clone, Copy)]
struct Peer {
    current: i64,
    effective: i64,
    fails: u32,
    /// When it last failed, and when it was last tried after its `fail_timeout` ran out.
    accessed: Option<Instant>,
    checked: Option<Instant>,
}

/// The servers one request has tried (nginx's `rrp->tried`), and `ip_hash`'s running hash.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tried {
    bits: u64,
    hash: Option<u32>,
    hash_tries: u32,
    /// The backups are being tried: the primaries had none left.
    backups: bool,
}

impl Tried {
    /// How many servers the request has been sent to.
    pub fn count(&self) -> u32 {
        self.bits.count_ones()
    }
}

impl Balance {
    /// `servers` in the order written; the backups are put after the primaries. At most
    /// [`MAX_SERVERS`], at least one that is not a backup.
    pub fn new(servers: Vec<Server>, method: Method) -> Balance {
        let (mut all, backups): (Vec<Server>, Vec<Server>) =
            servers.into_iter().partition(|s| !s.backup);
        let primaries = all.len();
        all.extend(backups);
        let total_weight = all[..primaries].iter().map(|s| s.weight).sum();
        let state = all
            .iter()
            .map(|s| Peer {
                current: 0,
                effective: i64::from(s.weight),
                fails: 0,
                accessed: None,
                checked: None,
            })
            .collect();
        Balance {
            servers: all.into_boxed_slice(),
            primaries,
            method,
            total_weight,
            state: Mutex::new(state),
        }
    }

    /// How many servers a request may try: every one not `down`, backups included (nginx's
    /// `tries`).
    pub fn tries(&self) -> usize {
        self.servers.iter().filter(|s| !s.down).count()
    }

    /// The server to send the request to next, by its index; `None` when none is left (each
    /// tried, down or failed: nginx's "no live upstreams"). `client`: the address `ip_hash`
    /// hashes (nginx's `$remote_addr`).
    pub fn pick(&self, tried: &mut Tried, client: Option<IpAddr>, now: Instant) -> Option<usize> {
        let mut peers = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !tried.backups {
            let hashed = match self.method {
                Method::IpHash if self.primaries >= 2 => self.hashed(&peers, tried, client, now),
                _ => None,
            };
            let got =
                hashed.or_else(|| self.round_robin(&mut peers, tried, 0..self.primaries, now));
            if let Some(i) = got {
                return Some(self.take(&mut peers, tried, i, now));
            }
            tried.backups = true;
        }
        let i = self.round_robin(&mut peers, tried, self.primaries..self.servers.len(), now)?;
        Some(self.take(&mut peers, tried, i, now))
    }

    /// Neither `down` nor left out for its failures (`max_fails` within `fail_timeout`).
    fn live(&self, p: &Peer, s: &Server, now: Instant) -> bool {
        let failed =
            s.max_fails > 0 && p.fails >= s.max_fails && within(p.checked, s.fail_timeout, now);
        !s.down && !failed
    }
    /// `ngx_http_upstream_get_peer`: the smooth weighted round-robin over `range`.
    fn round_robin(
        &self,
        peers: &mut [Peer],
        tried: &Tried,
        range: std::ops::Range<usize>,
        now: Instant,
    ) -> Option<usize> {
        let single = self.servers.len() == 1;
        let mut best: Option<(usize, i64)> = None;
        let mut total = 0i64;
        for i in range {
            let s = &self.servers[i];
            let usable = if single {
                !s.down
            } else {
                self.live(&peers[i], s, now)
            };
            if tried.bits & (1 << i) != 0 || !usable {
                continue;
            }
            let p = &mut peers[i];
            p.current += p.effective;
            total += p.effective;
            if p.effective < i64::from(s.weight) {
                p.effective += 1;
            }
            if best.is_none_or(|(_, c)| p.current > c) {
                best = Some((i, p.current));
            }
        }
        let (b, _) = best?;
        peers[b].current -= total;
        Some(b)
    }

    /// `ngx_http_upstream_get_ip_hash_peer`: the address's first three bytes (IPv4) or all
    /// sixteen (IPv6) hashed to a point on the primaries' weights; a server tried, down or
    /// failed hashes again, up to twenty times, then the round-robin decides.
    fn hashed(
        &self,
        peers: &[Peer],
        tried: &mut Tried,
        client: Option<IpAddr>,
        now: Instant,
    ) -> Option<usize> {
        let bytes: Vec<u8> = match client.map(|a| a.to_canonical()) {
            Some(IpAddr::V4(a)) => a.octets()[..3].to_vec(),
            Some(IpAddr::V6(a)) => a.octets().to_vec(),
            // nginx's pseudo address for a Unix socket.
            None => vec![0, 0, 0],
        };
        let mut hash = tried.hash.unwrap_or(89);
        loop {
            if tried.hash_tries > 20 {
                return None;
            }
            for b in &bytes {
                hash = (hash * 113 + u32::from(*b)) % 6271;
            }
            let mut w = hash % self.total_weight.max(1);
            let mut i = 0;
            while w >= self.servers[i].weight {
                w -= self.servers[i].weight;
                i += 1;
            }
            if tried.bits & (1 << i) == 0 && self.live(&peers[i], &self.servers[i], now) {
                tried.hash = Some(hash);
                return Some(i);
            }
            tried.hash_tries += 1;
        }
    }

    /// The chosen server is the request's: tried, and checked again once its `fail_timeout`
    /// ran out.
    fn take(&self, peers: &mut [Peer], tried: &mut Tried, i: usize, now: Instant) -> usize {
        tried.bits |= 1 << i;
        let p = &mut peers[i];
        if !within(p.checked, self.servers[i].fail_timeout, now) {
            p.checked = Some(now);
        }
        i
    }

    /// The server failed the request (`NGX_PEER_FAILED`): one failure more, its share of the
    /// round-robin lowered until it answers again.
    pub fn failed(&self, i: usize, now: Instant) {
        if self.servers.len() == 1 {
            return;
        }
        let mut peers = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let s = &self.servers[i];
        let p = &mut peers[i];
        p.fails = p.fails.saturating_add(1);
        p.accessed = Some(now);
        p.checked = Some(now);
        if let Some(step) = s.weight.checked_div(s.max_fails) {
            p.effective -= i64::from(step);
            if p.fails == s.max_fails {
                tracing::warn!(
                    upstream_server = %s.label,
                    "upstream server temporarily disabled"
                );
            }
        }
        p.effective = p.effective.max(0);
    }

    /// The server answered: tried again after its `fail_timeout`, it is live once more.
    pub fn answered(&self, i: usize) {
        let mut peers = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let p = &mut peers[i];
        if p.fails > 0 && p.accessed < p.checked {
            p.fails = 0;
        }
    }

    /// Whether a request that tried `tried` has a server left to try (one more attempt).
    pub fn has_more(&self, tried: &Tried) -> bool {
        (tried.count() as usize) < self.tries()
    }
}

/// `now - t <= timeout`, nginx's "still within its fail_timeout".
fn within(t: Option<Instant>, timeout: Duration, now: Instant) -> bool {
    t.is_some_and(|t| now.saturating_duration_since(t) <= timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(weights: &[u32]) -> Vec<Server> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| Server {
                authority: format!("10.0.0.{}:80", i + 1),
                label: format!("10.0.0.{}:80", i + 1),
                addr: SocketAddr::from(([10, 0, 0, i as u8 + 1], 80)),
                entry: i,
                weight: *w,
                max_fails: 1,
                fail_timeout: Duration::from_secs(10),
                backup: false,
                down: false,
            })
            .collect()
    }

    fn one_request(b: &Balance, now: Instant) -> Option<usize> {
        b.pick(&mut Tried::default(), None, now)
    }

    /// nginx's smooth weighted round-robin: weights 5, 1, 1 give a a b a c a a, spread out
    /// rather than five a's in a row, and again from the start.
    #[test]
    fn weights_are_shared_out_smoothly_as_nginx_does() {
        let b = Balance::new(servers(&[5, 1, 1]), Method::RoundRobin);
        let now = Instant::now();
        let got: Vec<usize> = (0..14).map(|_| one_request(&b, now).unwrap()).collect();
        assert_eq!(got, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
    }

    /// A server that failed `max_fails` times is left out for `fail_timeout`, then tried once
    /// more; its answer makes it live again.
    #[test]
    fn a_failed_server_is_left_out_for_its_fail_timeout() {
        let b = Balance::new(servers(&[1, 1]), Method::RoundRobin);
        let t0 = Instant::now();
        let first = one_request(&b, t0).unwrap();
        b.failed(first, t0);
        for s in 1..=10 {
            let at = t0 + Duration::from_secs(s);
            assert_eq!(
                one_request(&b, at),
                Some(1 - first),
                "{s}s after the failure"
            );
        }
        // Tried again after fail_timeout, its share growing back one step a pick (nginx's
        // `effective_weight`).
        let later = t0 + Duration::from_secs(11);
        let picks: Vec<usize> = (0..4).map(|_| one_request(&b, later).unwrap()).collect();
        assert!(
            picks.contains(&first),
            "tried again after fail_timeout: {picks:?}"
        );
        b.answered(first);
        let picks: Vec<usize> = (0..4).map(|_| one_request(&b, later).unwrap()).collect();
        assert_eq!(
            picks.iter().filter(|&&i| i == first).count(),
            2,
            "{picks:?}"
        );
        // Failed again while being checked: out for another fail_timeout.
        let mut picked_first = false;
        for _ in 0..4 {
            let i = one_request(&b, later).unwrap();
            if i == first {
                b.failed(i, later);
                picked_first = true;
                break;
            }
        }
        assert!(picked_first);
        for _ in 0..4 {
            assert_eq!(
                one_request(&b, later + Duration::from_secs(5)),
                Some(1 - first)
            );
        }
    }

    /// One request tries each server once: the next after a failure, then the backups, then
    /// none is left.
    #[test]
    fn a_request_goes_on_to_the_next_server_then_the_backups() {
        let mut list = servers(&[1, 1, 1]);
        list[0].backup = true;
        let b = Balance::new(list, Method::RoundRobin);
        let now = Instant::now();
        let mut tried = Tried::default();
        let mut seen = Vec::new();
        while let Some(i) = b.pick(&mut tried, None, now) {
            seen.push(b.servers[i].authority.clone());
            if !b.servers[i].backup {
                b.failed(i, now);
            }
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[2], "10.0.0.1:80", "the backup comes last: {seen:?}");
        assert!(!b.has_more(&tried));
        // Every primary failed: a new request goes to the backup at once.
        assert_eq!(one_request(&b, now), Some(2));
    }

    #[test]
    fn down_servers_are_never_chosen() {
        let mut list = servers(&[1, 1]);
        list[1].down = true;
        let b = Balance::new(list, Method::RoundRobin);
        let now = Instant::now();
        for _ in 0..4 {
            assert_eq!(one_request(&b, now), Some(0));
        }
        b.failed(0, now);
        assert_eq!(one_request(&b, now), None, "no live upstreams");
    }

    /// `ip_hash`: the first three bytes of an IPv4 address choose the server, by nginx's hash
    /// (89, then `* 113 + byte` mod 6271 per byte, mod the total weight); 127.0.0.1 hashes to
    /// 4040, the first of two servers. A client of the same /24 has the same server; one whose
    /// server failed hashes on to another.
    #[test]
    fn ip_hash_keeps_a_client_on_its_server() {
        let b = Balance::new(servers(&[1, 1]), Method::IpHash);
        let now = Instant::now();
        let client = |a: [u8; 4]| Some(IpAddr::from(a));
        let of = |a| b.pick(&mut Tried::default(), client(a), now).unwrap();
        assert_eq!(of([127, 0, 0, 1]), 0);
        for _ in 0..5 {
            assert_eq!(of([127, 0, 0, 9]), 0);
        }
        let spread: std::collections::BTreeSet<usize> =
            (0..32).map(|x| of([10, 0, x, 1])).collect();
        assert_eq!(spread.len(), 2, "addresses are spread over both servers");
        b.failed(0, now);
        assert_eq!(of([127, 0, 0, 1]), 1);
        // Within one request, the server tried is not chosen again.
        let mut tried = Tried::default();
        let first = b.pick(&mut tried, client([10, 0, 3, 1]), now).unwrap();
        let second = b.pick(&mut tried, client([10, 0, 3, 1]), now);
        assert_ne!(Some(first), second);
    }
}

//! Sign-in callbacks per client address (SPEC section 8). Each callback with a fresh state
//! costs a provider call (`getuserinfo`, `sns/oauth2/access_token`); a client that makes them
//! in a loop is cut off with 429 instead of spending the app's API quota. The limit is per
//! process and per address as the gateway sees it: behind a load balancer every client shares
//! the balancer's address, so the limit is high enough to be the gateway's total (300 sign-ins
//! a minute), far above what a corp's people need and far below a flood.

use std::net::IpAddr;

use once_cell::sync::Lazy;

use crate::limit::PerMinute;

/// Callbacks a client address may make per minute (also the burst).
pub const PER_MINUTE: u32 = 300;

static LIMITER: Lazy<PerMinute<IpAddr>> = Lazy::new(|| PerMinute::new(PER_MINUTE));

/// Mini-program code exchanges, counted apart: made-up codes need no state of a browser's
/// login, and must not use up the sign-ins of the browsers behind the same address.
static MINI_PROGRAMS: Lazy<PerMinute<IpAddr>> = Lazy::new(|| PerMinute::new(PER_MINUTE));

/// Long `return_to`s kept in the store per client address and minute, and by the whole
/// process: each is a write that stays ten minutes, and `/login` needs no session. A person
/// opens a few tabs; past either bound the login cookie carries the `return_to` itself, as a
/// short one.
pub const KEPT_RETURNS_PER_MINUTE: u32 = 30;
pub const KEPT_RETURNS_PER_MINUTE_IN_ALL: u32 = 300;

static KEPT_RETURNS: Lazy<PerMinute<IpAddr>> =
    Lazy::new(|| PerMinute::new(KEPT_RETURNS_PER_MINUTE));
static KEPT_RETURNS_IN_ALL: Lazy<PerMinute<()>> =
    Lazy::new(|| PerMinute::new(KEPT_RETURNS_PER_MINUTE_IN_ALL));

/// May a login this client starts keep its long `return_to` in the store?
pub fn allow_kept_return(client: Option<IpAddr>) -> bool {
    let by_client = client.is_none_or(|ip| KEPT_RETURNS.allow(&key(ip)));
    by_client && KEPT_RETURNS_IN_ALL.allow(&())
}

/// May this client make another callback now?
pub fn allow(client: Option<IpAddr>) -> bool {
    let Some(ip) = client else {
        return true;
    };
    LIMITER.allow(&key(ip))
}

/// May this client exchange another mini-program code now?
pub fn allow_miniprogram(client: Option<IpAddr>) -> bool {
    let Some(ip) = client else {
        return true;
    };
    MINI_PROGRAMS.allow(&key(ip))
}

/// One IPv6 host holds a whole /64: limiting single addresses would limit nothing.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_host_is_its_64_and_a_mapped_v4_is_the_v4() {
        let k = |s: &str| key(s.parse().unwrap()).to_string();
        assert_eq!(k("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(k("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::");
        assert_eq!(k("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(k("10.0.0.1"), "10.0.0.1");
    }
}

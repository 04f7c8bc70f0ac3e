//! `ngx_http_access_module`: the first `allow`/`deny` rule that matches the client decides;
//! `limit_except` swaps in its own rules for the methods it does not list.

use crate::parse::model::{LocConf, Net};
use crate::vars::Ctx;

pub(super) fn denied(conf: &LocConf, cx: &Ctx<'_>) -> bool {
    let rules = match &conf.limit_except {
        Some(le) if !le.methods.contains(&cx.st.method) => &le.access,
        _ => &conf.settings.access,
    };
    if rules.is_empty() {
        return false;
    }
    let ip: Option<std::net::IpAddr> = cx.req.remote_addr.parse().ok();
    // An IPv4-mapped IPv6 client is matched against the IPv4 rules, as nginx does.
    let ip = match ip {
        Some(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(std::net::IpAddr::V4(v4)),
            None => Some(std::net::IpAddr::V6(v6)),
        },
        other => other,
    };
    for rule in rules.iter() {
        let hit = match (rule.net, ip) {
            (Net::All, _) => true,
            (Net::V4 { addr, mask }, Some(std::net::IpAddr::V4(a))) => u32::from(a) & mask == addr,
            (Net::V6 { addr, mask }, Some(std::net::IpAddr::V6(a))) => u128::from(a) & mask == addr,
            _ => false,
        };
        if hit {
            return rule.deny;
        }
    }
    false
}

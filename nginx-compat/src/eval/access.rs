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
    for rule in rules.iter() {
        let hit = match ip {
            Some(ip) => rule.net.contains(ip),
            None => rule.net == Net::All,
        };
        if hit {
            return rule.deny;
        }
    }
    false
}

//! The proxy module's directives and `map`, read as nginx reads them.

use super::directives::{args, nargs, no_block, regex, template};
use super::model::{Geo, Map, Net, PassKind, PassTarget, ProxyPass, RedirectPattern, RedirectRule};
use super::{Directive, ParseError};
use crate::vars::Template;

/// `proxy_pass URL` as `ngx_http_proxy_pass` reads it. `uri_allowed` is false in regex and
/// named locations, where nginx refuses a URI part.
pub(super) fn proxy_pass(d: &Directive, uri_allowed: bool) -> Result<ProxyPass, ParseError> {
    no_block(d)?;
    nargs(d, |n| n == 1)?;
    let url = d.args[0].text.clone();
    let t = template(d, &url)?;
    if t.literal().is_none() {
        return Ok(ProxyPass {
            url,
            kind: PassKind::Dynamic(t),
            pos: d.pos.clone(),
        });
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://qyapi.weixin.qq.com") {
        return Err(d.pos.error(
            "https upstreams are not supported by the gateway; for WeCom's API, call the \
             gateway's qyapi endpoint instead (`[server] qyapi_listen`): it adds the access \
             token and refreshes it",
        ));
    }
    if lower.starts_with("https://") {
        return Err(d
            .pos
            .error("https upstreams are not supported by the gateway: it speaks plain HTTP to its upstreams; proxy_pass to an http:// address (for a TLS-only service, a local proxy that speaks TLS to it)"));
    }
    if !lower.starts_with("http://") {
        return Err(d.pos.error("invalid URL prefix"));
    }
    if lower.starts_with("http://unix:") {
        return Err(d.pos.error(
            "a Unix socket upstream is not supported by the gateway: it connects to TCP \
             addresses; have the application listen on one (gunicorn -b 127.0.0.1:8000, \
             uwsgi --http 127.0.0.1:8000) and proxy_pass http://127.0.0.1:PORT",
        ));
    }
    let target = parse_target(&url[7..]).map_err(|m| {
        // An address with credentials is not repeated: they are a secret.
        let shown = match url[7..].split_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url[7..].to_owned(),
        };
        d.pos.error(format!("{m} in upstream \"{shown}\""))
    })?;
    if !target.uri.is_empty() && !uri_allowed {
        return Err(d.pos.error(
            "\"proxy_pass\" cannot have URI part in location given by regular expression, \
             or inside named location, or inside \"if\" statement, or inside \
             \"limit_except\" block",
        ));
    }
    Ok(ProxyPass {
        url,
        kind: PassKind::Static(target),
        pos: d.pos.clone(),
    })
}

/// `ngx_parse_url` of what follows `http://`: `host[:port][/uri]` (a `?` right after the
/// authority starts the URI as `/?...`).
pub fn parse_target(rest: &str) -> Result<PassTarget, &'static str> {
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, uri) = rest.split_at(end);
    let mut uri = uri.as_bytes().to_vec();
    if uri.first() == Some(&b'?') {
        uri.insert(0, b'/');
    }
    if authority.is_empty() {
        return Err("no host");
    }
    // nginx: "invalid port in upstream". The password would also end up in names and logs.
    if authority.contains('@') {
        return Err("user:password@ in the address (nginx refuses it too): send credentials with proxy_set_header Authorization");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6.find(']').ok_or("invalid IPv6 address")?;
        let after = &v6[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("invalid host"),
        };
        (&authority[..close + 2], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    let port_num = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or("invalid port")?,
        None => 80,
    };
    let host_header = if port_num == 80 {
        host.to_owned()
    } else {
        format!("{host}:{}", port.unwrap_or("80"))
    };
    Ok(PassTarget {
        authority: authority.to_owned(),
        host_header,
        port: port.unwrap_or("80").to_owned(),
        uri,
    })
}

/// One `proxy_redirect` rule (not `off`; `default` is a rule of its own).
pub(super) fn redirect_rule(d: &Directive) -> Result<RedirectRule, ParseError> {
    let a = args(d);
    if a.len() == 1 {
        return Ok(RedirectRule {
            pattern: RedirectPattern::Default,
            replacement: Template::default(),
        });
    }
    let pattern = if let Some(re) = a[0].strip_prefix("~*") {
        RedirectPattern::Regex(regex(d, re, true)?)
    } else if let Some(re) = a[0].strip_prefix('~') {
        RedirectPattern::Regex(regex(d, re, false)?)
    } else {
        RedirectPattern::Prefix(template(d, a[0])?)
    };
    Ok(RedirectRule {
        pattern,
        replacement: template(d, a[1])?,
    })
}

/// `map $source $name { key value; ... }`.
/// `geo [$address] $name { default V; NET V; delete NET; proxy NET; proxy_recursive;
/// volatile; }`, read as `ngx_http_geo_block` reads it: a later line for the same network
/// replaces the earlier (nginx warns "duplicate network"), `default` is `0.0.0.0/0` and
/// `::/0` at once, a network's low bits are dropped. `ranges` is refused (its own syntax).
pub(super) fn geo(d: &Directive) -> Result<Map, ParseError> {
    use std::collections::BTreeMap;
    nargs(d, |n| n == 1 || n == 2)?;
    let Some(block) = &d.block else {
        return Err(d.pos.error("directive \"geo\" has no opening \"{\""));
    };
    let a = args(d);
    let var = |s: &str| {
        s.strip_prefix('$')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| d.pos.error(format!("invalid variable name \"{s}\"")))
    };
    let name = var(a[a.len() - 1])?;
    let source = match a.as_slice() {
        [src, _] => {
            var(src)?;
            template(d, src)?
        }
        _ => template(d, "$remote_addr")?,
    };
    // Keyed by prefix length, so that the longest is looked up first.
    let mut v4: BTreeMap<u32, std::collections::HashMap<u32, Vec<u8>>> = BTreeMap::new();
    let mut v6: BTreeMap<u32, std::collections::HashMap<u128, Vec<u8>>> = BTreeMap::new();
    let mut geo = Geo::default();
    let mut volatile = false;
    let mut put = |net: Net, value: Option<Vec<u8>>| match net {
        Net::V4 { addr, mask } => {
            let nets = v4.entry(mask.count_ones()).or_default();
            match value {
                Some(v) => drop(nets.insert(addr, v)),
                None => drop(nets.remove(&addr)),
            }
        }
        Net::V6 { addr, mask } => {
            let nets = v6.entry(mask.count_ones()).or_default();
            match value {
                Some(v) => drop(nets.insert(addr, v)),
                None => drop(nets.remove(&addr)),
            }
        }
        Net::All => {}
    };
    for e in block {
        let ea: Vec<&str> = e.args.iter().map(|a| a.text.as_str()).collect();
        match (e.name.as_str(), ea.as_slice()) {
            ("ranges", []) => {
                return Err(e.pos.error(
                    "geo ranges are not supported by the gateway: write the networks in CIDR \
                     notation (10.0.0.0/8)",
                ))
            }
            ("proxy_recursive", []) => geo.proxy_recursive = true,
            ("volatile", []) => volatile = true,
            ("default", [v]) => {
                put(Net::V4 { addr: 0, mask: 0 }, Some(v.as_bytes().to_vec()));
                put(Net::V6 { addr: 0, mask: 0 }, Some(v.as_bytes().to_vec()));
            }
            ("delete", [net]) => put(geo_net(e, net)?, None),
            ("proxy", [net]) => geo.proxies.push(geo_net(e, net)?),
            (net, [v]) => put(geo_net(e, net)?, Some(v.as_bytes().to_vec())),
            _ => return Err(e.pos.error("invalid number of the geo parameters")),
        }
    }
    let mask4 = |bits: u32| {
        if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        }
    };
    let mask6 = |bits: u32| {
        if bits == 0 {
            0
        } else {
            u128::MAX << (128 - bits)
        }
    };
    geo.v4 = v4.into_iter().rev().map(|(b, n)| (mask4(b), n)).collect();
    geo.v6 = v6.into_iter().rev().map(|(b, n)| (mask6(b), n)).collect();
    Ok(Map {
        volatile,
        geo: Some(std::sync::Arc::new(geo)),
        ..empty_map(source, &name)
    })
}

/// A `map` (or `geo`) of `name` over `source` with nothing in it yet.
fn empty_map(source: Template, name: &str) -> Map {
    Map {
        source,
        name: name.to_ascii_lowercase(),
        exact: std::collections::HashMap::new(),
        regex: Vec::new(),
        hostnames: false,
        wild_head: Vec::new(),
        wild_tail: Vec::new(),
        default: Template::default(),
        volatile: false,
        geo: None,
    }
}

/// A network of a `geo` block (`ngx_http_geo_cidr_value`): an address or CIDR;
/// `255.255.255.255` is the one address a bad source is read as.
fn geo_net(d: &Directive, net: &str) -> Result<Net, ParseError> {
    super::directives::net(d, net).map_err(|_| d.pos.error(format!("invalid network \"{net}\"")))
}

pub(super) fn map(d: &Directive) -> Result<Map, ParseError> {
    nargs(d, |n| n == 2)?;
    let Some(block) = &d.block else {
        return Err(d.pos.error("directive \"map\" has no opening \"{\""));
    };
    let a = args(d);
    let name = a[1]
        .strip_prefix('$')
        .filter(|n| !n.is_empty())
        .ok_or_else(|| d.pos.error(format!("invalid variable name \"{}\"", a[1])))?;
    let mut m = empty_map(template(d, a[0])?, name);
    let mut has_default = false;
    for e in block {
        let key = e.name.as_str();
        if e.args.is_empty() && key == "volatile" {
            m.volatile = true;
            continue;
        }
        if e.args.is_empty() && key == "hostnames" {
            m.hostnames = true;
            continue;
        }
        if e.args.len() != 1 || e.block.is_some() {
            return Err(e.pos.error("invalid number of the map parameters"));
        }
        let value = template(e, &e.args[0].text)?;
        if key == "default" {
            if has_default {
                return Err(e.pos.error("duplicate default map parameter"));
            }
            has_default = true;
            m.default = value;
        } else if let Some(re) = key.strip_prefix("~*") {
            m.regex.push((regex(e, re, true)?, value));
        } else if let Some(re) = key.strip_prefix('~') {
            m.regex.push((regex(e, re, false)?, value));
        } else {
            let key = key.strip_prefix('\\').unwrap_or(key);
            let low = key.as_bytes().to_ascii_lowercase();
            let conflict = || e.pos.error(format!("conflicting parameter \"{key}\""));
            // ngx_hash_add_key with NGX_HASH_WILDCARD_KEY, for the keys after `hostnames`.
            let wild =
                m.hostnames && low.contains(&b'*') || m.hostnames && low.first() == Some(&b'.');
            if !wild {
                if m.exact.contains_key(&low) {
                    return Err(conflict());
                }
                m.exact.insert(low, value);
                continue;
            }
            let invalid = || {
                e.pos
                    .error(format!("invalid hostname or wildcard \"{key}\""))
            };
            let (list, part) = if let Some(rest) = low.strip_prefix(b"*.") {
                (&mut m.wild_head, [b".", rest].concat())
            } else if low.first() == Some(&b'.') {
                // `.example.com`: `example.com` itself too.
                let bare = low[1..].to_vec();
                if bare.is_empty() || m.exact.contains_key(&bare) {
                    return Err(if bare.is_empty() {
                        invalid()
                    } else {
                        conflict()
                    });
                }
                m.exact.insert(bare, value.clone());
                (&mut m.wild_head, low.clone())
            } else if let Some(rest) = low.strip_suffix(b".*") {
                (&mut m.wild_tail, [rest, b"."].concat())
            } else {
                return Err(invalid());
            };
            if part.len() < 2 || part.contains(&b'*') || part.windows(2).any(|w| w == b"..") {
                return Err(invalid());
            }
            if list.iter().any(|(p, _)| *p == part) {
                return Err(conflict());
            }
            list.push((part, value));
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_pass_targets_split_like_ngx_parse_url() {
        let t = parse_target("127.0.0.1:8080/api/").unwrap();
        assert_eq!(
            (t.host_header.as_str(), t.port.as_str(), &t.uri[..]),
            ("127.0.0.1:8080", "8080", &b"/api/"[..])
        );
        let t = parse_target("backend").unwrap();
        assert_eq!((t.host_header.as_str(), t.port.as_str()), ("backend", "80"));
        assert!(t.uri.is_empty());
        let t = parse_target("b:80?x").unwrap();
        assert_eq!((t.host_header.as_str(), &t.uri[..]), ("b", &b"/?x"[..]));
        assert!(parse_target(":80").is_err());
        assert!(parse_target("h:0").is_err());
        // Credentials in the address: nginx refuses them ("invalid port in upstream").
        assert!(parse_target("user:secret@127.0.0.1:9000/")
            .unwrap_err()
            .contains("proxy_set_header Authorization"));
    }
}

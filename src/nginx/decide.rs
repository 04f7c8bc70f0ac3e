//! The rule set's answer, translated into what the proxy does next. Pure: reads the file
//! system only through [`DiskFs`] as nginx's content phase would.

use std::sync::Arc;

use nginx_compat::eval::NoFiles;
use nginx_compat::{Action, FileSystem, LocRef, Proxy, Request};

use super::DiskFs;
use crate::config::model::Upstream;
use crate::config::rules::Rules;

pub enum Decision {
    /// Continue with `[[routes]]` entry `index`; `target` is the request target to send when
    /// a rewrite changed it.
    Route {
        index: usize,
        target: Option<Vec<u8>>,
    },
    /// Nothing matched and no nginx file serves files: the gateway's own 404.
    NoRoute,
    /// A location of the nginx file with `proxy_pass`.
    Upstream {
        proxy: Box<Proxy>,
        upstream: Arc<Upstream>,
    },
    /// An answer made without an upstream (also a file, or a closed connection).
    Answer(Box<Action>),
}

/// Evaluates the rules for one request.
pub fn decide(rules: &Rules, req: &Request) -> Decision {
    let disk;
    let fs: &dyn FileSystem = match &rules.static_base {
        Some(base) => {
            disk = DiskFs { base };
            &disk
        }
        None => &NoFiles,
    };
    classify(rules, req, rules.server.handle(req, fs), fs)
}

/// What an [`Action`] of the rule set means for the gateway. Also used for the actions that
/// replace an upstream's answer (an `error_page`).
pub fn classify(rules: &Rules, req: &Request, action: Action, fs: &dyn FileSystem) -> Decision {
    match action {
        Action::Proxy(p) => {
            if let Some(index) = rules.route_of(&p.state.loc) {
                let target = (p.target != req.uri).then(|| p.target.clone());
                return Decision::Route { index, target };
            }
            match rules.upstream(&p.authority) {
                Some(up) => Decision::Upstream {
                    proxy: p,
                    upstream: up.clone(),
                },
                // A proxy_pass with variables naming no configured upstream: nginx (without a
                // resolver) finalizes with 502, so its error_page applies.
                None => Decision::Answer(Box::new(rules.server.upstream_failed(req, &p, 502, fs))),
            }
        }
        Action::Respond(r)
            if rules.static_base.is_none()
                && r.state.loc == LocRef::default()
                && matches!(r.status, 403..=405) =>
        {
            Decision::NoRoute
        }
        other => Decision::Answer(Box::new(other)),
    }
}

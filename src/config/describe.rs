//! What `check` prints: the route table, then each protected area with the locations that fall
//! inside it (SPEC section 5, step 6). A login route protects every path its location covers,
//! whichever location serves it, so a public route or an nginx location inside an area needs
//! that area's login; `check` shows where that happens.

use nginx_compat::{LocConf, Location, LocationSet, Modifier};

use super::model::Config;

/// A location as `check` names it.
struct Listed<'a> {
    location: &'a Location,
    /// `[[routes]][N]` or `file:line`.
    origin: String,
    /// The `[[routes]]` index, for routes.
    route: Option<usize>,
}

impl Config {
    /// The route table and the protected areas, as `check` prints them.
    pub fn describe_routes(&self) -> String {
        let mut out = String::new();
        for (i, route) in self.routes.routes.iter().enumerate() {
            let login = match &route.login {
                Some(a) => format!("login={}", a.name),
                // A public route inside an area needs the area's login all the same.
                None => {
                    let around: Vec<String> = self
                        .areas_around(i)
                        .into_iter()
                        .map(|(how, area, app)| format!("{how} {area}: login={app}"))
                        .collect();
                    match around.is_empty() {
                        true => "public".to_owned(),
                        false => format!("public, {}", around.join("; ")),
                    }
                }
            };
            let allow = route
                .allow
                .as_ref()
                .map_or(String::new(), |a| format!(" allow: {}", a.describe()));
            out.push_str(&format!(
                "{:<32} -> {:<12} {} external_contact={:?}{allow}\n",
                route.location,
                route
                    .upstream
                    .as_ref()
                    .map_or("(area only)", |u| u.name.as_str()),
                login,
                format!("{:?}", route.external_contact).to_lowercase()
            ));
        }
        out.push_str(&self.describe_included());
        out.push_str(&self.describe_areas());
        if let Some(rules) = self.rules.as_deref().filter(|r| !r.noted.is_empty()) {
            out.push_str("\nloaded, with no effect on what the gateway does:\n");
            for line in &rules.noted {
                out.push_str(&format!("  {line}\n"));
            }
        }
        out
    }

    /// The locations of the included nginx files, nested ones too, each with where it is and
    /// what serves it.
    fn describe_included(&self) -> String {
        let mut out = String::new();
        for l in self.locations().iter().filter(|l| l.route.is_none()) {
            if out.is_empty() {
                out.push_str("\nlocations of the included nginx files:\n");
            }
            out.push_str(&format!("  {:<32} {}\n", l.location.to_string(), l.origin));
        }
        out
    }

    fn describe_areas(&self) -> String {
        let listed = self.locations();
        let mut out = String::new();
        for (area, &index) in self.routes.areas.iter() {
            let route = &self.routes.routes[index];
            let app = route.login.as_ref().map_or("", |a| a.name.as_str());
            if out.is_empty() {
                out.push_str(
                    "\nprotected areas (their login applies whichever location serves the path):\n",
                );
            }
            out.push_str(&format!(
                "  {area}  login={app} external_contact={}  [[routes]][{}]\n",
                format!("{:?}", route.external_contact).to_lowercase(),
                index + 1
            ));
            let mut any = false;
            for l in &listed {
                if l.route == Some(index) {
                    continue;
                }
                if let Some(how) = relation(area, l.location) {
                    any = true;
                    out.push_str(&format!(
                        "    {how:<12} {:<32} {}\n",
                        l.location.to_string(),
                        l.origin
                    ));
                    // Another route's location (a regex wins over a prefix, as in nginx): the
                    // requests it takes are judged by its `allow`, not this area's.
                    if let Some(other) = l.route.map(|i| &self.routes.routes[i]) {
                        let rule = |r: &super::model::Route| {
                            r.allow
                                .as_ref()
                                .map_or("everyone signed in".to_owned(), |a| a.describe())
                        };
                        let app = |r: &super::model::Route| {
                            r.login.as_ref().map(|a| a.name.clone()).unwrap_or_default()
                        };
                        // Its login decides too: another app's session (another corp's, for a
                        // service provider's app) enters the paths it takes.
                        if other.login.is_some() && app(other) != app(route) {
                            out.push_str(&format!(
                                "      ! the paths it takes sign in with app {}, not this area's {}\n",
                                app(other),
                                app(route)
                            ));
                        }
                        if other.login.is_some() && rule(other) != rule(route) {
                            out.push_str(&format!(
                                "      ! the paths it takes get its allow ({}), not this area's ({})\n",
                                rule(other),
                                rule(route)
                            ));
                        }
                    }
                }
            }
            if !any {
                out.push_str("    (no other location inside)\n");
            }
        }
        out
    }

    /// The protected areas a public route lies in, then those it may overlap: how, the area's
    /// location and its app. Which one a path falls under is nginx's order's to say (a regex
    /// area before a prefix one): each is named.
    fn areas_around(&self, route: usize) -> Vec<(&'static str, String, String)> {
        let Some((location, _)) = self.routes.matcher.iter().find(|(_, &i)| i == route) else {
            return Vec::new();
        };
        let mut found: Vec<(&'static str, String, String)> = self
            .routes
            .areas
            .iter()
            .filter_map(|(area, &index)| {
                let how = relation(area, location)?;
                let app = self.routes.routes[index].login.as_ref()?.name.clone();
                Some((how, area.to_string(), app))
            })
            .collect();
        found.sort_by_key(|(how, _, _)| *how != "inside");
        found
    }

    /// Every location: the routes, then those of the included nginx files, nested ones too.
    fn locations(&self) -> Vec<Listed<'_>> {
        let mut out: Vec<Listed<'_>> = self
            .routes
            .matcher
            .iter()
            .map(|(location, &i)| Listed {
                location,
                origin: format!("[[routes]][{}]", i + 1),
                route: Some(i),
            })
            .collect();
        if let Some(rules) = &self.rules {
            let nginx = rules.server.locations().iter().skip(rules.routes);
            for (location, conf) in nginx {
                nested(location, conf, &mut out);
            }
        }
        out
    }
}

fn nested<'a>(location: &'a Location, conf: &'a LocConf, out: &mut Vec<Listed<'a>>) {
    let file = conf.pos.file.rsplit('/').next().unwrap_or_default();
    let answers = conf
        .stmts
        .iter()
        .any(|s| matches!(s, nginx_compat::parse::model::Stmt::Return { .. }));
    let rewrites = conf
        .stmts
        .iter()
        .any(|s| matches!(s, nginx_compat::parse::model::Stmt::Rewrite(_)));
    let what = match &conf.proxy_pass {
        Some(pass) => format!("proxy_pass {}", pass.url),
        None if answers => "return".to_owned(),
        None if rewrites && conf.try_files.is_none() => "rewrite (else static files)".to_owned(),
        None => "static files".to_owned(),
    };
    out.push(Listed {
        location,
        origin: format!("{file}:{} {what}", conf.pos.line),
        route: None,
    });
    let children: &LocationSet<LocConf> = &conf.children;
    for (l, c) in children.iter() {
        nested(l, c, out);
    }
}

/// How location `l` meets the protected `area`: `inside` when every path it serves is in the
/// area, `may overlap` when some may be (a regex cannot be compared in general); nothing when
/// they are apart or when `l` merely contains the area (as `/` contains every area).
fn relation(area: &Location, l: &Location) -> Option<&'static str> {
    use Modifier::*;
    let (a, p) = (area.pattern(), l.pattern());
    match (area.modifier(), l.modifier()) {
        (Prefix | PrefixNoRegex, Prefix | PrefixNoRegex | Exact) => {
            p.starts_with(a).then_some("inside")
        }
        (Prefix | PrefixNoRegex, Regex | RegexCaseless) => {
            (!diverges(a, l)).then_some("may overlap")
        }
        (Exact, Exact) => (p == a).then_some("inside"),
        (Exact, Prefix | PrefixNoRegex) => None,
        (Exact, Regex | RegexCaseless) => l
            .regex()
            .is_some_and(|r| r.is_match(a.as_bytes()).unwrap_or(true))
            .then_some("inside"),
        (Regex | RegexCaseless, Exact) => area
            .regex()
            .is_some_and(|r| r.is_match(p.as_bytes()).unwrap_or(true))
            .then_some("inside"),
        (Regex | RegexCaseless, Prefix | PrefixNoRegex) => area
            .regex()
            .is_some_and(|r| r.is_match(p.as_bytes()).unwrap_or(true))
            .then_some("may overlap"),
        (Regex | RegexCaseless, Regex | RegexCaseless) => Some("may overlap"),
    }
}

/// An anchored regex whose literal start (`^/api/...`) leaves the prefix `a` at once cannot
/// match a path under it.
fn diverges(a: &str, regex: &Location) -> bool {
    let Some(rest) = regex.pattern().strip_prefix('^') else {
        return false;
    };
    let literal: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-'))
        .collect();
    // A quantifier after the last literal character makes it optional.
    let quantified = rest[literal.len()..].starts_with(['?', '*', '{']);
    let literal = if quantified {
        &literal[..literal.len().saturating_sub(1)]
    } else {
        &literal[..]
    };
    let (a, literal) = if regex.modifier() == Modifier::RegexCaseless {
        (a.to_ascii_lowercase(), literal.to_ascii_lowercase())
    } else {
        (a.to_owned(), literal.to_owned())
    };
    !(a.starts_with(&literal) || literal.starts_with(&a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relations_of_locations_to_an_area() {
        let l = |s: &str| Location::parse(s).unwrap();
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("/sidebar/", "/sidebar/api/", Some("inside")),
            ("/sidebar/", "= /sidebar/x", Some("inside")),
            ("/sidebar/", "/side", None),
            ("/sidebar/", "/", None),
            ("/sidebar/", "~* \\.js$", Some("may overlap")),
            ("/sidebar/", "~ ^/api/", None),
            ("/sidebar/", "~* ^/SIDEBAR/x", Some("may overlap")),
            ("/sidebar/", "~ ^/side", Some("may overlap")),
            ("/sidebar/", "~ ^/sidebarx?/", Some("may overlap")),
            ("= /p", "~ ^/p$", Some("inside")),
            ("= /p", "/", None),
            ("~ ^/api/", "= /api/x", Some("inside")),
            ("~ ^/api/", "/api/", Some("may overlap")),
            ("~ ^/api/", "/", None),
        ];
        for (area, other, want) in cases {
            assert_eq!(relation(&l(area), &l(other)), *want, "{area} vs {other}");
        }
    }
}

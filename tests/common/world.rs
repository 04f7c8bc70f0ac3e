//! One test world: the emulator as WeCom and WeChat, upstreams as the CRM, the real gateway
//! binary (one or more instances, every listener on port 0) in front, and a Redis when the
//! store is shared. A test says what its world has and reads like its scenario:
//!
//! ```ignore
//! let w = World::new()
//!     .app(App::wecom("crm").contact())
//!     .app(App::mp("mp"))
//!     .qyapi()
//!     .redis(3)
//!     .routes(SIDEBAR_ROUTES)
//!     .start()
//!     .await;
//! ```
//!
//! The apps' ids and secrets come from the emulator's scenario ([`Ids`], in `apps.rs`, the
//! one place that writes `[apps]`): nothing copies them.

use std::time::Duration;

use emulator::{Emulator, Scenario};
use serde_json::{json, Value};

use super::redis_server::RedisServer;
use super::upstream::{self, Upstream};
use super::{client, Gateway, TempDir};

pub use super::apps::*;

/// The routes most login tests need: a protected area, a required-contact area, the WeChat
/// area, the rest public.
pub const SIDEBAR_ROUTES: &str = r#"
[[routes]]
location = "/sidebar/"
upstream = "crm"
login = "crm"
external_contact = "optional"

[[routes]]
location = "/customer/"
upstream = "crm"
login = "crm"
external_contact = "required"

[[routes]]
location = "/mp/"
upstream = "crm"
login = "mp"

[[routes]]
location = "/"
upstream = "crm"
"#;

/// WeCom app `crm` (with the contact secret) and Official Account `mp` behind
/// [`SIDEBAR_ROUTES`], with the test's session secrets: the world of most login tests.
pub fn wecom_and_wechat() -> Builder {
    World::new()
        .session("")
        .app(App::wecom("crm").contact())
        .app(App::mp("mp"))
        .routes(SIDEBAR_ROUTES)
}

/// The one public route to `crm`.
pub const PUBLIC_ROUTE: &str = "\n[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n";

/// Where the CRM (upstream `crm`) is.
enum Crm {
    Echo,
    At(String),
    Server(Upstream),
}

/// What a world has, before it starts.
pub struct Builder {
    scenario: Scenario,
    apps: Vec<App>,
    session: Option<String>,
    server: Vec<String>,
    crm: Crm,
    crm_keys: String,
    /// A server listed before the CRM in `[upstreams.crm] servers` (the CRM on two servers).
    crm_first: Option<String>,
    routes: String,
    rest: Vec<String>,
    files: Vec<(String, String)>,
    redis: bool,
    store: Option<String>,
    instances: usize,
    public_port: Option<u16>,
    one_origin: bool,
    https: bool,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

/// A world, running. Everything stops when it is dropped.
pub struct World {
    pub emu: Emulator,
    /// The ids of the emulator's scenario.
    pub ids: Ids,
    /// Upstream `crm`: the echo upstream or the test's own server ([`Builder::crm`]); with
    /// [`Builder::crm_at`] an echo that no route uses.
    pub up: Upstream,
    /// The gateway instances ([`World::gw`] is the first).
    pub gateways: Vec<Gateway>,
    pub redis: Option<RedisServer>,
    /// Files the config refers to (nginx includes), kept as long as the gateway runs.
    pub files: TempDir,
    pub http: reqwest::Client,
}

impl World {
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Builder {
        Builder {
            scenario: Scenario::default(),
            apps: Vec::new(),
            session: None,
            server: Vec::new(),
            crm: Crm::Echo,
            crm_keys: String::new(),
            crm_first: None,
            routes: String::new(),
            rest: Vec::new(),
            files: Vec::new(),
            redis: false,
            store: None,
            instances: 1,
            public_port: None,
            one_origin: false,
            https: false,
            env: Vec::new(),
            args: Vec::new(),
        }
    }
}

impl Builder {
    /// The emulated corp (the default scenario otherwise).
    pub fn scenario(mut self, s: Scenario) -> Builder {
        self.scenario = s;
        self
    }

    pub fn app(mut self, app: App) -> Builder {
        self.apps.push(app);
        self
    }

    pub fn apps(mut self, apps: Vec<App>) -> Builder {
        self.apps.extend(apps);
        self
    }

    /// `[session]` with the test's secrets and `lines`.
    pub fn session(mut self, lines: &str) -> Builder {
        self.session = Some(lines.into());
        self
    }

    /// The internal qyapi endpoint, on a port of its own.
    pub fn qyapi(self) -> Builder {
        self.server("qyapi_listen = \"127.0.0.1:0\"")
    }

    /// More lines of `[server]`.
    pub fn server(mut self, lines: &str) -> Builder {
        self.server.push(lines.into());
        self
    }

    /// Upstream `crm` is `url` (a server the test runs) instead of an echo upstream.
    pub fn crm_at(mut self, url: &str) -> Builder {
        self.crm = Crm::At(url.into());
        self
    }

    /// Upstream `crm` is this server, which the world keeps running.
    pub fn crm(mut self, server: Upstream) -> Builder {
        self.crm = Crm::Server(server);
        self
    }

    /// `[upstreams.crm]` is two servers: `url` first, then the CRM.
    pub fn crm_after(mut self, url: &str) -> Builder {
        self.crm_first = Some(url.to_owned());
        self
    }

    /// More keys of `[upstreams.crm]` (`read_timeout = "300ms"`).
    pub fn crm_keys(mut self, lines: &str) -> Builder {
        self.crm_keys.push_str(lines);
        self.crm_keys.push('\n');
        self
    }

    /// The `[[routes]]` (the public [`PUBLIC_ROUTE`] when none are given).
    pub fn routes(mut self, routes: &str) -> Builder {
        self.routes.push_str(routes);
        self
    }

    /// More config: `{emu}`, `{up}` and `{files}` stand for the emulator's and the CRM's base
    /// URLs and the directory of the world's files.
    pub fn toml(mut self, text: &str) -> Builder {
        self.rest.push(text.into());
        self
    }

    /// A file in the world's directory (`{files}`), with the same substitutions.
    pub fn file(mut self, name: &str, text: &str) -> Builder {
        self.files.push((name.into(), text.into()));
        self
    }

    /// Files in the world's directory, as [`Builder::file`].
    pub fn files(mut self, files: &[(&str, &str)]) -> Builder {
        for (name, text) in files {
            self = self.file(name, text);
        }
        self
    }

    /// `instances` gateways sharing one Redis (`[store] backend = "redis"`) that the world
    /// starts.
    pub fn redis(mut self, instances: usize) -> Builder {
        self.redis = true;
        self.instances = instances;
        self
    }

    /// Every instance's `public_url` is the first's, as behind one load balancer (otherwise
    /// each instance is its own origin).
    pub fn one_origin(mut self) -> Builder {
        self.one_origin = true;
        self
    }

    /// `instances` gateways on the same config (each its own directory and ports).
    pub fn instances(mut self, instances: usize) -> Builder {
        self.instances = instances;
        self
    }

    /// The `[store]` table, when not the Redis of [`Builder::redis`]; `{redis}` is that
    /// Redis's URL.
    pub fn store(mut self, table: &str) -> Builder {
        self.store = Some(table.into());
        self
    }

    /// Browsers reach the gateway through a proxy on `port` (nginx): `public_url` is there.
    pub fn public_port(mut self, port: u16) -> Builder {
        self.public_port = Some(port);
        self
    }

    /// `public_url` is https (a TLS terminator in front, as in production): cookies are
    /// `Secure`, login cookies `__Host-`. The test still talks plain HTTP to the gateway.
    pub fn https(mut self) -> Builder {
        self.https = true;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Builder {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Arguments of the binary before `run` (`--log-format json`).
    pub fn args(mut self, args: &[&str]) -> Builder {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub async fn start(self) -> World {
        let ids = Ids::of(&self.scenario);
        let emu = Emulator::start("127.0.0.1:0".parse().unwrap(), self.scenario)
            .await
            .expect("the emulator starts");
        let emu_url = emu.base_url();
        let (up, up_url) = match self.crm {
            Crm::Echo => {
                let up = upstream::echo("crm");
                let url = up.url();
                (up, url)
            }
            Crm::At(url) => (upstream::echo("unused"), url),
            Crm::Server(s) => {
                let url = s.url();
                (s, url)
            }
        };
        let redis = if self.redis {
            Some(
                tokio::task::spawn_blocking(RedisServer::start)
                    .await
                    .unwrap(),
            )
        } else {
            None
        };
        let files = TempDir::new("world-files");
        let subst = |s: &str| {
            s.replace("{emu}", &emu_url)
                .replace("{up}", &up_url)
                .replace("{files}", &files.path().display().to_string())
                .replace(
                    "{redis}",
                    &redis.as_ref().map(|r| r.url()).unwrap_or_default(),
                )
        };
        for (name, text) in &self.files {
            std::fs::write(files.path().join(name), subst(text)).unwrap();
        }

        let mut config = String::new();
        config += &self.server.join("\n");
        config.push('\n');
        if let Some(lines) = &self.session {
            config += &format!(
                "\n[session]\nsecret = \"{SESSION_SECRET}\"\nassertion_secret = \"{ASSERTION_SECRET}\"\n{lines}\n"
            );
        }
        let store = match (&self.store, self.redis) {
            (Some(t), _) => Some(t.clone()),
            (None, true) => Some(
                "[store]\nbackend = \"redis\"\nredis_url = \"{redis}\"\nkey_prefix = \"wgw:\"\n"
                    .to_owned(),
            ),
            (None, false) => None,
        };
        if let Some(store) = store {
            config += &format!("\n{}\n", subst(&store));
        }
        config += &format!("\n{}", apps_toml(&self.apps, &ids, &emu_url));
        let servers = match &self.crm_first {
            Some(first) => format!("servers = [{{ url = \"{first}\" }}, {{ url = \"{up_url}\" }}]"),
            None => format!("url = \"{up_url}\""),
        };
        config += &format!("\n[upstreams.crm]\n{servers}\n{}", self.crm_keys);
        for rest in &self.rest {
            config += &format!("\n{}\n", subst(rest));
        }
        let routes = if self.routes.is_empty() {
            PUBLIC_ROUTE
        } else {
            &self.routes
        };
        config += &subst(routes);

        let (env, args, https) = (self.env, self.args, self.https);
        let start = move |config: String, public: Option<u16>| {
            let (env, args) = (env.clone(), args.clone());
            move || {
                let mut server = super::server_table();
                if https {
                    server = server.replace("public_url = \"http://", "public_url = \"https://");
                }
                if let Some(p) = public {
                    server =
                        server.replace("127.0.0.1:0\"\nadmin", &format!("127.0.0.1:{p}\"\nadmin"));
                }
                let env: Vec<(&str, &str)> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                Gateway::start_config(&format!("{server}{config}"), &env, &args)
            }
        };
        let gw = tokio::task::spawn_blocking(start(config.clone(), self.public_port))
            .await
            .unwrap();
        let public = match (self.public_port, self.one_origin) {
            (Some(p), _) => Some(p),
            (None, true) => Some(gw.port),
            (None, false) => None,
        };
        let mut starting = Vec::new();
        for _ in 1..self.instances {
            starting.push(tokio::task::spawn_blocking(start(config.clone(), public)));
        }
        let mut gateways = vec![gw];
        for s in starting {
            gateways.push(s.await.unwrap());
        }
        World {
            emu,
            ids,
            up,
            gateways,
            redis,
            files,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(600)
                .build()
                .unwrap(),
        }
    }
}

impl World {
    /// The (first) gateway.
    pub fn gw(&self) -> &Gateway {
        &self.gateways[0]
    }

    /// A URL on the first instance's qyapi listener.
    pub fn qyapi(&self, path: &str) -> String {
        let port = self.gw().qyapi_port.expect("the world has .qyapi()");
        format!("http://127.0.0.1:{port}{path}")
    }

    pub fn emu(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url())
    }

    /// GET on the qyapi endpoint: the status and the JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.qyapi(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// A call to the emulator's control API that must succeed; its JSON answer.
    pub async fn control(&self, path: &str, body: Value) -> Value {
        let r = client()
            .post(self.emu(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    /// WeCom drops every token and ticket it issued.
    pub async fn expire_tokens(&self) {
        self.control("/_emulator/expire-tokens", Value::Null).await;
    }

    /// The next `count` calls to `api` answer `errcode`.
    pub async fn fault(&self, api: &str, errcode: i64, count: u32) {
        self.control(
            "/_emulator/faults",
            json!({"api": api, "errcode": errcode, "count": count}),
        )
        .await;
    }

    /// How many calls the emulator got for `api`.
    pub async fn calls(&self, api: &str) -> u64 {
        self.calls_by_errcode(api).await.0
    }

    /// `/_emulator/calls` for one API: (total, by errcode).
    pub async fn calls_by_errcode(&self, api: &str) -> (u64, Value) {
        super::emulator_calls(&self.emu(""), api).await
    }

    pub async fn gettokens(&self) -> u64 {
        self.calls("/cgi-bin/gettoken").await
    }

    /// Time passes for WeCom and every gateway alike: all clocks move forward by `by`.
    pub async fn advance(&self, by: &str) {
        self.control("/_emulator/advance", json!({ "by": by }))
            .await;
        for gw in &self.gateways {
            gw.advance(by).await;
        }
    }
}

/// The claims of `X-Gateway-Assertion`, verified with the test's secret.
pub fn claims(jwt: &str) -> Value {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_issuer(&["wecom-gateway"]);
    v.validate_aud = false;
    jsonwebtoken::decode::<Value>(
        jwt,
        &jsonwebtoken::DecodingKey::from_secret(ASSERTION_SECRET.as_bytes()),
        &v,
    )
    .expect("the assertion verifies")
    .claims
}

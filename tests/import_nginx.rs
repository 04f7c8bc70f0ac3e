//! `wecom-gateway import-nginx FILE`: TOML that `check` accepts, and every directive it cannot
//! honour reported as `FILE:LINE: directive 'x' is not supported`.

mod common;

use std::process::Command;

use common::{bin, TempDir};

fn import(conf: &str, dir: &TempDir) -> (i32, String, String) {
    let path = dir.path().join("site.conf");
    std::fs::write(&path, conf).unwrap();
    let out = Command::new(bin())
        .arg("import-nginx")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn check(toml: &str, dir: &TempDir) -> (bool, String) {
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `conf` imported without a refusal, the TOML accepted by `check`, and `check`'s listing.
fn imported_and_listed(conf: &str, dir: &TempDir) -> String {
    let (code, toml, stderr) = import(conf, dir);
    assert_eq!((code, stderr.as_str()), (0, ""), "{toml}");
    let (ok, err) = check(&toml, dir);
    assert!(ok, "{err}\n{toml}");
    let listing = Command::new(bin())
        .args(["check", "-c"])
        .arg(dir.path().join("gateway.toml"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&listing.stdout).into_owned()
}

/// Seed 004's complete example, as its users have it.
const SEED004: &str = "location / {
    root html/mobile;
    index index.html index.htm;
    try_files $uri $uri/ /index.html;
    index index.html index.htm;
    rewrite ^/login(.*) /#/login permanent;
}
";

#[test]
fn seed_004_imports_to_toml_that_check_accepts() {
    let dir = TempDir::new("import-seed");
    let (code, toml, stderr) = import(SEED004, &dir);
    assert_eq!((code, stderr.as_str()), (0, ""), "{toml}");
    assert!(
        toml.contains("[nginx]"),
        "static files need the include:\n{toml}"
    );
    let (ok, err) = check(&toml, &dir);
    assert!(ok, "{err}\n{toml}");
}

#[test]
fn proxy_locations_become_routes_and_rewrites_that_check_accepts() {
    let dir = TempDir::new("import-routes");
    let conf = "server {
  listen 80;
  server_name crm.example.com;
  rewrite ^/home/register(.*) /home#/register permanent;
  location /api/ {
    rewrite ^/api/v1/(.*)$ /api/$1 last;
    proxy_pass http://127.0.0.1:9000;
  }
  location / { proxy_pass http://127.0.0.1:9000; }
}
";
    let (code, toml, stderr) = import(conf, &dir);
    assert_eq!((code, stderr.as_str()), (0, ""), "{toml}");
    // The file as it is, so the CRM gets what nginx sent it (its Host, rewritten redirects,
    // the 1m body limit); the routes it could become are offered with those differences.
    assert!(toml.contains("\n[nginx]\ninclude = ["), "{toml}");
    assert!(
        toml.contains("# [[rewrite]]") && toml.contains("# [[routes]]"),
        "{toml}"
    );
    assert!(toml.contains("client's Host"), "{toml}");
    let (ok, err) = check(&toml, &dir);
    assert!(ok, "{err}\n{toml}");
    // The offered routes are a config that loads too.
    let (head, offered) = toml.split_once("# To use them").unwrap();
    let routes: String = head
        .lines()
        .filter(|l| !l.starts_with("[nginx]") && !l.starts_with("include = "))
        .chain(
            offered
                .lines()
                .skip(1)
                .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#'))),
        )
        .collect::<Vec<_>>()
        .join("\n");
    assert!(routes.contains("[[routes]]"), "{routes}");
    let (ok, err) = check(&routes, &dir);
    assert!(ok, "{err}\n{routes}");
}

/// Two ports of one host (RuoYi-Cloud's API and its file service): each gets its upstream,
/// and the TOML printed passes `check`.
#[test]
fn two_ports_of_one_host_become_two_upstreams() {
    let dir = TempDir::new("import-ports");
    let (code, toml, stderr) = import(
        "server { listen 80; server_name crm.example.com;
           location /prod-api/ { proxy_pass http://localhost:8080/; }
           location /file/ { proxy_pass http://localhost:9300/; }
           location /ws/ { proxy_pass http://localhost:9300/ws/; }
           location /old/ { proxy_pass http://localhost; } }
",
        &dir,
    );
    assert_eq!((code, stderr.as_str()), (0, ""), "{toml}");
    for addr in ["localhost:8080", "localhost:9300", "localhost"] {
        let line = format!("url = \"http://{addr}\"\n");
        assert_eq!(toml.matches(&line).count(), 1, "{addr}:\n{toml}");
    }
    let (ok, err) = check(&toml, &dir);
    assert!(ok, "{err}\n{toml}");
}

#[test]
fn unsupported_directives_are_listed_with_file_and_line() {
    let dir = TempDir::new("import-unsup");
    let conf = "server {\n  listen 80;\n  ssl_certificate crm.pem;\n  location / {\n    \
                proxy_cache crm;\n    add_header X-Took $upstream_header_time;\n    \
                proxy_pass http://127.0.0.1:9000/app/;\n  }\n}\n";
    let (code, toml, stderr) = import(conf, &dir);
    assert_eq!(code, 2);
    // A refused line is not a reason given for keeping the file.
    assert!(!toml.contains("ssl_certificate"), "{toml}");
    let file = dir.path().join("site.conf").display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{file}:3: directive 'ssl_certificate' is not supported (TLS ends in front of the gateway, at the load balancer or an nginx kept there: remove this line and set [server] public_url = \"https://...\")"),
            format!("{file}:5: directive 'proxy_cache' is not supported (the gateway keeps no cache of answers: keep the cache in a proxy or CDN in front, or remove the line and every request goes to the upstream)"),
            format!("{file}:6: directive 'add_header' is not supported (variable $upstream_header_time: not one the gateway provides, and no `map` or `set` read with this file defines it)"),
        ],
        "{stderr}"
    );
}

/// nginx stops at a file's first error; a migration wants every line it has to change at once:
/// each error and each unsupported directive, in the file's order, and what to do where there
/// is something (WeCom's API through the qyapi endpoint, an application on a TCP port).
#[test]
fn every_line_that_cannot_load_is_listed_in_one_run() {
    let dir = TempDir::new("import-all");
    let conf = "server {\n  listen 80;\n  \
                location /cgi-bin/ { proxy_pass https://qyapi.weixin.qq.com; }\n  \
                location /a/ { proxy_cache crm; proxy_pass http://127.0.0.1:9000; }\n  \
                location /py/ { proxy_pass http://unix:/run/gunicorn.sock:/; }\n  \
                location /x/ { proxy_pass https://crm.example.com; }\n  \
                location / { rewrite_log on; if_modified_since before; root html; }\n\
                }\n";
    let (code, _, stderr) = import(conf, &dir);
    assert_eq!(code, 2);
    let file = dir.path().join("site.conf").display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert!(lines[0].starts_with(&format!("{file}:3:")), "{stderr}");
    assert!(lines[0].contains("qyapi_listen"), "{stderr}");
    assert!(
        lines[1].starts_with(&format!("{file}:4: directive 'proxy_cache'")),
        "{stderr}"
    );
    assert!(lines[2].starts_with(&format!("{file}:5:")), "{stderr}");
    assert!(
        lines[2].contains("Unix socket") && lines[2].contains("127.0.0.1:PORT"),
        "{stderr}"
    );
    assert!(lines[3].starts_with(&format!("{file}:6:")), "{stderr}");
    assert!(
        lines[3].contains("https upstreams are not supported"),
        "{stderr}"
    );
    // Fixed, it loads: `rewrite_log` and `if_modified_since` are among what loads.
    let fixed = "server {\n  listen 80;\n  \
                 location /a/ { proxy_pass http://127.0.0.1:9000; }\n  \
                 location / { rewrite_log on; if_modified_since before; root html; }\n}\n";
    let (code, toml, stderr) = import(fixed, &dir);
    assert_eq!(code, 0, "{stderr}");
    let (ok, why) = check(&toml, &dir);
    assert!(ok, "{why}");
}

/// The usual pair (a redirect to https first, the site second): `import-nginx` says what to
/// do about it, as `check` does.
#[test]
fn the_redirect_and_site_pair_says_what_to_do() {
    let dir = TempDir::new("import-pair");
    let conf = "server {\n  listen 80;\n  server_name crm.example.com;\n  return 301 https://$host$request_uri;\n}\n\
                server {\n  listen 8443;\n  location / {\n    proxy_pass http://127.0.0.1:9000;\n  }\n}\n";
    let (code, _toml, stderr) = import(conf, &dir);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(":1: directive 'server' is not supported (it only redirects (to https)"),
        "{stderr}"
    );
    // Certbot's own block, after the site's, and an ACME redirect block: each called what it
    // is, and the site's own lines that cannot load listed in the same run.
    let conf = "server {\n  listen 8443;\n  limit_req zone=one;\n  location / {\n    proxy_pass http://127.0.0.1:9000;\n  }\n}\n\
                server {\n  if ($host = crm.example.com) {\n    return 301 https://$host$request_uri;\n  }\n  listen 80;\n  server_name crm.example.com;\n  return 404;\n}\n\
                server {\n  listen 80;\n  location /.well-known/acme-challenge/ { root /var/www/certbot; }\n  location / { return 301 https://$host$request_uri; }\n}\n";
    let (code, _toml, stderr) = import(conf, &dir);
    assert_eq!(code, 2);
    for line in [
        ":3: directive 'limit_req' is not supported",
        ":8: directive 'server' is not supported (it only redirects",
        ":16: directive 'server' is not supported (it only redirects",
    ] {
        assert!(stderr.contains(line), "{line}\n{stderr}");
    }
    // A catch-all default server that drops strangers is no redirect: not called one. It is
    // the site's host check, which needs the site's names.
    let conf = "server {\n  listen 80 default_server;\n  server_name _;\n  return 444;\n}\n\
                server {\n  listen 8443;\n  location / {\n    proxy_pass http://127.0.0.1:9000;\n  }\n}\n";
    let (code, _toml, stderr) = import(conf, &dir);
    assert_eq!(code, 2);
    assert!(!stderr.contains("only redirects"), "{stderr}");
    assert!(stderr.contains("give the site its server_name"), "{stderr}");
    let named = conf.replace(
        "listen 8443;",
        "listen 8443;\n  server_name crm.example.com;",
    );
    let (code, toml, stderr) = import(&named, &dir);
    assert_eq!((code, stderr.as_str()), (0, ""), "{toml}");
    let (ok, err) = check(&toml, &dir);
    assert!(ok, "{err}\n{toml}");
    // A catch-all sending strangers to the site's own host is that host check, answering with
    // its redirect; one sending them to https of whatever host came is the redirect to TLS.
    let to_site = named.replace(
        "return 444;",
        "return 301 http://crm.example.com$request_uri;",
    );
    let listing = imported_and_listed(&to_site, &dir);
    assert!(
        listing.contains(
            "is answered with its redirect (return 301 http://crm.example.com$request_uri)"
        ),
        "{listing}"
    );
    let rewrite = named.replace(
        "return 444;",
        "rewrite ^(.*) https://crm.example.com$1 permanent;",
    );
    let (code, toml, stderr) = import(&rewrite, &dir);
    assert_eq!((code, stderr.as_str()), (0, ""), "{toml}");
    let to_tls = named.replace("return 444;", "return 301 https://$host$request_uri;");
    let (code, _, stderr) = import(&to_tls, &dir);
    assert_eq!(code, 2);
    assert!(stderr.contains("it only redirects (to https)"), "{stderr}");
    // A block sending `www.` to the bare name loads, answering its names with its redirect;
    // one sending the site's own name to https of itself is the plain-HTTP half of a TLS pair.
    let www = format!(
        "{named}server {{\n  listen 80;\n  server_name www.crm.example.com;\n  \
         return 301 https://crm.example.com$request_uri;\n}}\n"
    );
    let listing = imported_and_listed(&www, &dir);
    assert!(
        listing.contains(
            "the server block of www.crm.example.com: answered with its redirect (return 301 \
             https://crm.example.com$request_uri)"
        ),
        "{listing}"
    );
    let tls_half = "server {\n  listen 80;\n  server_name crm.example.com;\n  \
                    return 301 https://crm.example.com$request_uri;\n}\n\
                    server {\n  listen 8443;\n  server_name crm.example.com;\n  \
                    location / {\n    proxy_pass http://127.0.0.1:9000;\n  }\n}\n";
    let (code, _, stderr) = import(tls_half, &dir);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(":1: directive 'server' is not supported (it only redirects (to https)"),
        "{stderr}"
    );
    for other_host in [
        "https://$server_name$request_uri",
        "http://crm.example.com:$server_port/",
    ] {
        let (code, _, stderr) = import(
            &named.replace("return 444;", &format!("return 301 {other_host};")),
            &dir,
        );
        assert_eq!(code, 2, "{other_host}");
        assert!(
            stderr.contains("it only redirects"),
            "{other_host}: {stderr}"
        );
    }
}

/// `upstream` blocks as CRM deployments write them (RuoYi-Vue-Plus's `ip_hash;`, tuning
/// advice's `keepalive 64;`, templates' `max_fails`/`fail_timeout`/`weight`, a name with `-`):
/// one server each, imported to `[upstreams.NAME]` once, loaded by `check` with those lines
/// listed as changing nothing. Several servers, `down` and `backup` are `servers = [...]`; what
/// nginx itself refuses, or the gateway cannot do with several servers, is refused.
#[test]
fn upstream_blocks_with_one_server_and_their_tuning_load() {
    let dir = TempDir::new("import-upstreams");
    let conf = "upstream server {\n  ip_hash;\n  server 127.0.0.1:8080 max_fails=3 fail_timeout=30s weight=1;\n  keepalive 64;\n}\n\
                upstream monitor-admin { server 127.0.0.1:9090; }\n\
                server {\n  listen 80;\n  location /prod-api/ { proxy_pass http://server/; }\n  \
                location /admin/ { proxy_pass http://monitor-admin/admin/; }\n}\n";
    let (code, toml, stderr) = import(conf, &dir);
    assert_eq!((code, stderr.as_str()), (0, ""), "{toml}");
    assert_eq!(toml.matches("[upstreams.").count(), 2, "{toml}");
    assert!(!toml.contains("http://monitor-admin"), "{toml}");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, &toml).unwrap();
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "site.conf:2: ip_hash",
        "site.conf:3: server",
        "site.conf:4: keepalive",
    ] {
        assert!(stdout.contains(line), "{line} listed:\n{stdout}");
    }
    // Several servers, `down` and `backup` import as `servers = [...]`, which `check` loads.
    for block in [
        "upstream b { server 127.0.0.1:1; server 127.0.0.1:2 weight=3 max_fails=2 fail_timeout=1m; }",
        "upstream b { server 127.0.0.1:1; server 127.0.0.1:2 backup; }",
        "upstream b { ip_hash; server 127.0.0.1:1; server 127.0.0.1:2 down; }",
        "upstream b { server 127.0.0.1:1 fail_timeout=0; server 127.0.0.1:2 fail_timeout=1m30s; }",
    ] {
        let (code, toml, stderr) = import(
            &format!("{block}\nserver {{ location / {{ proxy_pass http://b; }} }}\n"),
            &dir,
        );
        assert_eq!((code, stderr.as_str()), (0, ""), "{block}");
        assert!(toml.contains("servers = ["), "{block}: {toml}");
        let (ok, err) = check(&toml, &dir);
        assert!(ok, "{block}: {err}\n{toml}");
    }
    assert!(import(
        "upstream b { server 127.0.0.1:1; server 127.0.0.1:2 weight=3 max_fails=2 fail_timeout=1m; }\n\
         server { location / { proxy_pass http://b; } }\n",
        &dir
    )
    .1
    .contains("{ url = \"http://127.0.0.1:2\", weight = 3, max_fails = 2, fail_timeout = \"60s\" }"));
    for (block, refused) in [
        (
            "upstream b { least_conn; server 127.0.0.1:1; server 127.0.0.1:2; }",
            "`least_conn` is not supported with several servers",
        ),
        (
            "upstream b { ip_hash; server 127.0.0.1:1; server 127.0.0.1:2 backup; }",
            "`backup` cannot be used with `ip_hash`",
        ),
        (
            "upstream b { server 127.0.0.1:1 resolve; }",
            "`server ... resolve` is not supported",
        ),
        (
            "upstream b { server unix:/run/crm.sock; server 127.0.0.1:2; }",
            "the gateway reaches its upstreams over TCP",
        ),
    ] {
        let (code, toml, stderr) = import(
            &format!("{block}\nserver {{ location / {{ proxy_pass http://b; }} }}\n"),
            &dir,
        );
        assert_eq!(code, 2, "{block}");
        assert!(stderr.contains(refused), "{block}: {stderr}");
        // The refused block's name is no host to reach.
        assert!(!toml.contains("http://b\""), "{block}: {toml}");
    }
}

/// A CRM on 8080 (`proxy_pass http://127.0.0.1:8080/`) moves the gateway's own listener
/// elsewhere, and `check` refuses an upstream that is the gateway's own listener: every request
/// would come back to it.
#[test]
fn the_gateway_never_listens_where_the_crm_is() {
    let dir = TempDir::new("import-self");
    let (code, toml, stderr) = import(
        "server { listen 80; server_name crm.example.com;\n\
           location /api/ { proxy_pass http://127.0.0.1:8080/; } }\n",
        &dir,
    );
    assert_eq!((code, stderr.as_str()), (0, ""), "{toml}");
    assert!(toml.contains("listen = \"0.0.0.0:8088\""), "{toml}");
    let (ok, err) = check(&toml, &dir);
    assert!(ok, "{err}\n{toml}");
    let (ok, err) = check(&toml.replace("0.0.0.0:8088", "0.0.0.0:8080"), &dir);
    assert!(!ok);
    assert!(err.contains("is the gateway's own listener"), "{err}");
}

/// `listen 443 ssl` is a promise the gateway cannot keep: said, with what to do, never passed
/// over as one more address.
#[test]
fn a_tls_listen_is_refused_with_what_to_do() {
    let dir = TempDir::new("import-ssl");
    let (code, _, stderr) = import(
        "server { listen 80; listen 443 ssl http2; server_name crm.example.com;\n\
           location / { proxy_pass http://127.0.0.1:9000; } }\n",
        &dir,
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains(":1: directive 'listen' is not supported (TLS on this port:"),
        "{stderr}"
    );
}

/// Credentials in a `proxy_pass` address are refused as nginx refuses them ("invalid port in
/// upstream"), with what to do, and never repeated: they became an upstream's name (which
/// `check` printed) and its URL.
#[test]
fn credentials_in_a_proxy_pass_are_refused_and_never_repeated() {
    let dir = TempDir::new("import-userinfo");
    let (code, stdout, stderr) = import(
        "server { listen 80;\n location / { proxy_pass http://admin:PASSWORDleak1@127.0.0.1:9000/; } }\n",
        &dir,
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("proxy_set_header Authorization"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("PASSWORDleak1") && !stdout.contains("PASSWORDleak1"),
        "{stderr}"
    );
}

/// A site file of `conf.d/` that includes `proxy_params` means the one beside `nginx.conf`, as
/// nginx reads a relative include: the import finds it there and writes `[nginx] conf_dir`, so
/// `check` reads the file as nginx does.
#[test]
fn a_relative_include_of_a_conf_d_file_starts_at_the_nginx_directory() {
    let dir = TempDir::new("import-confd");
    let nginx = dir.path().join("nginx");
    std::fs::create_dir_all(nginx.join("conf.d")).unwrap();
    std::fs::write(
        nginx.join("proxy_params"),
        "proxy_set_header Host $http_host;\nproxy_set_header X-Real-IP $remote_addr;\n",
    )
    .unwrap();
    let site = nginx.join("conf.d/crm.conf");
    std::fs::write(
        &site,
        "server { listen 80; server_name crm.example.com;\n\
           location / { include proxy_params; proxy_pass http://127.0.0.1:9000; } }\n",
    )
    .unwrap();
    imports_from_conf_dir(&site, &nginx, &dir);
    let conf_dir = std::fs::canonicalize(&nginx).unwrap();
    // The same file named from the nginx directory, as `conf.d/crm.conf`.
    let out = Command::new(bin())
        .current_dir(&nginx)
        .args(["import-nginx", "conf.d/crm.conf"])
        .output()
        .unwrap();
    let relative = String::from_utf8(out.stdout).unwrap();
    assert!(
        relative.contains(&format!("conf_dir = \"{}\"", conf_dir.display())),
        "{relative}"
    );
}

/// `import-nginx SITE` succeeds, names `nginx` (the main file's directory) as `conf_dir`, and
/// `check` loads what it wrote; the TOML.
fn imports_from_conf_dir(site: &std::path::Path, nginx: &std::path::Path, dir: &TempDir) -> String {
    let out = Command::new(bin())
        .arg("import-nginx")
        .arg(site)
        .output()
        .unwrap();
    let (toml, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert_eq!(
        (out.status.code(), stderr.as_str()),
        (Some(0), ""),
        "{toml}"
    );
    let conf_dir = std::fs::canonicalize(nginx).unwrap();
    assert!(
        toml.contains(&format!("conf_dir = \"{}\"", conf_dir.display())),
        "{toml}"
    );
    let (ok, err) = check(&toml, dir);
    assert!(ok, "{err}\n{toml}");
    toml
}

/// `import-nginx SITE` fails; what it says.
fn import_refused(site: &std::path::Path) -> String {
    let out = Command::new(bin())
        .arg("import-nginx")
        .arg(site)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    String::from_utf8(out.stderr).unwrap()
}

/// The stock nginx.org, CentOS and RHEL layout: `log_format main` is nginx.conf's, and the
/// site file of `conf.d/` names it (`access_log ... main;`), as nginx reads it inside that
/// http block. The import reads the format there and writes `conf_dir`, so that `check` and
/// `run` read it too; a file of `log_format` lines included beside the site names them as
/// well. A format defined nowhere is still refused.
#[test]
fn a_log_format_of_the_main_nginx_conf_is_known_to_its_site_files() {
    let dir = TempDir::new("import-logformat");
    let nginx = dir.path().join("nginx");
    std::fs::create_dir_all(nginx.join("conf.d")).unwrap();
    std::fs::write(
        nginx.join("nginx.conf"),
        "user nginx;
events { worker_connections 1024; }
         http {
  log_format  main  '$remote_addr - $remote_user [$time_local] \"$request\" '
         '$status $body_bytes_sent \"$http_referer\" \"$http_x_forwarded_for\"';
         log_format unused '$ssl_protocol';
  include /etc/nginx/conf.d/*.conf;
}
",
    )
    .unwrap();
    let log = dir.path().join("access.log");
    let site = nginx.join("conf.d/crm.conf");
    std::fs::write(
        &site,
        format!(
            "server {{ listen 80; server_name crm.example.com;
               access_log {} main;
               location / {{ proxy_pass http://127.0.0.1:9000; }} }}
",
            log.display()
        ),
    )
    .unwrap();
    imports_from_conf_dir(&site, &nginx, &dir);

    // Without the main file the name is unknown, as to nginx.
    std::fs::remove_file(nginx.join("nginx.conf")).unwrap();
    let stderr = import_refused(&site);
    assert!(stderr.contains("unknown log format \"main\""), "{stderr}");

    // A file of `log_format` lines included beside the site's.
    std::fs::write(
        nginx.join("formats.conf"),
        "log_format main '$remote_addr \"$request\" $status';
",
    )
    .unwrap();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://crm.example.com\"\n\
         [upstreams.crm]\nurl = \"http://127.0.0.1:9000\"\n\
         [nginx]\ninclude = [{:?}, {:?}]\n",
        nginx.join("formats.conf").display().to_string(),
        site.display().to_string()
    );
    let (ok, err) = check(&toml, &dir);
    assert!(ok, "{err}\n{toml}");
}

/// BaoTa's and many tutorials' layout: the WebSocket `map $http_upgrade $connection_upgrade`
/// is in nginx.conf's http block and the site file of `conf.d/` uses `$connection_upgrade`.
/// The import takes the map from there (with a map it reads in turn) and `check` loads it; a
/// map the site does not use is not taken, and one the site defines itself stays its own.
#[test]
fn a_map_of_the_main_nginx_conf_is_known_to_its_site_files() {
    let dir = TempDir::new("import-mainmap");
    let nginx = dir.path().join("nginx");
    std::fs::create_dir_all(nginx.join("conf.d")).unwrap();
    std::fs::write(
        nginx.join("nginx.conf"),
        "events { }
http {
  map $http_upgrade $connection_upgrade { default upgrade; '' $close_word; }
  map $request_method $close_word { default close; }
  map $ssl_protocol $unused_by_the_site { default x; }
  include /etc/nginx/conf.d/*.conf;
}
",
    )
    .unwrap();
    let site = nginx.join("conf.d/crm.conf");
    std::fs::write(
        &site,
        "server { listen 80; server_name crm.example.com;
  location /ws/ { proxy_pass http://127.0.0.1:9000; proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade; }
  location / { proxy_pass http://127.0.0.1:9000; } }
",
    )
    .unwrap();
    imports_from_conf_dir(&site, &nginx, &dir);

    // Without the main file the variable is unknown, as to nginx.
    std::fs::rename(nginx.join("nginx.conf"), nginx.join("nginx.conf.off")).unwrap();
    let stderr = import_refused(&site);
    assert!(stderr.contains("connection_upgrade"), "{stderr}");
}

/// A source-built nginx keeps its file at `<prefix>/conf/nginx.conf` and starts the stock
/// `root html;` at the prefix: the import writes `[nginx] prefix`, so `/` is the same
/// `<prefix>/html/index.html`; without the directory, `check` says where files would be
/// looked for (a written `root html;` is not taken for nginx's unwritten default).
#[test]
fn the_stock_relative_root_starts_at_the_source_layouts_prefix() {
    let dir = TempDir::new("import-prefix");
    let prefix = dir.path().join("nginx");
    std::fs::create_dir_all(prefix.join("conf")).unwrap();
    let main = prefix.join("conf/nginx.conf");
    std::fs::write(
        &main,
        "worker_processes 1;\nevents { worker_connections 1024; }\nhttp {\n\
           include mime.types; default_type application/octet-stream;\n\
           server { listen 80; server_name localhost;\n\
             location / { root html; index index.html index.htm; }\n\
             error_page 500 502 503 504 /50x.html;\n\
             location = /50x.html { root html; } } }\n",
    )
    .unwrap();
    std::fs::write(
        prefix.join("conf/mime.types"),
        "types { text/html html; }\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("import-nginx")
        .arg(&main)
        .output()
        .unwrap();
    let toml = String::from_utf8(out.stdout).unwrap();
    let prefix = std::fs::canonicalize(&prefix).unwrap();
    assert!(
        toml.contains(&format!("\nprefix = \"{}\"", prefix.display())),
        "{toml}"
    );
    // No html/ yet: every request would be a 404, and check names the directory.
    let (ok, err) = check(&toml, &dir);
    assert!(ok, "{err}\n{toml}");
    let html = prefix.join("html");
    assert!(
        err.contains(&format!("serves files from '{}'", html.display())),
        "{err}"
    );
    std::fs::create_dir_all(&html).unwrap();
    let (ok, err) = check(&toml, &dir);
    assert!(ok && !err.contains("serves files from"), "{err}");
    // A site file below conf/ (conf/vhost/) has the same prefix; a conf/ directory without
    // an nginx.conf is no nginx prefix.
    std::fs::create_dir_all(prefix.join("conf/vhost")).unwrap();
    let site = prefix.join("conf/vhost/crm.conf");
    std::fs::write(&site, "server { listen 80; location / { root html; } }\n").unwrap();
    let out = Command::new(bin())
        .arg("import-nginx")
        .arg(&site)
        .output()
        .unwrap();
    let toml = String::from_utf8(out.stdout).unwrap();
    assert!(
        toml.contains(&format!("\nprefix = \"{}\"", prefix.display())),
        "{toml}"
    );
    let other = dir.path().join("proj/conf");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("site.conf"),
        "server { listen 80; location / { root html; } }\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("import-nginx")
        .arg(other.join("site.conf"))
        .output()
        .unwrap();
    let toml = String::from_utf8(out.stdout).unwrap();
    assert!(toml.contains("\n# prefix = "), "{toml}");
}

/// WeCom's domain check file served the usual way, an exact location with an `alias` naming
/// the file: `check` takes the file as what the alias serves (a `root` must be a directory),
/// and when nothing is there it says the path does not exist rather than that it is no
/// directory.
#[test]
fn an_alias_naming_the_domain_check_file_is_no_missing_directory() {
    let dir = TempDir::new("import-alias-file");
    let verify = dir.path().join("verify");
    std::fs::create_dir_all(&verify).unwrap();
    let file = verify.join("WW_verify_abcdEFGH1234.txt");
    let (code, toml, stderr) = import(
        &format!(
            "server {{ listen 80; server_name crm.example.com;
               location = /WW_verify_abcdEFGH1234.txt {{ alias {}; }}
               location /favicon.ico {{ alias {}/favicon.ico; }}
               location /files/ {{ root {}; }} }}\n",
            file.display(),
            verify.display(),
            file.display(),
        ),
        &dir,
    );
    assert_eq!((code, stderr.as_str()), (0, ""), "{toml}");
    std::fs::write(&file, "abcdEFGH1234").unwrap();
    std::fs::write(verify.join("favicon.ico"), "icon").unwrap();
    let (ok, err) = check(&toml, &dir);
    assert!(ok, "{err}\n{toml}");
    // The aliased files are what those locations serve; the root naming a file is no
    // directory to look in.
    assert!(
        !err.contains(&format!(
            "serves files from '{}',",
            verify.join("favicon.ico").display()
        )),
        "{err}"
    );
    assert_eq!(
        err.matches(&format!(
            "serves files from '{}', which is not a directory",
            file.display()
        ))
        .count(),
        1,
        "{err}"
    );
    // Without the file, the alias names nothing there.
    std::fs::remove_file(verify.join("favicon.ico")).unwrap();
    let (ok, err) = check(&toml, &dir);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!(
            "serves files from '{}', which does not exist",
            verify.join("favicon.ico").display()
        )),
        "{err}"
    );
}

/// A `proxy_pass` whose address carries a credential in its query is named in the printed
/// reasons with the credential masked, as the log would have it.
#[test]
fn a_credential_in_a_proxy_pass_is_not_copied_into_the_output() {
    let dir = TempDir::new("import-secret");
    let (_, toml, stderr) = import(
        "server { listen 80;
           location /z/ { proxy_pass http://127.0.0.1:52000/z/?secret=ZZngx7SEC; } }
",
        &dir,
    );
    assert!(toml.contains("location /z/ proxies to"), "{toml}");
    assert!(toml.contains("secret=***"), "{toml}");
    assert!(
        !toml.contains("ZZngx7SEC") && !stderr.contains("ZZngx7SEC"),
        "{toml}\n{stderr}"
    );
}

/// A file that tells its CRM `X-Forwarded-Proto https` sits behind TLS: the generated
/// `public_url` is https (the gateway writes that header from it), and `check` accepts it.
#[test]
fn a_file_that_tells_its_crm_https_imports_an_https_public_url() {
    let dir = TempDir::new("import-https");
    let conf = "server_name crm.example.com;\n\
                location / {\n\
                  proxy_set_header X-Forwarded-Proto https;\n\
                  proxy_pass http://127.0.0.1:9000;\n\
                }\n";
    let (code, toml, stderr) = import(conf, &dir);
    assert_eq!((code, stderr.as_str()), (0, ""), "{toml}");
    assert!(
        toml.contains("public_url = \"https://crm.example.com\""),
        "{toml}"
    );
    let (ok, err) = check(&toml, &dir);
    assert!(ok, "{err}\n{toml}");
    let (_, plain, _) = import(
        "server_name crm.example.com;\nlocation / { proxy_pass http://127.0.0.1:9000; }\n",
        &dir,
    );
    assert!(
        plain.contains("public_url = \"http://crm.example.com:8080\""),
        "{plain}"
    );
    // A site that listened with TLS is reached by https (its `ssl` line is listed to remove).
    let (_, tls, _) = import(
        "listen 443 ssl;\nserver_name crm.example.com;\nlocation / { proxy_pass http://127.0.0.1:9000; }\n",
        &dir,
    );
    assert!(
        tls.contains("public_url = \"https://crm.example.com\""),
        "{tls}"
    );
}

/// `proxy_pass http://$backend` whose variable only holds hosts the file writes out (its
/// `set`s, a `map`'s values) gets an `[upstreams]` entry for each: without them every request
/// was a 502. A variable whose value is made per request keeps the note to add them.
#[test]
fn a_variable_upstream_of_written_hosts_imports_each_host() {
    let dir = TempDir::new("import-var-up");
    let conf = "map $http_x_shop $shop_backend {\n\
                  default 127.0.0.1:9101;\n\
                  vip 127.0.0.1:9102;\n\
                }\n\
                server {\n\
                  listen 80;\n\
                  location /set/ { set $up 127.0.0.1:9103; proxy_pass http://$up; }\n\
                  location /map/ { proxy_pass http://$shop_backend$request_uri; }\n\
                  location /arg/ { proxy_pass http://$arg_host; }\n\
                }\n";
    let (code, toml, stderr) = import(conf, &dir);
    assert_eq!((code, stderr.as_str()), (0, ""), "{toml}");
    for port in [9101, 9102, 9103] {
        assert!(
            toml.contains(&format!("url = \"http://127.0.0.1:{port}\"")),
            "{port}:\n{toml}"
        );
    }
    assert!(
        toml.contains("`proxy_pass http://$arg_host` chooses its host per request"),
        "{toml}"
    );
    assert!(!toml.contains("http://$up` chooses"), "{toml}");
    let (ok, err) = check(&toml, &dir);
    assert!(ok, "{err}\n{toml}");
    // A variable a regex's named capture also writes stays a note: its hosts are not all
    // written here.
    let conf = "set $b1 127.0.0.1:9104;\n\
                if ($http_x_b ~ ^(?<b1>127\\.0\\.0\\.1:91[0-9][0-9])$) { set $c 1; }\n\
                location / { proxy_pass http://$b1; }\n";
    let (code, toml, stderr) = import(conf, &dir);
    assert_eq!((code, stderr.as_str()), (0, ""), "{toml}");
    assert!(
        toml.contains("`proxy_pass http://$b1` chooses its host per request"),
        "{toml}"
    );
    assert!(!toml.contains("9104"), "{toml}");
    let (ok, err) = check(&toml, &dir);
    assert!(ok, "{err}\n{toml}");
    // A name a resolver looks up while serving (a container's service) is its host all the
    // same: the gateway resolves it when its configuration loads (where that name resolves).
    let conf = "resolver 127.0.0.11;\n\
                location / { set $b2 crm-service.invalid:8080; proxy_pass http://$b2; }\n";
    let (code, toml, stderr) = import(conf, &dir);
    assert_eq!((code, stderr.as_str()), (0, ""), "{toml}");
    assert!(
        toml.contains("url = \"http://crm-service.invalid:8080\""),
        "{toml}"
    );
    assert!(!toml.contains("chooses its host per request"), "{toml}");
}

/// An `include` that cannot be read (a site file copied away from /etc/nginx) does not hide
/// the rest: every missing file and every line that cannot load is listed in one run.
#[test]
fn a_missing_include_is_listed_with_everything_else() {
    let dir = TempDir::new("import-missing");
    let conf = "server {\n  listen 80;\n  include fastcgi_params;\n  location / {\n    include proxy_params;\n    \
                proxy_pass http://127.0.0.1:9000;\n    limit_req zone=one;\n  }\n  \
                location /x/ { proxy_pass https://127.0.0.1:9001; }\n}\n";
    let (code, toml, stderr) = import(conf, &dir);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        toml.is_empty(),
        "no TOML for a file that does not load: {toml}"
    );
    for said in [
        "site.conf:3:3: cannot read",
        "fastcgi_params",
        "include proxy_params: cannot read",
        "site.conf:7: directive 'limit_req' is not supported",
        "https upstreams are not supported",
    ] {
        assert!(stderr.contains(said), "{said}:\n{stderr}");
    }
    assert_eq!(stderr.matches("fastcgi_params").count(), 1, "{stderr}");

    // A site file of `conf.d/`: what the configuration directory has is found there, as nginx
    // finds it, and only the rest is listed (an include inside an included file too).
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(etc.join("conf.d")).unwrap();
    std::fs::create_dir_all(etc.join("snippets")).unwrap();
    std::fs::write(etc.join("proxy_params"), "proxy_set_header X-A 1;\n").unwrap();
    std::fs::write(etc.join("snippets/s.conf"), "include gone.conf;\n").unwrap();
    let site = etc.join("conf.d/site.conf");
    std::fs::write(
        &site,
        "server {\n  include proxy_params;\n  include fastcgi_params;\n  include snippets/s.conf;\n  \
         location / { proxy_pass http://127.0.0.1:9000; }\n}\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("import-nginx")
        .arg(&site)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("proxy_params"), "{stderr}");
    assert!(stderr.contains("etc/fastcgi_params"), "{stderr}");
    assert!(stderr.contains("etc/gone.conf"), "{stderr}");
}

/// Why a file stays nginx names what each location does: one that only rewrites is not said
/// to serve static files.
#[test]
fn a_rewrite_only_location_is_named_as_such() {
    let dir = TempDir::new("import-rewrite-only");
    let (code, toml, stderr) = import(
        "server {\n  location /old/ { rewrite ^/old/(.*)$ /new/$1 permanent; }\n  \
         location /www/ { }\n  location / { proxy_pass http://127.0.0.1:9000; }\n}\n",
        &dir,
    );
    assert_eq!((code, stderr.as_str()), (0, ""), "{toml}");
    assert!(toml.contains("location /old/ only rewrites"), "{toml}");
    assert!(
        toml.contains("location /www/ has no proxy_pass (it serves static files)"),
        "{toml}"
    );
}

/// `proxy_pass` with its host in a variable, as container sites write it so that nginx starts
/// before their DNS answers (`resolver ...; set $svc http://api:8080; proxy_pass $svc;`, or
/// `http://$backend`): the hosts the file writes out become `[upstreams]` entries; a host
/// chosen from the request (a header) is said, since only configured hosts are reached.
#[test]
fn a_proxy_pass_whose_host_is_a_variable_names_its_upstreams() {
    let dir = TempDir::new("import-varhost");
    let conf = "resolver 114.114.114.114 valid=30s;\n\
                location /b/ { set $svc http://127.0.0.1:9001; proxy_pass $svc; }\n\
                location /c/ { set $be 127.0.0.1:9002; proxy_pass http://$be; }\n\
                location /d/ { proxy_pass http://$http_x_backend; }\n";
    let (code, toml, stderr) = import(conf, &dir);
    assert_eq!((code, stderr.as_str()), (0, ""), "{toml}");
    for want in ["http://127.0.0.1:9001", "http://127.0.0.1:9002"] {
        assert!(toml.contains(want), "{want}\n{toml}");
    }
    assert!(
        toml.contains("`proxy_pass http://$http_x_backend` chooses its host per request"),
        "{toml}"
    );
    let (ok, err) = check(&toml, &dir);
    assert!(ok, "{err}\n{toml}");
    // Without the entries, `check` says which requests would be 502s.
    let path = dir.path().join("gateway.toml");
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("proxy_pass http://$http_x_backend: its host is chosen per request"),
        "{listing}"
    );
    let without: String = toml
        .lines()
        .filter(|l| !l.contains("127.0.0.1:9001") && !l.contains("127_0_0_1_9001"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, &without).unwrap();
    let out = Command::new(bin())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let listing =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        listing.contains("no [upstreams] entry has 127.0.0.1:9001"),
        "{listing}\n{without}"
    );
}

/// A hosting panel's layout (BaoTa: sites in `/www/server/panel/vhost/nginx/`, the main
/// nginx.conf in `/www/server/nginx/conf/`, neither beside nor above the other): the file's
/// relative includes and the main file's `map` are not found until `--conf-dir` names that
/// directory, and each refusal says so; with it the file imports whole and `check` takes it.
#[test]
fn a_conf_dir_named_reads_the_main_files_includes_and_maps() {
    let dir = TempDir::new("import-confdir");
    let sites = dir.path().join("panel/vhost/nginx");
    let conf = dir.path().join("nginx/conf");
    std::fs::create_dir_all(&sites).unwrap();
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("nginx.conf"),
        "events {}\nhttp {\n  map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n  \
         geo $office { default 0; 10.0.0.0/8 1; }\n}\n",
    )
    .unwrap();
    std::fs::write(conf.join("enable-php-00.conf"), "\n").unwrap();
    let site = sites.join("crm.example.com.conf");
    std::fs::write(
        &site,
        "server {\n  listen 80;\n  server_name crm.example.com;\n  include enable-php-00.conf;\n  \
         location ^~ / {\n    proxy_pass http://127.0.0.1:9000;\n    \
         proxy_set_header Upgrade $http_upgrade;\n    \
         proxy_set_header Connection $connection_upgrade;\n    \
         proxy_set_header X-Office $office;\n  }\n}\n",
    )
    .unwrap();
    let run = |extra: &[&std::ffi::OsStr]| {
        let out = Command::new(bin())
            .arg("import-nginx")
            .args(extra)
            .arg(&site)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, _, stderr) = run(&[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("import-nginx --conf-dir"), "{stderr}");
    assert!(stderr.contains("$connection_upgrade"), "{stderr}");
    assert!(stderr.contains("$office"), "{stderr}");

    let (code, toml, stderr) = run(&["--conf-dir".as_ref(), conf.as_os_str()]);
    assert_eq!(code, 0, "{stderr}");
    let written = std::fs::canonicalize(&conf).unwrap();
    assert!(
        toml.contains(&format!("conf_dir = \"{}\"", written.display())),
        "{toml}"
    );
    let (ok, why) = check(&toml, &dir);
    assert!(ok, "{why}");

    let (code, _, stderr) = run(&["--conf-dir".as_ref(), "/no/such/dir".as_ref()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--conf-dir /no/such/dir: not a directory"),
        "{stderr}"
    );
}

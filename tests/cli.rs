//! The command line of SPEC section 3: `check`, exit codes and config errors with file:line.

mod common;

use std::process::Command;

use common::{bin, TempDir};

const BASE: &str = "[server]\nlisten = \"127.0.0.1:8080\"\npublic_url = \"http://127.0.0.1:8080\"\n\n[upstreams.crm]\nurl = \"http://127.0.0.1:9000\"\n";

fn check(text: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    check_with_files(text, &[], env)
}

/// `check` of `text` as `gateway.toml`, beside `files` (name, content).
fn check_with_files(
    text: &str,
    files: &[(&str, &str)],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let dir = TempDir::new("cli");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    for (name, content) in files {
        let file = dir.path().join(name);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["check", "-c", "gateway.toml"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_repository_config_is_valid_and_prints_its_routes() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(bin())
        .current_dir(root)
        .args(["check", "-c", "gateway.toml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("/sidebar/") && stdout.contains("login=crm"),
        "{stdout}"
    );
    for secret in [
        "emu-agent-secret",
        "emu-contact-secret",
        "demo-only-session-secret",
    ] {
        assert!(!stdout.contains(secret), "check printed a secret");
    }
}

/// One line per broken config and the start of the error it must print (file:line:col, then
/// the key path and what was expected).
#[test]
fn config_errors_name_file_line_and_key() {
    let cases: &[(&str, &str)] = &[
        // unknown key
        ("[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\nbogus = 1\n", "gateway.toml:10:1: [[routes]][1].bogus: unknown field `bogus`"),
        // unknown upstream, with the known ones listed
        (
            "[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n\n[[routes]]\nlocation = \"/x\"\nupstream = \"crn\"\n",
            "gateway.toml:13:12: [[routes]][2].upstream: unknown upstream 'crn' (known: crm)",
        ),
        // bad duration
        ("read_timeout = \"30\"\n", "gateway.toml:7:16: [upstreams.crm].read_timeout: '30' is not a duration"),
        // missing environment variable
        (
            "[apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"${WGW_TEST_NOT_SET}\"\n",
            "gateway.toml:11:10: [apps.crm].secret: environment variable WGW_TEST_NOT_SET is not set",
        ),
        // unknown table
        ("[serverx]\n", "gateway.toml:7:2: [serverx]: unknown field `serverx`"),
        // an API base written as the SDKs' (`.../cgi-bin`): every call would miss
        (
            "[apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"s\"\napi_base = \"http://127.0.0.1:9/cgi-bin/\"\n",
            "gateway.toml:12:12: [apps.crm].api_base: is the API's origin",
        ),
        // an upstream of several servers: `url` or `servers`, each server's values checked
        (
            "[upstreams.two]\nservers = [{ url = \"http://127.0.0.1:9\", weight = 0 }]\n",
            "gateway.toml:8:51: [upstreams.two].servers[1].weight: must be 1 to 1000000",
        ),
        (
            "[upstreams.two]\nservers = [{ url = \"http://127.0.0.1:9\", backup = true }]\n",
            "gateway.toml:8:11: [upstreams.two].servers: needs a server that is not a backup",
        ),
        // an unknown key named like a secret: its name and the known ones are no secrets
        (
            "[nginx]\nconf_dir_key = \"x\"\n",
            "gateway.toml:8:1: [nginx].conf_dir_key: unknown field `conf_dir_key`, expected one of `include`",
        ),
        // wrong type
        ("[emulator]\nenabled = \"yes\"\n", "gateway.toml:8:11: [emulator].enabled: invalid type"),
        // unknown app on a route
        ("[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\nlogin = \"nope\"\n", "gateway.toml:10:9: [[routes]][1].login: unknown app 'nope' (known: none)"),
        // bad location regex
        ("[[routes]]\nlocation = \"~ ([a-z\"\nupstream = \"crm\"\n", "gateway.toml:8:12: [[routes]][1].location:"),
        // short session secret: its length is told, never its value
        ("[session]\nsecret = \"short-secret\"\n", "gateway.toml:8:10: [session].secret: must be at least 32 bytes (it has 12)"),
        // wecom key on a wechat_mp app
        (
            "[apps.mp]\nkind = \"wechat_mp\"\napp_id = \"wx1\"\nsecret = \"s\"\nagent_id = 5\n",
            "gateway.toml:11:12: [apps.mp].agent_id: not a key of kind = \"wechat_mp\"",
        ),
        // a mini-program login on an Official Account
        (
            "[apps.mp]\nkind = \"wechat_mp\"\napp_id = \"wx1\"\nsecret = \"s\"\nminiprogram = true\n",
            "gateway.toml:11:15: [apps.mp].miniprogram: not a key of kind = \"wechat_mp\"",
        ),
        // a WeChat mini-program has no agent
        (
            "[apps.wx]\nkind = \"wechat_mini\"\napp_id = \"wx1\"\nsecret = \"s\"\nagent_id = 5\n",
            "gateway.toml:11:12: [apps.wx].agent_id: not a key of kind = \"wechat_mini\"",
        ),
        // miniprogram is a yes or no
        (
            "[apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"s\"\nminiprogram = \"yes\"\n",
            "gateway.toml:12:15: [apps.crm].miniprogram: invalid type",
        ),
        // a refresh lock shorter than a second would expire under a normal gettoken
        (
            "[store]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379/0\"\nlock_ttl = \"500ms\"\n",
            "gateway.toml:10:12: [store].lock_ttl: expected between \"1s\" and \"300s\"",
        ),
        // redis without its URL: at the table
        ("[store]\nbackend = \"redis\"\n", "gateway.toml:7:1: [store].redis_url: required when backend = \"redis\""),
        // a redis_url that would be ignored
        (
            "[store]\nredis_url = \"redis://127.0.0.1:6379/0\"\n",
            "gateway.toml:8:13: [store].redis_url: only for backend = \"redis\"",
        ),
        // a Redis URL that run would refuse: at the key, its password never printed
        (
            "[store]\nbackend = \"redis\"\nredis_url = \"redis://:pw-not-shown@127.0.0.1:notaport/0\"\n",
            "gateway.toml:9:13: [store].redis_url: not a Redis URL",
        ),
        // a store in a directory that does not exist
        (
            "[store]\npath = \"no-such-dir/wgw.db\"\n",
            "gateway.toml:8:8: [store].path: the directory",
        ),
        // port 0 where the gateway connects
        ("[upstreams.zero]\nurl = \"http://127.0.0.1:0\"\n", "gateway.toml:8:7: [upstreams.zero].url: port 0 is not a port to connect to"),
        // an https upstream is refused with the reason
        ("[upstreams.tls]\nurl = \"https://127.0.0.1:9443\"\n", "gateway.toml:8:7: [upstreams.tls].url: only http:// upstreams are supported"),
        // a ${NAME} inside a value is not read: refused where a secret would be silently wrong
        (
            "[store]\nbackend = \"redis\"\nredis_url = \"redis://:${WGW_PASS}@127.0.0.1:6379/0\"\n",
            "gateway.toml:9:13: [store].redis_url: a ${NAME} inside a value is not read from the environment",
        ),
        (
            "[apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"emu-${PART}\"\n",
            "gateway.toml:11:10: [apps.crm].secret: a ${NAME} inside a value is not read from the environment",
        ),
        // a URL's credentials are not shown in the message about them
        (
            "[upstreams.auth]\nurl = \"http://user:UpPass@127.0.0.1:9500/x\"\n",
            "gateway.toml:8:7: [upstreams.auth].url: 'http://***@127.0.0.1:9500/x' must not carry credentials",
        ),
        (
            "[upstreams.auth]\nurl = \"http:u:UpPass@127.0.0.1:9500\"\n",
            "gateway.toml:8:7: [upstreams.auth].url: 'http:***@127.0.0.1:9500' must not carry credentials",
        ),
        // nor its query, which may hold one (printed by `check` as it is, not through the log)
        (
            "[upstreams.q]\nurl = \"http://127.0.0.1:9500/?access_token=ZZlit6\"\n",
            "gateway.toml:8:7: [upstreams.q].url: 'http://127.0.0.1:9500/?...' must not carry a query or a fragment",
        ),
        // a duplicate location, where the second is written, naming the first
        (
            "[[routes]]\nlocation = \"/a/\"\nupstream = \"crm\"\n[[routes]]\nlocation = \"= /x\"\nupstream = \"crm\"\n[[routes]]\nlocation = \"= /x\"\nupstream = \"crm\"\n",
            "gateway.toml:14:12: [[routes]][3].location: duplicate location \"= /x\" (already [[routes]][2].location)",
        ),
        // a route location that is no path matches nothing: the next route, a public one,
        // would answer its requests
        (
            "[[routes]]\nlocation = \"reports/\"\nupstream = \"crm\"\n",
            "gateway.toml:8:12: [[routes]][1].location: \"reports/\" matches no request",
        ),
        (
            "[[routes]]\nlocation = \"= reports\"\nupstream = \"crm\"\n",
            "gateway.toml:8:12: [[routes]][1].location: \"= reports\" matches no request",
        ),
        // a route under the gateway's own prefix is never reached
        (
            "[[routes]]\nlocation = \"/_gateway/x/\"\nupstream = \"crm\"\n",
            "gateway.toml:8:12: [[routes]][1].location: \"/_gateway/x/\" is under [server].prefix",
        ),
        // a mini-program has no web page to sign in to or to sign JS-SDK URLs of
        (
            "[apps.wx]\nkind = \"wechat_mini\"\napp_id = \"wx1\"\nsecret = \"s\"\njssdk_urls = [\"https://crm.example.com\"]\n",
            "gateway.toml:11:15: [apps.wx].jssdk_urls: not a key of kind = \"wechat_mini\"",
        ),
        // a shell's `$NAME` is not read from the environment: it would be the secret
        (
            "[apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"$WECOM_CRM_SECRET\"\n",
            "gateway.toml:11:10: [apps.crm].secret: reads as a shell variable",
        ),
        (
            "[apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"   \"\n",
            "gateway.toml:11:10: [apps.crm].secret: begins or ends with white space",
        ),
        // a secret written as a number: its type is told, never its value
        (
            "[apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = 98765432123\n",
            "gateway.toml:11:10: [apps.crm].secret: invalid type: integer `***`, expected a string",
        ),
    ];
    // More worker threads than any machine uses: refused at check, not a panic after the
    // gateway said it listens.
    let (code, _, stderr) = check(
        &BASE.replace("[server]\n", "[server]\nthreads = 100000\n"),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with("gateway.toml:2:11: [server].threads: at most 256"),
        "{stderr}"
    );
    // A prefix a browser reads as another host, or that climbs out of itself; a route a
    // prefix covers.
    for prefix in ["//gw", "/..", "/a/../b", "/a//b"] {
        let (code, _, stderr) = check(
            &BASE.replace("[server]\n", &format!("[server]\nprefix = \"{prefix}\"\n")),
            &[],
        );
        assert_eq!(code, 2, "{prefix}: {stderr}");
        assert!(
            stderr.starts_with("gateway.toml:2:10: [server].prefix: expected a path"),
            "{prefix}: {stderr}"
        );
    }
    let (code, _, stderr) = check(
        &format!(
            "{}[[routes]]\nlocation = \"/sidebar/\"\nupstream = \"crm\"\n",
            BASE.replace("[server]\n", "[server]\nprefix = \"/sidebar\"\n")
        ),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is under [server].prefix \"/sidebar\""),
        "{stderr}"
    );
    // The store's file may not be a directory; the emulator may not share a listener's address.
    let (code, _, stderr) = check(
        &format!("{BASE}[store]\nbackend = \"local\"\npath = \"/tmp\"\n"),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("[store].path: /tmp is not a file"),
        "{stderr}"
    );
    let (code, _, stderr) = check(
        &format!("{BASE}[emulator]\nenabled = true\nlisten = \"127.0.0.1:8080\"\n"),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("[emulator].listen: 127.0.0.1:8080 overlaps [server].listen"),
        "{stderr}"
    );
    // Its default address too.
    let (code, _, stderr) = check(
        &format!(
            "{}[emulator]\nenabled = true\n",
            BASE.replace("127.0.0.1:8080\"\npublic", "127.0.0.1:9100\"\npublic")
        ),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("[emulator].listen: 127.0.0.1:9100 overlaps [server].listen"),
        "{stderr}"
    );
    // A network with host bits set allows more than the host it names.
    let (code, _, stderr) = check(
        &BASE.replace("[server]\n", "[server]\nqyapi_allow = [\"10.1.2.3/8\"]\n"),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("'10.1.2.3/8' has host bits set: it allows all of 10.0.0.0/8"),
        "{stderr}"
    );
    // The forward-auth key is a secret too.
    let (code, _, stderr) = check(
        &BASE.replace(
            "[server]\n",
            "[server]\nforward_auth_key = 918273645546372819\n",
        ),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("[server].forward_auth_key: invalid type: integer `***`")
            && !stderr.contains("918273645546372819"),
        "{stderr}"
    );
    for (tail, want) in cases {
        let (code, stdout, stderr) = check(&format!("{BASE}{tail}"), &[]);
        assert_eq!(code, 2, "{tail}\nstdout: {stdout}\nstderr: {stderr}");
        assert!(
            stderr.starts_with(want),
            "{tail}\nwant: {want}\ngot:  {stderr}"
        );
        assert!(
            !stderr.contains("short-secret")
                && !stderr.contains("98765432123")
                && !stderr.contains("UpPass"),
            "a secret value was printed"
        );
    }
}

#[test]
fn environment_references_are_read_at_load() {
    let text = format!(
        "{BASE}[apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"${{WGW_TEST_SECRET}}\"\n[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n"
    );
    let (code, stdout, stderr) = check(&text, &[("WGW_TEST_SECRET", "from-env-s3cret")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("from-env-s3cret"));
    // A variable read into the wrong key (a secret as a duration): the error says what is
    // wrong, never the value.
    let text = format!(
        "{BASE}[session]\nsecret = \"0123456789abcdef0123456789abcdef\"\nttl = \"${{WGW_TEST_SECRET}}\"\n"
    );
    for value in ["from-env-s3cret", "it's a hunter2's"] {
        let (code, _, stderr) = check(&text, &[("WGW_TEST_SECRET", value)]);
        assert_eq!(code, 2);
        assert!(
            stderr.contains("[session].ttl: '***' is not a duration"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("hunter2") && !stderr.contains("s3cret"),
            "{stderr}"
        );
    }
    // Every variable the environment lacks is named in one run, whatever the quotes, also
    // two on one line.
    let text = format!(
        "{BASE}[session]\nsecret = '${{WGW_TEST_MISSING_A}}'\n[apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"${{WGW_TEST_MISSING_B}}\"\ncallback = {{ token = \"${{WGW_TEST_MISSING_C}}\", encoding_aes_key = \"${{WGW_TEST_MISSING_D}}\", forward = \"crm\", forward_path = \"/cb\" }}\n"
    );
    let (code, _, stderr) = check(&text, &[]);
    assert_eq!(code, 2);
    for name in ["A", "B", "C", "D"] {
        assert!(
            stderr.contains(&format!("WGW_TEST_MISSING_{name}")),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn version_and_usage_errors() {
    let out = Command::new(bin()).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("wecom-gateway "));

    let out = Command::new(bin()).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");

    let out = Command::new(bin())
        .args(["check", "-c", "/nonexistent/gateway.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A file that cannot be read has no line to point at: the file alone, not FILE:0:0.
    assert!(stderr.contains("/nonexistent/gateway.toml: "), "{stderr}");
    assert!(!stderr.contains(":0:0"), "{stderr}");
}

/// Each included file's server block would be merged into the one site the gateway serves
/// (`server_name` unread): a second site's redirect would answer for the first. Refused at the
/// second block; a file of locations alone beside the server's is still one site.
#[test]
fn a_second_included_server_block_is_refused_where_it_is() {
    let dir = TempDir::new("cli-two-servers");
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "a.conf",
        "server {\n    server_name crm.example.com;\n    location /api/ { proxy_pass http://crm; }\n}\n",
    );
    write(
        "b.conf",
        "# the mobile site\nserver {\n    server_name m.example.com;\n    return 301 https://m.example.com$request_uri;\n}\n",
    );
    write("c.conf", "location /c/ { proxy_pass http://crm; }\n");
    let check = |includes: &str| {
        std::fs::write(
            dir.path().join("gateway.toml"),
            format!("{BASE}[nginx]\ninclude = [{includes}]\n"),
        )
        .unwrap();
        Command::new(bin())
            .current_dir(dir.path())
            .args(["check", "-c", "gateway.toml"])
            .output()
            .unwrap()
    };
    let out = check("\"a.conf\", \"b.conf\"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("b.conf:2:"), "{stderr}");
    assert!(
        stderr.contains("a second server block") && stderr.contains("a.conf:1"),
        "{stderr}"
    );
    let out = check("\"a.conf\", \"c.conf\"");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `check` lists the included files' locations, with where each is and what serves it.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let listed = stdout
        .split("locations of the included nginx files:")
        .nth(1);
    let listed = listed.unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        listed.contains("/api/") && listed.contains("a.conf:3 proxy_pass http://crm"),
        "{stdout}"
    );
    assert!(
        listed.contains("/c/") && listed.contains("c.conf:1"),
        "{stdout}"
    );
}

/// An `if` block's own `proxy_pass` is checked at load like a location's.
#[test]
fn an_if_blocks_proxy_pass_to_an_unknown_upstream_is_refused_at_load() {
    let (code, _, stderr) = check_with_files(
        &format!("{BASE}[nginx]\ninclude = [\"legacy.conf\"]\n"),
        &[(
            "legacy.conf",
            "server {\n    location / {\n        if ($arg_old) {\n            proxy_pass http://legacy-crm;\n        }\n        proxy_pass http://crm;\n    }\n}\n",
        )],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("legacy.conf:4:") && stderr.contains("unknown upstream"),
        "{stderr}"
    );
}

#[test]
fn check_lists_the_locations_inside_each_protected_area() {
    let dir = TempDir::new("cli-areas");
    std::fs::write(
        dir.path().join("legacy.conf"),
        "server {\n    location / { proxy_pass http://crm; }\n    location ~* \\.(gif|ico)$ { proxy_pass http://crm; }\n    location /sidebar/reports/ { proxy_pass http://crm; }\n    location /other/ { proxy_pass http://crm; }\n    location /old/ { rewrite ^/old/(.*)$ /other/$1 permanent; }\n    location = /gone { return 410; }\n}\n",
    )
    .unwrap();
    let text = format!(
        "{BASE}[session]\nsecret = \"0123456789abcdef0123456789abcdef\"\n\
         [apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"s\"\n\
         [[routes]]\nlocation = \"/sidebar/\"\nupstream = \"crm\"\nlogin = \"crm\"\n\
         [[routes]]\nlocation = \"/sidebar/static/\"\nupstream = \"crm\"\n\
         [[routes]]\nlocation = \"~* \\\\.(js|css)$\"\nupstream = \"crm\"\n\
         [[routes]]\nlocation = \"/boss/\"\nupstream = \"crm\"\nlogin = \"crm\"\nallow = {{ users = [\"boss\"] }}\n\
         [[routes]]\nlocation = \"~* \\\\.pdf$\"\nupstream = \"crm\"\nlogin = \"crm\"\n\
         [apps.other]\nkind = \"wecom\"\ncorp_id = \"ww2\"\nagent_id = 2\nsecret = \"s\"\n\
         [[routes]]\nlocation = \"~* \\\\.csv$\"\nupstream = \"crm\"\nlogin = \"other\"\n\
         [nginx]\ninclude = [\"legacy.conf\"]\n"
    );
    std::fs::write(dir.path().join("gateway.toml"), text).unwrap();
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["check", "-c", "gateway.toml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The route table says a public route inside an area needs its login all the same.
    let table = stdout.split("protected areas").next().unwrap();
    let row = |loc: &str| {
        table
            .lines()
            .find(|l| l.starts_with(loc))
            .unwrap_or_default()
    };
    assert!(
        row("/sidebar/static/").contains("public, inside /sidebar/: login=crm"),
        "{stdout}"
    );
    assert!(
        row("~* \\.(js|css)$").starts_with(&format!(
            "{:<32} -> crm          public, may overlap ",
            "~* \\.(js|css)$"
        )) && row("~* \\.(js|css)$").contains("may overlap /sidebar/: login=crm"),
        "{stdout}"
    );
    let area = stdout
        .split("protected areas")
        .nth(1)
        .unwrap_or_else(|| panic!("no areas listed:\n{stdout}"));
    let line = |needle: &str| area.lines().find(|l| l.contains(needle)).map(str::trim);
    assert!(line("/sidebar/  login=crm").is_some(), "{stdout}");
    assert!(
        line("/sidebar/static/")
            .is_some_and(|l| l.starts_with("inside") && l.contains("[[routes]][2]")),
        "{stdout}"
    );
    assert!(
        line("/sidebar/reports/")
            .is_some_and(|l| l.starts_with("inside") && l.contains("legacy.conf:4")),
        "{stdout}"
    );
    assert!(
        line("~* \\.(js|css)$").is_some_and(|l| l.starts_with("may overlap")),
        "{stdout}"
    );
    assert!(
        line("~* \\.(gif|ico)$").is_some_and(|l| l.starts_with("may overlap")),
        "{stdout}"
    );
    assert!(line("/other/").is_none(), "apart from the area: {stdout}");
    // What serves each location of the file, as written: a rewrite or a return is not "static
    // files".
    assert!(
        stdout.contains("legacy.conf:6 rewrite (else static files)"),
        "{stdout}"
    );
    assert!(stdout.contains("legacy.conf:7 return"), "{stdout}");
    // A regex route with a login of its own takes `/boss/x.pdf` from `/boss/` (nginx's order):
    // its allow, not the area's, judges those paths, and check says so.
    let boss = stdout
        .split("/boss/  login=crm")
        .nth(1)
        .unwrap_or_else(|| panic!("/boss/ not listed:\n{stdout}"));
    let boss = boss.split("login=").next().unwrap();
    assert!(
        boss.contains(
            "the paths it takes get its allow (everyone signed in), not this area's (users=[boss])"
        ),
        "{stdout}"
    );
    // One with another app's login takes `/sidebar/x.csv`: that app's session (another
    // corp's) enters there, and check says so.
    let sidebar = stdout
        .split("/sidebar/  login=crm")
        .nth(1)
        .unwrap()
        .split("login=")
        .next()
        .unwrap();
    assert!(
        sidebar.contains("! the paths it takes sign in with app other, not this area's crm"),
        "{stdout}"
    );
    assert!(!sidebar.contains("sign in with app crm"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_the_emulator_in_process_when_the_config_enables_it() {
    let body = "[upstreams.crm]\nurl = \"http://127.0.0.1:9\"\n[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n\
         [emulator]\nenabled = true\nlisten = \"127.0.0.1:0\"\n";
    let gw = tokio::task::spawn_blocking(move || common::Gateway::start(body))
        .await
        .unwrap();
    // Port 0 for the emulator too: the ports file says which it got.
    let emu_port = gw.emulator_port.expect("the emulator's port is reported");
    // `run` serves the demo's corp.
    let ids = common::world::Ids::of(&emulator::Scenario::demo());
    let r = common::client()
        .get(format!("http://127.0.0.1:{emu_port}/_emulator/calls"))
        .send()
        .await
        .expect("the emulator listens");
    assert_eq!(r.status(), 200);
    let r = common::client()
        .get(format!(
            "http://127.0.0.1:{emu_port}/cgi-bin/gettoken?corpid={}&corpsecret={}",
            ids.corp_id, ids.agent_secret
        ))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["errcode"], 0, "{v}");
    gw.wait_log("[emulator] enabled");
    assert!(
        gw.log().contains(&format!("127.0.0.1:{emu_port}")),
        "{}",
        gw.log()
    );
}

/// One inline command to the Redis on `port`; its answer's first line.
fn redis_command(port: u16, command: &str) -> String {
    use std::io::{BufRead, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("{command}\r\n").as_bytes()).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).unwrap();
    assert!(line.starts_with('+'), "{command}: {line}");
    line
}

/// `check` on a Redis store says when Redis keeps nothing on disk (SPEC section 21): the
/// queue, installs and revocations would go with a restart of it; and when it evicts keys as
/// a cache does. The config is still valid.
#[test]
fn check_warns_about_a_redis_without_appendonly() {
    let redis = common::redis_server::RedisServer::start();
    let (code, _, stderr) = check(
        &format!(
            "{BASE}[store]\nbackend = \"redis\"\nredis_url = \"{}\"\n",
            redis.url()
        ),
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning: [store]: Redis runs without appendonly"),
        "{stderr}"
    );
    // Set up as a cache (a maxmemory and an evicting policy): what it holds can vanish.
    for command in [
        "CONFIG SET appendonly yes",
        "CONFIG SET maxmemory 64mb",
        "CONFIG SET maxmemory-policy allkeys-lru",
    ] {
        redis_command(redis.port, command);
    }
    let store = format!(
        "{BASE}[store]\nbackend = \"redis\"\nredis_url = \"{}\"\n",
        redis.url()
    );
    let (code, _, stderr) = check(&store, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning: [store]: Redis evicts keys when it reaches maxmemory"),
        "{stderr}"
    );
    redis_command(redis.port, "CONFIG SET maxmemory-policy noeviction");
    let (code, _, stderr) = check(&store, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("warning: [store]"), "{stderr}");
    // A database number the server does not have is a wrong file, said as that, not as
    // "unreachable".
    let (code, _, stderr) = check(
        &format!(
            "{BASE}[store]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{}/99\"\n",
            redis.port
        ),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("[store].redis_url: Redis has no database of the number it names"),
        "{stderr}"
    );
}

/// SPEC section 4's `[store]` block, every key written: `backend = "local"` chosen beside a
/// `redis_url` is valid, and `check` says the URL is not used (without `backend` the URL alone
/// stays an error: several instances were meant to share it).
#[test]
fn the_reference_store_block_checks_and_names_the_unused_url() {
    let (code, _, stderr) = check(
        &format!(
            "{BASE}[store]\nbackend = \"local\"\npath = \"wecom-gateway.db\"\n\
             redis_url = \"redis://127.0.0.1:6379/0\"\nkey_prefix = \"wgw:\"\n"
        ),
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning: [store]: redis_url is not used with this backend"),
        "{stderr}"
    );
}

/// `[nginx] include` takes a glob(3) pattern as nginx's own `include` does (BaoTa's
/// `vhost/*.conf`, a directory per site, `?` and `[...]`): each file it matches, in name
/// order; matching nothing is an error. An `include` inside the nginx file reads the same way.
#[test]
fn an_nginx_include_with_a_pattern_reads_each_file_it_matches() {
    let files = [
        ("vhost/a.conf", "location /a/ { return 200 a; }\n"),
        ("vhost/b.conf", "location /b/ { return 200 b; }\n"),
        ("vhost/.b.conf.swp", "not nginx at all {\n"),
        (
            "sites/one/site.conf",
            "location /one/ { return 200 one; }\ninclude extra-?.conf;\n",
        ),
        (
            "sites/one/extra-1.conf",
            "location /extra/ { return 200 x; }\n",
        ),
        (
            "sites/two/site.conf",
            "location /two/ { return 200 two; }\n",
        ),
        ("sites/two/notes.txt", "not nginx at all {\n"),
    ];
    let (code, stdout, stderr) = check_with_files(
        &format!("{BASE}[nginx]\ninclude = [\"sites/*/site.conf\", \"vhost/[ab].conf\"]\n"),
        &files,
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    for location in ["/a/", "/b/", "/one/", "/two/", "/extra/"] {
        assert!(stdout.contains(location), "{location}: {stdout}");
    }
    let (code, stdout, stderr) = check_with_files(
        &format!("{BASE}[nginx]\ninclude = [\"vhost/*.conf\"]\n"),
        &files,
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("/a/") && stdout.contains("/b/"), "{stdout}");
    let (code, _, stderr) = check_with_files(
        &format!("{BASE}[nginx]\ninclude = [\"vhost/*.site\"]\n"),
        &files,
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("[nginx].include[1]: ") && stderr.contains("matches no file"),
        "{stderr}"
    );
}

/// `check | head -1`: a reader gone before the route table is written is no failure of
/// `check` (it panicked on the broken pipe, exit 101).
#[test]
fn check_into_a_closed_pipe_exits_cleanly() {
    let dir = TempDir::new("cli-pipe");
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        format!("{BASE}[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n"),
    )
    .unwrap();
    let mut child = Command::new(bin())
        .args(["check", "-c"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A whole nginx.conf's `include mime.types;` read from another directory than nginx.conf's
/// own: the error says where a relative include starts and which key moves it.
#[test]
fn a_missing_relative_include_names_conf_dir() {
    let (code, _, stderr) = check_with_files(
        &format!("{BASE}[nginx]\ninclude = [\"site.conf\"]\n"),
        &[(
            "site.conf",
            "http { include mime.types; server { location / { return 200; } } }\n",
        )],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("mime.types") && stderr.contains("[nginx] conf_dir"),
        "{stderr}"
    );
}

/// `include` with a `*` reads as nginx's glob(3): a directory that is not there includes
/// nothing (CentOS's stock `include /etc/nginx/default.d/*.conf;`), and a name starting with a
/// dot (an editor's swap file) is not matched.
#[test]
fn a_wildcard_include_skips_dot_files_and_a_missing_directory() {
    let (code, stdout, stderr) = check_with_files(
        &format!("{BASE}[nginx]\ninclude = [\"site.conf\"]\n"),
        &[
            (
                "site.conf",
                "server { include default.d/*.conf; include sites/*; location / { return 200 \"root\"; } }\n",
            ),
            ("sites/a.conf", "location /a/ { return 200 \"a\"; }\n"),
            ("sites/.a.conf.swp", "location /broken {\n"),
            ("sites/._a.conf", "\u{0}\u{5}garbage {"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("/a/"), "{stdout}");
}

/// Two listeners on one fixed address: `check` says so, rather than `run` failing to bind the
/// second as if another program held it.
#[test]
fn two_listeners_on_one_address_are_refused() {
    let config = |listen: &str, admin: &str| {
        format!("[server]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\npublic_url = \"http://127.0.0.1:8080\"\n\n[upstreams.crm]\nurl = \"http://127.0.0.1:9000\"\n")
    };
    let (code, _, stderr) = check(&config("127.0.0.1:8080", "127.0.0.1:8080"), &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with(
            "gateway.toml:3:16: [server].admin_listen: 127.0.0.1:8080 overlaps [server].listen"
        ),
        "{stderr}"
    );
    // A wildcard takes every address of its family (and `::` IPv4 too).
    for (listen, admin) in [
        ("127.0.0.1:8080", "0.0.0.0:8080"),
        ("0.0.0.0:8080", "[::]:8080"),
    ] {
        let (code, _, stderr) = check(&config(listen, admin), &[]);
        assert_eq!(code, 2, "{listen} {admin}: {stderr}");
        assert!(stderr.contains("overlaps [server].listen"), "{stderr}");
    }
    // Another port, or another address on the same port, is fine.
    for (listen, admin) in [
        ("127.0.0.1:8080", "127.0.0.1:9090"),
        ("127.0.0.1:8080", "127.0.0.2:8080"),
    ] {
        let (code, _, stderr) = check(&config(listen, admin), &[]);
        assert_eq!(code, 0, "{listen} {admin}: {stderr}");
    }
}

/// A `__Host-` cookie name (which no other path or subdomain can plant a copy of) is taken on
/// an https `public_url`; on http browsers would drop it and every sign-in start again, so
/// `check` says so at the key.
#[test]
fn a_host_prefixed_cookie_name_needs_an_https_public_url() {
    let session = "[session]\nsecret = \"test-session-secret-0123456789abcdef\"\ncookie_name = \"__Host-wgw_session\"\n";
    let (code, _, stderr) = check(&format!("{BASE}{session}"), &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("[session].cookie_name: a __Host- or __Secure- cookie needs an https"),
        "{stderr}"
    );
    let https = BASE.replace("http://127.0.0.1:8080", "https://crm.example.com");
    let (code, _, stderr) = check(&format!("{https}{session}"), &[]);
    assert_eq!(code, 0, "{stderr}");
}

/// A Redis that refuses `redis_url`'s password: the file is wrong, which no wait mends. `check`
/// refuses it (it said "ok"), and `run` does not start (it served, unready, each process
/// refreshing tokens on its own, every sign-out a 503).
#[test]
fn a_refused_redis_password_is_a_wrong_file() {
    let redis = common::redis_server::RedisServer::start();
    let port = redis.port.to_string();
    let set = Command::new("redis-cli")
        .args(["-p", &port, "CONFIG", "SET", "requirepass", "the-right-one"])
        .output()
        .unwrap();
    assert!(set.status.success(), "{set:?}");
    let text = format!(
        "{BASE}[store]\nbackend = \"redis\"\nredis_url = \"redis://:wrong@127.0.0.1:{port}\"\n"
    );
    let (code, stdout, stderr) = check(&text, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stdout.contains("ok"), "{stdout}");
    assert!(
        stderr.contains("[store].redis_url: Redis refused its password"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong"),
        "the password is not printed: {stderr}"
    );
    let dir = TempDir::new("cli-redis-password");
    std::fs::write(dir.path().join("gateway.toml"), &text).unwrap();
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["run", "-c", "gateway.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("Redis refused its password"), "{stderr}");
    assert!(!stderr.contains("wrong@"), "{stderr}");
}

/// A location of an included nginx file that a `[[routes]]` entry already is: the error, at
/// the file's line, names the route's line in `gateway.toml` too.
#[test]
fn a_file_location_that_a_route_already_is_names_both() {
    let (code, _, stderr) = check_with_files(
        &format!(
            "{BASE}[[routes]]\nlocation = \"/sidebar/\"\nupstream = \"crm\"\n[nginx]\ninclude = [\"crm.conf\"]\n"
        ),
        &[(
            "crm.conf",
            "location /sidebar/ { proxy_pass http://127.0.0.1:9000; }\n",
        )],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("crm.conf:1:1: duplicate location \"/sidebar/\" (also at gateway.toml:"),
        "{stderr}"
    );
}

/// A table or key written twice (a README snippet with its own `[session]` pasted below a file
/// that has one): the error names it and says what to do.
#[test]
fn a_table_written_twice_is_named_with_what_to_do() {
    let session = "[session]\nsecret = \"test-session-secret-0123456789abcdef\"\n";
    let (code, _, stderr) = check(
        &format!("{BASE}{session}[session]\npolicy_ttl = \"5m\"\n"),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "duplicate key `session`: it is written twice; write the table once, with the keys of both"
        ),
        "{stderr}"
    );
    // `[routes]` for `[[routes]]`, alone and written for a second route: one entry per
    // `[[routes]]`.
    let (code, _, stderr) = check(
        &format!("{BASE}[routes]\nlocation = \"/a/\"\nupstream = \"crm\"\n"),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("each entry is its own [[routes]] (two brackets)"),
        "{stderr}"
    );
    let (code, _, stderr) = check(
        &format!("{BASE}[routes]\nlocation = \"/a/\"\nupstream = \"crm\"\n[routes]\nlocation = \"/b/\"\nupstream = \"crm\"\n"),
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("duplicate key `routes`: it is written twice; each entry is its own [[routes]] (two brackets)"),
        "{stderr}"
    );
    let (code, _, stderr) = check(&format!("{BASE}{session}ttl = \"8h\"\nttl = \"1h\"\n"), &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("duplicate key `ttl`: it is written twice; keep one"),
        "{stderr}"
    );
    // Under a minute a session is over before the pages it signed in for (under a second, when
    // it opens): sign-ins would loop. Past 30 days, the records that end sessions early would
    // have to be kept as long.
    for (ttl, refused) in [
        ("900ms", Some("expected at least \"1m\"")),
        ("59s", Some("expected at least \"1m\"")),
        ("1m", None),
        ("30d", None),
        ("31d", Some("expected at most \"30d\"")),
    ] {
        let (code, _, stderr) = check(&format!("{BASE}{session}ttl = \"{ttl}\"\n"), &[]);
        match refused {
            Some(why) => {
                assert_eq!(code, 2, "{ttl}: {stderr}");
                assert!(
                    stderr.contains(&format!("[session].ttl: {why}")),
                    "{ttl}: {stderr}"
                );
            }
            None => assert_eq!(code, 0, "{ttl}: {stderr}"),
        }
    }
}

/// `demo` where there is no `gateway.toml` runs the built-in configuration from a directory of
/// its own, and a stop signal (which ends the process without returning to `main`) removes it.
/// (The built-in configuration's fixed ports: no other test binds them.)
#[test]
fn a_demo_on_its_built_in_configuration_leaves_no_directory_behind() {
    let tmp = TempDir::new("demo-tmp");
    let cwd = TempDir::new("demo-cwd");
    let mut child = Command::new(bin())
        .arg("demo")
        .current_dir(cwd.path())
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ours = || {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("wecom-gateway-demo-")
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while common::http_get_status(9090, "/healthz") != Some(200) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the demo did not start (a port of the built-in configuration taken?)"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the demo never got ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(ours(), 1, "its configuration is written");
    // SAFETY: kill only sends a signal to the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the demo did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(ours(), 0, "removed when it stopped");
}

/// Two apps whose callbacks share a Token and EncodingAESKey load, with a warning naming both:
/// a message for one verifies at the other's URL.
#[test]
fn two_apps_sharing_a_callback_key_are_warned_about() {
    let app = |name: &str, agent: u32| {
        format!(
            "[apps.{name}]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = {agent}\nsecret = \"s\"\n\
             callback = {{ token = \"T0ken\", encoding_aes_key = \"jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C\", forward = \"crm\", forward_path = \"/cb\" }}\n"
        )
    };
    let session = "[session]\nsecret = \"0123456789abcdef0123456789abcdef\"\nassertion_secret = \"0123456789abcdef0123456789abcdef\"\n";
    let (code, _, stderr) = check(
        &format!("{BASE}{session}{}{}", app("a", 1), app("b", 2)),
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning: [apps.a] and [apps.b]: their callbacks share a token"),
        "{stderr}"
    );
    assert!(!stderr.contains("T0ken"), "{stderr}");
    let (code, _, stderr) = check(&format!("{BASE}{session}{}", app("a", 1)), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

/// A callback's `forward_path` that a public route or an nginx location also proxies to the
/// same upstream loads, with a warning: anyone can post a made-up event to the CRM's receiver.
#[test]
fn a_forward_path_served_to_anyone_is_warned_about() {
    let app = "[apps.a]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"s\"\n\
               callback = { token = \"T0ken\", encoding_aes_key = \"jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C\", forward = \"crm\", forward_path = \"/wecom/cb?x=1\" }\n";
    let session = "[session]\nsecret = \"0123456789abcdef0123456789abcdef\"\nassertion_secret = \"0123456789abcdef0123456789abcdef\"\n";
    let other = "[upstreams.other]\nurl = \"http://127.0.0.1:9001\"\n";
    let public = |up: &str| format!("[[routes]]\nlocation = \"/\"\nupstream = \"{up}\"\n");
    let guarded = "[[routes]]\nlocation = \"= /wecom/cb\"\nupstream = \"crm\"\nlogin = \"a\"\n";
    let warned = "warning: [apps.a].callback.forward_path /wecom/cb is also served to anyone by";
    for (what, routes, nginx, want) in [
        (
            "a public route",
            public("crm"),
            None,
            Some("[[routes]] location \"/\""),
        ),
        (
            "in a login area",
            format!("{guarded}{}", public("crm")),
            None,
            None,
        ),
        ("another upstream", public("other"), None, None),
        (
            "an nginx location",
            public("other"),
            Some("location /wecom/ {\n    proxy_pass http://crm;\n}\n"),
            Some("the location at legacy.conf:2"),
        ),
    ] {
        let include = if nginx.is_some() {
            "[nginx]\ninclude = [\"legacy.conf\"]\n"
        } else {
            ""
        };
        let files: Vec<(&str, &str)> = nginx.map(|n| ("legacy.conf", n)).into_iter().collect();
        let (code, _, stderr) = check_with_files(
            &format!("{BASE}{other}{session}{app}{routes}{include}"),
            &files,
            &[],
        );
        assert_eq!(code, 0, "{what}: {stderr}");
        match want {
            Some(by) => assert!(
                stderr.contains(&format!("{warned} {by}:")),
                "{what}: {stderr}"
            ),
            None => assert!(!stderr.contains("warning"), "{what}: {stderr}"),
        }
    }
}

/// An app's name is a URL path segment (its callback URL, the qyapi prefix): one no URL can
/// name (`..`, `a/b`, a space) is refused at its table, not loaded as an app nobody reaches.
#[test]
fn an_app_name_no_url_can_carry_is_refused() {
    let app = |name: &str| {
        format!("[apps.\"{name}\"]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"s\"\n")
    };
    for bad in ["..", "a/b", "a b", "%2e", "", "crm?x"] {
        let (code, _, stderr) = check(&format!("{BASE}{}", app(bad)), &[]);
        assert_eq!(code, 2, "{bad:?}: {stderr}");
        assert!(
            stderr.contains("an app's name is up to 64 letters"),
            "{bad:?}: {stderr}"
        );
    }
    for good in ["crm", "crm-2", "crm_v2", "crm.v2"] {
        let (code, _, stderr) = check(&format!("{BASE}{}", app(good)), &[]);
        assert_eq!(code, 0, "{good:?}: {stderr}");
    }
}

/// `check` says what `run` says of callbacks on the `memory` store: lost at a restart.
#[test]
fn callbacks_on_the_memory_store_are_warned_about_by_check() {
    let app = "[apps.a]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"s\"\n\
               callback = { token = \"T0ken\", encoding_aes_key = \"jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C\", forward = \"crm\", forward_path = \"/cb\" }\n";
    let session = "[session]\nsecret = \"0123456789abcdef0123456789abcdef\"\nassertion_secret = \"0123456789abcdef0123456789abcdef\"\n";
    for (store, warned) in [("memory", true), ("local\"\npath = \"q.db", false)] {
        let (code, _, stderr) = check(
            &format!("{BASE}{session}[store]\nbackend = \"{store}\"\n{app}"),
            &[],
        );
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(
            stderr.contains(
                "warning: [store] backend = \"memory\": callbacks WeCom was told \"success\" for are lost at a restart (a)"
            ),
            warned,
            "{store}: {stderr}"
        );
    }
}

/// A named location written twice loads (nginx takes the first, and answers with it), with a
/// warning naming both: in two included files the gateway joins into one server, the second
/// file's fallback goes to the first file's location.
#[test]
fn a_named_location_written_twice_is_warned_about() {
    let (code, _, stderr) = check_with_files(
        &format!("{BASE}[nginx]\ninclude = [\"one.conf\", \"two.conf\"]\n"),
        &[
            (
                "one.conf",
                "location /one/ { try_files $uri @app; }\nlocation @app { return 200 \"one\"; }\n",
            ),
            (
                "two.conf",
                "location /two/ { try_files $uri @app; }\nlocation @app { return 200 \"two\"; }\n",
            ),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("warning: location @app at two.conf:2")
            && stderr.contains("never answers: the one at one.conf:2 does"),
        "{stderr}"
    );
}

/// An nginx file's `proxy_set_header` of a header the gateway writes itself loads and is not
/// sent: `check` lists each such line, with why, so that a migrated `X-Forwarded-Proto https`
/// is not a surprise (the CRM gets `public_url`'s scheme).
#[test]
fn check_lists_the_proxy_set_headers_the_gateway_writes_over() {
    let conf = "location / {\n\
                  proxy_set_header X-Forwarded-Proto https;\n\
                  proxy_set_header X-Request-Id $request_id;\n\
                  proxy_set_header X-WeCom-UserId $arg_u;\n\
                  proxy_set_header X-Real-IP $remote_addr;\n\
                  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                  proxy_pass http://crm;\n\
                }\n";
    let (code, stdout, stderr) = check_with_files(
        &format!("{BASE}[nginx]\ninclude = [\"site.conf\"]\n"),
        &[("site.conf", conf)],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "site.conf:2: proxy_set_header X-Forwarded-Proto: the gateway writes this header itself",
        "site.conf:3: proxy_set_header X-Request-Id: the gateway writes",
        "site.conf:4: proxy_set_header X-WeCom-UserId: the gateway writes",
    ] {
        assert!(stdout.contains(line), "{line}\n{stdout}");
    }
    assert!(
        !stdout.contains("X-Real-IP:") && !stdout.contains("X-Forwarded-For:"),
        "{stdout}"
    );
}

/// `proxy_pass http://$up` whose variable holds a host written in the file that no
/// `[upstreams]` entry has: `check` says those requests are 502s (they were, with a log line
/// once a minute as the only clue). One the entries have is not listed.
#[test]
fn check_names_the_variable_upstream_hosts_without_an_entry() {
    let conf = "location /a/ { set $up 127.0.0.1:9103; proxy_pass http://$up; }\n\
                location /b/ { set $known 127.0.0.1:9000; proxy_pass http://$known; }\n";
    let (code, stdout, stderr) = check_with_files(
        &format!("{BASE}[nginx]\ninclude = [\"site.conf\"]\n"),
        &[("site.conf", conf)],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(
            "site.conf:1: proxy_pass http://$up: no [upstreams] entry has 127.0.0.1:9103"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("http://$known: no"), "{stdout}");
    // A host without a port is its port 80, as requests find it.
    let (code, stdout, stderr) = check_with_files(
        &format!("{BASE}[upstreams.plain]\nurl = \"http://127.0.0.1\"\n[nginx]\ninclude = [\"site.conf\"]\n"),
        &[("site.conf", "location / { set $p 127.0.0.1; proxy_pass http://$p; }\n")],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("no [upstreams] entry"), "{stdout}");
}

/// The session's keys are any 32 bytes and more: one read from an environment variable with a
/// line end (a secret made from a file), or that begins with `$`, loads. An app's secret read
/// through `${NAME}` is not taken for a shell's `$NAME`.
#[test]
fn session_keys_are_any_bytes_and_an_environment_secret_is_no_shell_reference() {
    let text = format!(
        "{BASE}[session]\nsecret = \"${{WGW_TEST_SESSION}}\"\nassertion_secret = \"${{WGW_TEST_ASSERT}}\"\n\
         [apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"${{WGW_TEST_APP}}\"\n"
    );
    let (code, _, stderr) = check(
        &text,
        &[
            ("WGW_TEST_SESSION", "0123456789abcdef0123456789abcdef0123\n"),
            ("WGW_TEST_ASSERT", "$x7Kq9ZpL2mN4vB8cR1tY6wE3uI0oA5sD"),
            ("WGW_TEST_APP", "$appSecretStartingWithDollar"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
}

/// A public route inside a prefix area that a regex area of another app may also take: check's
/// table names both, since nginx's order (the regex first) decides path by path.
#[test]
fn a_public_route_under_two_areas_names_both() {
    let apps = "[session]\nsecret = \"0123456789abcdef0123456789abcdef\"\n\
                [apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"s\"\n\
                [apps.other]\nkind = \"wecom\"\ncorp_id = \"ww2\"\nagent_id = 2\nsecret = \"s\"\n";
    let routes = "[[routes]]\nlocation = \"/app/\"\nupstream = \"crm\"\nlogin = \"crm\"\n\
                  [[routes]]\nlocation = \"~ ^/a\"\nupstream = \"crm\"\nlogin = \"other\"\n\
                  [[routes]]\nlocation = \"/app/x/\"\nupstream = \"crm\"\n";
    let (code, stdout, stderr) = check(&format!("{BASE}{apps}{routes}"), &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("/app/x/"))
        .unwrap_or_default();
    assert!(
        row.contains("public, inside /app/: login=crm; may overlap ~ ^/a: login=other"),
        "{stdout}"
    );
}

/// `check --online` asks WeCom, from this host, whether it takes each app's credentials: the
/// secrets accepted; a wrong secret, an untrusted address (60020) and an API it cannot reach
/// each named with what to do, exit 2; a WeChat app is asked for its `stable_token`, never
/// `cgi-bin/token` (a new one of those would end the running instances' one). No secret in
/// what it prints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_asks_wecom_whether_it_takes_each_apps_credentials() {
    use common::apps::{apps_toml, App};
    let scenario = emulator::Scenario::demo();
    let ids = common::world::Ids::of(&scenario);
    let emu = emulator::Emulator::start("127.0.0.1:0".parse().unwrap(), scenario)
        .await
        .unwrap();
    let emu_url = emu.base_url();
    let dir = TempDir::new("cli-online");
    let path = dir.path().join("gateway.toml");
    let online = |apps: Vec<App>| {
        let text = format!(
            "{BASE}[session]\nsecret = \"{}\"\n{}",
            common::apps::SESSION_SECRET,
            apps_toml(&apps, &ids, &emu_url)
        );
        std::fs::write(&path, text).unwrap();
        let path = path.clone();
        async move {
            let out = tokio::task::spawn_blocking(move || {
                Command::new(bin())
                    .args(["check", "--online", "-c"])
                    .arg(&path)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        }
    };
    let (code, out) = online(vec![App::wecom("crm").contact(), App::mp("mp")]).await;
    assert_eq!(code, 0, "{out}");
    for line in [
        "online: apps.crm: secret accepted\n",
        "online: apps.crm: contact_secret accepted\n",
        "online: apps.mp: secret accepted\n",
    ] {
        assert!(out.contains(line), "{line}\n{out}");
    }
    let (code, out) = online(vec![App::mp("mp").secret("not-the-mp-secret")]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("online: apps.mp: secret: provider answered errcode 40125"),
        "{out}"
    );
    assert!(
        out.contains("the AppSecret is not the account's current one"),
        "{out}"
    );
    assert!(!out.contains("not-the-mp-secret"), "{out}");
    let calls: serde_json::Value = reqwest::get(format!("{emu_url}/_emulator/calls"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(calls["calls"].get("/cgi-bin/token").is_none(), "{calls}");
    assert_eq!(
        calls["calls"]["/cgi-bin/stable_token"]["total"], 2,
        "{calls}"
    );

    let (code, out) = online(vec![App::wecom("crm").secret("not-the-secret")]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("online: apps.crm: secret: provider answered errcode 40001"),
        "{out}"
    );
    assert!(
        out.contains("the secret is not the app's current one (应用管理 → the app → Secret"),
        "{out}"
    );
    assert!(!out.contains("not-the-secret"), "{out}");

    // WeCom's trusted-IP list refusing this host.
    reqwest::Client::new()
        .post(format!("{emu_url}/_emulator/faults"))
        .json(&serde_json::json!({"api": "/cgi-bin/gettoken", "errcode": 60020, "count": 1}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let (code, out) = online(vec![App::wecom("crm")]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("errcode 60020"), "{out}");
    assert!(
        out.contains("this host's address is not among the app's trusted IPs"),
        "{out}"
    );

    let (code, out) = online(vec![App::wecom("crm").api_base("http://127.0.0.1:1")]).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("this host does not reach http://127.0.0.1:1"),
        "{out}"
    );
}

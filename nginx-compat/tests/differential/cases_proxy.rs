//! The proxy module's corpus: `proxy_pass` with and without a URI part and with variables,
//! `proxy_set_header` and its defaults, `proxy_redirect`, `proxy_intercept_errors`, upstream
//! failures and timeouts under `error_page`, `add_header`/`expires` on proxied answers,
//! `client_max_body_size`, `allow`/`deny`, `limit_except`.

use super::Group;

pub const GROUPS: &[Group] = &[
    Group::new(
        "uri-part",
        r#"
            location /api/ { proxy_pass http://{{UP}}/; }
            location /v1/ { proxy_pass http://{{UP}}/backend/v1/; }
            location /short { proxy_pass http://{{UP}}/long/path; }
            location = /exact { proxy_pass http://{{UP}}/other; }
            location /plain/ { proxy_pass http://{{UP}}; }
            location /q/ { proxy_pass http://{{UP}}/x?fixed=1; }
            location / { return 200 "root $uri"; }"#,
        &[
            "GET /api/users",
            "GET /api/users?page=2&size=10",
            "GET /api/",
            "GET /api",
            "GET /api?x=1",
            "GET /api/a%20b",
            "GET /api/a%2Fb",
            "GET /api/./users/../orders",
            "GET /api//double",
            "GET /api/%E4%B8%AD%E6%96%87",
            "GET /api/a+b?c=d+e",
            "GET /v1/x/y",
            "GET /v1/",
            "GET /short",
            "GET /shortcut/more",
            "GET /exact",
            "GET /exact?k=v",
            "GET /plain/a%20b/../c?z",
            "GET /plain/x",
            "GET /q/rest?a=b",
            "POST /api/upload | Content-Length: 5",
            "HEAD /api/users",
            "DELETE /api/users/7",
        ],
    ),
    Group::new(
        "uri-part-rewrite",
        r#"
            location /r/ {
                rewrite ^/r/(.*)$ /rewritten/$1 break;
                proxy_pass http://{{UP}}/base/;
            }
            location /l/ {
                rewrite ^/l/(.*)$ /api/$1 last;
            }
            location /api/ { proxy_pass http://{{UP}}/srv/; }
            location /n/ {
                rewrite ^/n/(.*)$ /n/changed/$1;
                proxy_pass http://{{UP}}/nn/;
            }"#,
        &[
            "GET /r/a/b?x=1",
            "GET /r/a%20b",
            "GET /l/one?two=2",
            "GET /l/s%20p",
            "GET /n/x",
            "GET /n/changed/x",
        ],
    ),
    Group::new(
        "variables",
        r#"
            location ~ ^/re/(?<rest>.*)$ { proxy_pass http://{{UP}}/inner/$rest$is_args$args; }
            location /ru/ { proxy_pass http://{{UP}}$request_uri; }
            location /vu/ { set $target "/t"; proxy_pass http://{{UP}}$target; }
            location /ve/ { set $empty ""; proxy_pass http://{{UP}}$empty; }
            location ~ \.php$ { proxy_pass http://{{UP}}; }"#,
        &[
            "GET /re/a/b",
            "GET /re/a/b?c=1",
            "GET /re/%41x",
            "GET /ru/x%20y?z=1",
            "GET /ru/../ru/dots",
            "GET /vu/anything?q",
            "GET /ve/kept%20raw?q=1",
            "GET /index.php?id=3",
            "GET /a/b/../c.php",
        ],
    ),
    Group::new(
        "proxy-set-header",
        r#"
            proxy_set_header X-Server-Level yes;
            location /default/ { proxy_pass http://{{UP}}; proxy_set_header Host $host; }
            location /inherit/ { proxy_pass http://{{UP}}; }
            location /host/ {
                proxy_set_header Host $host:$server_port;
                proxy_set_header X-Real-IP $remote_addr;
                proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                proxy_set_header X-Forwarded-Proto $scheme;
                proxy_set_header X-Original-URI $request_uri;
                proxy_pass http://{{UP}};
            }
            location /remove/ {
                proxy_set_header Accept-Encoding "";
                proxy_set_header User-Agent "";
                proxy_pass http://{{UP}};
            }
            location /conn/ {
                proxy_set_header Connection "keep-alive";
                proxy_set_header X-Twice a;
                proxy_set_header X-Twice b;
                proxy_pass http://{{UP}};
            }
            location /ph/ { proxy_set_header X-PH "$proxy_host|$proxy_port"; proxy_pass http://{{UP}}/p/; }"#,
        &[
            "GET /default/x | Host: example.com",
            "GET /inherit/x | X-Custom: 1 | Accept-Encoding: gzip",
            "GET /inherit/x | Keep-Alive: 300 | TE: trailers | Expect: 100-continue",
            "GET /host/a?b=c | X-Forwarded-For: 10.0.0.1",
            "GET /host/a | X-Forwarded-For: 10.0.0.1 | X-Forwarded-For: 10.0.0.2",
            "GET /host/a",
            "GET /host/a | Host: crm.example.com:8443",
            "GET /remove/x | Accept-Encoding: gzip, br | User-Agent: curl/8 | X-Kept: yes",
            "GET /conn/x | Connection: close",
            "GET /ph/x",
            "POST /inherit/form | Content-Length: 11 | Content-Type: application/x-www-form-urlencoded",
        ],
    ),
    Group {
        name: "websocket-map",
        http: r#"
            map $http_upgrade $connection_upgrade { default upgrade; '' close; }
            map $uri $mapped { /m/a alpha; ~^/m/(?<n>\d+)$ num-$n; ~*^/M/X X-ANY; default other; }"#,
        body: r#"
            location /ws/ {
                proxy_http_version 1.1;
                proxy_set_header Upgrade $http_upgrade;
                proxy_set_header Connection $connection_upgrade;
                proxy_set_header Host $host;
                proxy_read_timeout 3600s;
                proxy_pass http://{{UP}};
            }
            location /m/ { return 200 "$mapped"; }"#,
        requests: &[
            "GET /ws/chat | Upgrade: websocket | Connection: Upgrade",
            "GET /ws/chat",
            "GET /ws/chat | Upgrade: WebSocket",
            "GET /m/a",
            "GET /m/A",
            "GET /m/42",
            "GET /m/x",
            "GET /m/b",
        ],
    },
    Group {
        name: "map-hostnames",
        http: r#"
            map $http_host $tenant {
                hostnames;
                default common;
                crm.example.com main;
                .a.example.com tenant-a;
                *.b.example.com tenant-b;
                *.x.b.example.com tenant-xb;
                www.example.* www-any;
                ~^(?<t>[a-z]+)\.c\.example\.com$ c-$t;
            }"#,
        body: r#"location / { return 200 "$tenant"; }"#,
        requests: &[
            "GET / | Host: crm.example.com",
            "GET / | Host: CRM.Example.COM",
            "GET / | Host: crm.example.com.",
            "GET / | Host: a.example.com",
            "GET / | Host: one.a.example.com",
            "GET / | Host: two.one.a.example.com",
            "GET / | Host: b.example.com",
            "GET / | Host: one.b.example.com",
            "GET / | Host: y.x.b.example.com",
            "GET / | Host: x.b.example.com",
            "GET / | Host: www.example.org",
            "GET / | Host: www.example.co.uk",
            "GET / | Host: www.example",
            "GET / | Host: one.c.example.com",
            "GET / | Host: other.example.net",
        ],
    },
    Group::new(
        "proxy-redirect",
        r#"
            location /d/ { proxy_pass http://{{UP}}/inner/; }
            location /n/ { proxy_pass http://{{UP}}; }
            location /off/ { proxy_pass http://{{UP}}/inner/; proxy_redirect off; }
            location /custom/ {
                proxy_pass http://{{UP}};
                proxy_redirect http://backend.internal/ /custom/;
                proxy_redirect ~^http://old\.example/(.*)$ https://new.example/$1;
            }
            location /rel/ { absolute_redirect off; proxy_pass http://{{UP}}/inner/; }"#,
        &[
            "GET /d/x | X-Echo-Status: 302 | X-Echo-Location: http://{{UP}}/inner/login?next=1",
            "GET /d/x | X-Echo-Status: 301 | X-Echo-Location: http://{{UP}}/elsewhere",
            "GET /d/x | X-Echo-Status: 302 | X-Echo-Location: /relative",
            "GET /n/x | X-Echo-Status: 302 | X-Echo-Location: http://{{UP}}/page",
            "GET /n/x | X-Echo-Status: 302 | X-Echo-Location: http://other/page",
            "GET /off/x | X-Echo-Status: 302 | X-Echo-Location: http://{{UP}}/inner/login",
            "GET /custom/x | X-Echo-Status: 302 | X-Echo-Location: http://backend.internal/a/b",
            "GET /custom/x | X-Echo-Status: 302 | X-Echo-Location: http://old.example/z?q=1",
            "GET /custom/x | X-Echo-Status: 302 | X-Echo-Location: http://third/",
            "GET /rel/x | X-Echo-Status: 302 | X-Echo-Location: http://{{UP}}/inner/in",
        ],
    ),
    Group::new(
        "intercept",
        r#"
            error_page 404 /404.html;
            error_page 500 502 503 504 /50x.html;
            location = /404.html { root {{ROOT}}/www; }
            location = /50x.html { root {{ROOT}}/www; }
            location /on/ { proxy_intercept_errors on; proxy_pass http://{{UP}}; }
            location /off/ { proxy_pass http://{{UP}}; }
            location /eq/ {
                proxy_intercept_errors on;
                error_page 404 = /fallback/;
                error_page 403 =200 /fallback/;
                error_page 418 =302 http://teapot.example/;
                proxy_pass http://{{UP}};
            }
            location /fallback/ { return 200 "fallback $uri $request_method"; }
            location /named/ { proxy_intercept_errors on; error_page 404 = @up; proxy_pass http://{{UP}}/first/; }
            location @up { proxy_pass http://{{UP}}; }"#,
        &[
            "GET /on/x | X-Echo-Status: 404",
            "GET /on/x | X-Echo-Status: 500",
            "GET /on/x | X-Echo-Status: 503",
            "GET /on/x | X-Echo-Status: 403",
            "GET /on/x | X-Echo-Status: 200",
            "HEAD /on/x | X-Echo-Status: 404",
            "GET /off/x | X-Echo-Status: 404",
            "GET /off/x | X-Echo-Status: 502",
            "GET /eq/x | X-Echo-Status: 404",
            "POST /eq/x | X-Echo-Status: 404 | Content-Length: 3",
            "GET /eq/x | X-Echo-Status: 403",
            "GET /eq/x | X-Echo-Status: 418",
            "GET /named/x?a=1 | X-Echo-Status: 404",
        ],
    ),
    Group::new(
        "upstream-failure",
        r#"
            location /dead/ { proxy_pass http://{{DEAD}}; }
            location /dead-page/ { error_page 502 /50x.html; proxy_pass http://{{DEAD}}; }
            location = /50x.html { root {{ROOT}}/www; }
            location /dead-named/ { error_page 502 = @backup; proxy_pass http://{{DEAD}}/x/; }
            location @backup { proxy_pass http://{{UP}}; }
            location /slow/ { proxy_read_timeout 200ms; proxy_pass http://{{UP}}; }
            location /slow-page/ {
                proxy_read_timeout 200ms;
                error_page 504 =503 /maint;
                proxy_pass http://{{UP}};
            }
            location /maint { return 503 "maintenance"; }
            location /timeouts/ {
                proxy_connect_timeout 2s;
                proxy_send_timeout 3s;
                proxy_read_timeout 5s;
                proxy_pass http://{{UP}};
            }"#,
        &[
            "GET /dead/x",
            "GET /dead-page/x",
            "HEAD /dead-page/x",
            "GET /dead-named/x?y=1",
            "GET /slow/x | X-Echo-Delay-Ms: 1000",
            "GET /slow-page/x | X-Echo-Delay-Ms: 1000",
            "GET /timeouts/x",
        ],
    ),
    Group::new(
        "proxy-headers-out",
        r#"
            add_header X-Server-Header server;
            location /a/ { proxy_pass http://{{UP}}; }
            location /b/ { add_header X-Loc b; add_header X-Always yes always; proxy_pass http://{{UP}}; }
            location /c/ { expires 1h; proxy_pass http://{{UP}}; }
            location /d/ { expires modified 1d; proxy_pass http://{{UP}}; }
            location /e/ { add_header Cache-Control "no-store"; proxy_pass http://{{UP}}; }
            location /f/ { expires -1; add_header X-Uri $uri; proxy_pass http://{{UP}}; }"#,
        &[
            "GET /a/x",
            "GET /a/x | X-Echo-Status: 404",
            "GET /b/x",
            "GET /b/x | X-Echo-Status: 500",
            "GET /b/x | X-Echo-Status: 301 | X-Echo-Location: /y",
            "GET /c/x",
            "GET /c/x | X-Echo-Cache-Control: private | X-Echo-Expires: 0",
            "GET /c/x | X-Echo-Status: 404",
            "GET /d/x | X-Echo-Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT",
            "GET /d/x",
            "GET /e/x | X-Echo-Cache-Control: public",
            "GET /f/x",
        ],
    ),
    Group::new(
        "http-version",
        r#"
            location /one/ { proxy_pass http://{{UP}}; }
            location /eleven/ { proxy_http_version 1.1; proxy_pass http://{{UP}}; }"#,
        &["GET /one/x", "GET /eleven/x", "POST /eleven/x | Content-Length: 2"],
    ),
    Group::new(
        "body-size",
        r#"
            client_max_body_size 10;
            location /small/ { proxy_pass http://{{UP}}; }
            location /big/ { client_max_body_size 100; proxy_pass http://{{UP}}; }
            location /none/ { client_max_body_size 0; proxy_pass http://{{UP}}; }
            location /page/ { error_page 413 /too-big; proxy_pass http://{{UP}}; }
            location /too-big { return 200 "too big"; }"#,
        &[
            "POST /small/x | Content-Length: 10",
            "POST /small/x | Content-Length: 11",
            "POST /big/x | Content-Length: 50",
            "POST /big/x | Content-Length: 101",
            "POST /none/x | Content-Length: 500",
            "POST /page/x | Content-Length: 20",
            "GET /small/x",
        ],
    ),
    Group::new(
        "access",
        r#"
            location /open/ { return 200 "open"; }
            location /deny/ { deny 127.0.0.1; proxy_pass http://{{UP}}; }
            location /allow/ { allow 127.0.0.0/8; deny all; proxy_pass http://{{UP}}; }
            location /other-net/ { allow 10.0.0.0/8; deny all; return 200 "rewrite runs first"; }
            location /other-net2/ { allow 10.0.0.0/8; deny all; proxy_pass http://{{UP}}; }
            location /all/ { deny all; error_page 403 /forbidden; try_files $uri =404; }
            location /forbidden { return 200 "you may not"; }
            location /v6/ { deny ::1; allow all; proxy_pass http://{{UP}}; }
            location /nested/ { deny all; location /nested/ok/ { allow all; proxy_pass http://{{UP}}; } }"#,
        &[
            "GET /open/x",
            "GET /deny/x",
            "GET /allow/x",
            "GET /other-net/x",
            "GET /other-net2/x",
            "GET /all/x",
            "GET /v6/x",
            "GET /nested/x",
            "GET /nested/ok/x",
        ],
    ),
    Group::new(
        "limit-except",
        r#"
            location /ro/ { limit_except GET { deny all; } proxy_pass http://{{UP}}; }
            location /post/ { limit_except POST PUT { allow 10.0.0.0/8; deny all; } proxy_pass http://{{UP}}; }
            location /local/ { limit_except GET { allow 127.0.0.1; deny all; } proxy_pass http://{{UP}}; }
            location /ret/ { limit_except GET { deny all; } return 200 "x"; }
            location /rw/ { limit_except GET { deny all; } rewrite ^ /ok/ last; }
            location /if/ { limit_except GET { deny all; } if ($request_method = POST) { return 200 "if"; } proxy_pass http://{{UP}}; }
            location /set/ { limit_except GET { allow 127.0.0.1; deny all; } set $v 1; return 200 "set $v"; }
            location /ok/ { return 200 "ok"; }"#,
        &[
            "POST /ret/x",
            "GET /ret/x",
            "DELETE /rw/x",
            "GET /rw/x",
            "POST /if/x",
            "GET /if/x",
            "POST /set/x",
            "GET /set/x",
            "GET /ro/x",
            "HEAD /ro/x",
            "POST /ro/x | Content-Length: 1",
            "DELETE /ro/x",
            "OPTIONS /ro/x",
            "POST /post/x | Content-Length: 1",
            "GET /post/x",
            "PATCH /local/x",
        ],
    ),
    Group::new(
        "if-configuration-proxy",
        r#"
            location /api/ {
                proxy_pass http://{{UP}}/;
                if ($arg_x) { set $d 1; }
            }
            location /b/ {
                if ($arg_x) { add_header X-If b; }
                proxy_pass http://{{UP}}/u/;
                add_header X-Loc b;
            }
            location /own/ {
                if ($arg_x) { proxy_pass http://{{UP}}; }
                return 200 "no if";
            }
            location /files/ {
                if ($arg_x) { proxy_pass http://{{UP}}; }
                try_files $uri =404;
            }"#,
        &[
            "GET /api/x?x=1",
            "GET /api/x",
            "GET /b/x?x=1",
            "GET /b/x",
            "GET /own/x?x=1",
            "GET /own/x",
            "GET /files/x?x=1",
            "GET /files/x",
        ],
    ),
];

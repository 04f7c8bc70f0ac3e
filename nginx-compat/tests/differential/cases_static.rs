//! The core module's corpus beyond rewriting: static files (`root`, `alias`, `index`,
//! `try_files`, methods, directories), named locations, `error_page` in all its forms,
//! `return` edge cases (444, a bare redirect code, no text), `set $args`, `internal`,
//! `if (-f ...)`, `add_header`/`expires` on local answers, PCRE's match limit, and the
//! `Content-Type` `types`/`default_type` give `return` answers and files.

use super::Group;

pub const GROUPS: &[Group] = &[
    // Server-level, not http-level: one nginx serves every group, and the others must keep
    // nginx's compiled-in types (gzip_types reads them).
    Group::new(
        "types",
        r#"
            root {{ROOT}}/www;
            include /etc/nginx/mime.types;
            default_type application/octet-stream;
            location = /health { return 200 "ok"; }
            location /ret/ { return 200 "r"; }
            location /empty/ { return 200 ""; }
            location /none/ { return 200; }
            location /gone/ { return 404 "gone"; }
            location /dt/ {
                default_type text/x-dt;
                types { text/x-own own; }
                return 200 "d";
            }
            location /rw/ { rewrite ^/rw/(.*)$ /ret/$1.json; }
            location /ep/ { error_page 404 = /ret/e.css; return 404; }
            location / { }"#,
        &[
            "GET /health",
            "GET /ret/a.png",
            "GET /ret/a.json",
            "GET /ret/A.PNG",
            "GET /ret/a.JsOn?x=1",
            "GET /ret/x",
            "GET /ret/a.",
            "GET /ret/.png",
            "GET /ret/..png",
            "GET /ret/...png",
            "GET /ret/....png",
            "GET /ret/a%2Ejs",
            "GET /ret/a.png%3Fb",
            "GET /ret/a.tar.gz",
            "GET /ret/a.svg/",
            "HEAD /ret/a.css",
            "GET /empty/a.png",
            "GET /empty/",
            "GET /none/a.png",
            "GET /gone/a.png",
            "GET /dt/a.own",
            "GET /dt/a.png",
            "GET /dt/a.html",
            "GET /dt/x",
            "GET /rw/a.png",
            "GET /ep/a.png",
            "GET /",
            "GET /index.html",
            "GET /app.js",
            "GET /style.css",
            "GET /assets/logo.png",
            "GET /assets/app.1234.js",
            "GET /a%20b.txt",
            "GET /missing.png",
        ],
    ),
    Group::new(
        "static",
        r#"
            root {{ROOT}}/www;
            location / { }
            location /assets/ { expires 30d; add_header X-Static yes; }"#,
        &[
            "GET /",
            "GET /index.html",
            "HEAD /index.html",
            "POST /index.html | Content-Length: 1",
            "PUT /index.html | Content-Length: 1",
            "DELETE /index.html",
            "OPTIONS /",
            "POST /missing.html | Content-Length: 1",
            "POST /assets | Content-Length: 1",
            "GET /assets",
            "GET /assets?v=2",
            "GET /assets/",
            "GET /assets/logo.png",
            "GET /assets/missing.png",
            "GET /docs/",
            "GET /docs",
            "GET /empty/",
            "GET /empty",
            "GET /nothere/",
            "GET /a%20b.txt",
            "GET /a b.txt",
            "GET /app.js?x=1",
            "GET /index.html/",
            "PUT /docs/ | Content-Length: 1",
            "GET /%61pp.js",
        ],
    ),
    Group::new(
        "spa",
        r#"
            root {{ROOT}}/www/spa;
            location / { try_files $uri $uri/ /index.html; }
            location /api/ { proxy_pass http://{{UP}}; }"#,
        &[
            "GET /",
            "GET /customer/42",
            "GET /customer/42?tab=1",
            "GET /main.js",
            "GET /index.html",
            "GET /api/list?q=1",
            "POST /customer | Content-Length: 1",
            "HEAD /deep/link",
        ],
    ),
    Group::new(
        "spa-dirs",
        r#"
            root {{ROOT}}/www;
            index index.html index.htm;
            location / { try_files $uri $uri/ /spa/index.html; }"#,
        &[
            "GET /assets",
            "GET /assets/",
            "GET /assets?v=1",
            "GET /docs",
            "GET /docs/",
            "GET /empty/",
            "GET /no/such/route",
            "GET /app.js",
            "HEAD /",
            "POST /docs/ | Content-Length: 1",
        ],
    ),
    Group::new(
        "try-files-forms",
        r#"
            root {{ROOT}}/www;
            location /code/ { try_files $uri =404; }
            location /code418/ { try_files $uri =418; }
            location /named/ { try_files $uri @fallback; }
            location /uri/ { try_files $uri /fallback?from=$uri; }
            location /dir/ { try_files $uri/ =403; }
            location /assets/ { try_files $uri $uri/index.html @fallback; }
            location /fallback { return 200 "fallback $uri|$args"; }
            location @fallback { return 200 "named $uri|$args|$request_method"; }"#,
        &[
            "GET /code/x",
            "GET /code418/x",
            "GET /named/x?a=1",
            "POST /named/x | Content-Length: 1",
            "GET /uri/x?keep=no",
            "GET /dir/",
            "GET /dir/x",
            "GET /assets/logo.png",
            "GET /assets/none",
        ],
    ),
    Group::new(
        "alias",
        r#"
            location /files/ { alias {{ROOT}}/www/alias-target/; }
            location /one { alias {{ROOT}}/www/alias-target/x.txt; }
            location ~ ^/re/(.*)$ { alias {{ROOT}}/www/alias-target/$1; }
            location /tf/ { alias {{ROOT}}/www/alias-target/; try_files $uri $uri/ =404; }"#,
        &[
            "GET /files/x.txt",
            "GET /files/sub/",
            "GET /files/sub",
            "GET /files/none",
            "GET /one",
            "GET /re/x.txt",
            "GET /re/sub",
            "GET /tf/x.txt",
            "GET /tf/sub/",
            "GET /tf/nope",
        ],
    ),
    // A location nested in an alias location maps by the alias and the outer location's name
    // (nginx merges `root` and `alias` together into a child that sets neither): a SPA's
    // `location ~* \.(js|css)$ { expires 7d; }` inside `location /admin { alias ...; }`.
    Group::new(
        "alias-nested",
        r#"
            root {{ROOT}}/www;
            location /admin/ {
                alias {{ROOT}}/www/alias-target/;
                location ~* \.(txt|html)$ { expires 7d; }
                location /admin/sub/ { add_header X-Nested yes; }
            }
            location /adm {
                alias {{ROOT}}/www/alias-target;
                try_files $uri $uri/ =404;
                location ~ \.txt$ { add_header X-Txt yes; }
            }
            location ~ ^/rx/(.*)$ {
                alias {{ROOT}}/www/alias-target/$1;
                location ~ \.txt$ { add_header X-Rx yes; }
            }
            location /own/ {
                alias {{ROOT}}/www/alias-target/;
                location /own/assets/ { root {{ROOT}}/www; }
            }"#,
        &[
            "GET /admin/x.txt",
            "GET /admin/sub/",
            "GET /admin/sub/index.html",
            "GET /admin/none.txt",
            "GET /adm/x.txt",
            "GET /adm/sub/",
            "GET /rx/x.txt",
            "GET /own/assets/logo.png",
            "GET /own/x.txt",
        ],
    ),
    Group::new(
        "error-page-forms",
        r#"
            root {{ROOT}}/www;
            error_page 404 /404.html;
            location /r404 { return 404; }
            location /r404text { return 404 "text wins"; }
            location /r403 { error_page 403 =200 /ok; return 403; }
            location /r500 { error_page 500 = @err; return 500; }
            location /r502 { error_page 502 http://status.example/down; return 502; }
            location /r503 { error_page 503 =301 https://status.example/; return 503; }
            location /r401 { error_page 401 /login?from=$uri; return 401; }
            location /r301 { error_page 301 /moved-page; return 301 /target; }
            location /ok { return 200 "ok after $uri"; }
            location /moved-page { return 200 "moved"; }
            location /login { return 200 "login $args"; }
            location @err { return 200 "named error $uri"; }
            location /nested-err { error_page 404 /also-missing; return 404; }
            location /no-pages { error_page 404 /none.html; return 404; }"#,
        &[
            "GET /r404",
            "GET /missing",
            "HEAD /missing",
            "GET /r404text",
            "GET /r403",
            "GET /r500",
            "GET /r502",
            "GET /r503",
            "GET /r401",
            "GET /r301",
            "GET /nested-err",
            "GET /no-pages",
            "POST /r404 | Content-Length: 1",
        ],
    ),
    Group::new(
        "error-page-inheritance",
        r#"
            error_page 404 /server-404;
            location /inherits { return 404; }
            location /replaces { error_page 500 /loc-500; return 404; }
            location /both { error_page 500 /loc-500; return 500; }
            location /server-404 { return 200 "server page for $uri"; }
            location /loc-500 { return 200 "location page"; }"#,
        &[
            "GET /inherits",
            "GET /replaces",
            "GET /both",
            "GET /elsewhere",
        ],
    ),
    Group::new(
        "return-edges",
        r#"
            location /close { return 444; }
            location /close-if { if ($arg_bad) { return 444; } return 200 "fine"; }
            location /bare301 { return 301; }
            location /bare302 { return 302; }
            location /r200 { return 200; }
            location /r204 { return 204; }
            location /r201 { return 201; }
            location /r304 { return 304; }
            location /r418 { return 418; }
            location /r499 { return 499; }
            location /r600 { return 600 "six hundred"; }
            location /r307 { return 307 https://x.example/; }
            location /r308 { return 308 /local; }
            location /r303 { return 303 "/see?$args"; }"#,
        &[
            "GET /close",
            "GET /close-if?bad=1",
            "GET /close-if",
            "GET /bare301",
            "HEAD /bare301",
            "GET /bare302?x=1",
            "GET /r200",
            "HEAD /r200",
            "GET /r204",
            "HEAD /r204",
            "GET /r201",
            "GET /r304",
            "GET /r418",
            "GET /r499",
            "GET /r600",
            "GET /r307",
            "GET /r308",
            "GET /r303?a=b",
        ],
    ),
    Group::new(
        "named-locations",
        r#"
            root {{ROOT}}/www;
            location / { try_files $uri @app; }
            location @app {
                rewrite ^/old/(.*)$ /new/$1 last;
                add_header X-Named app;
                proxy_pass http://{{UP}};
            }
            location /new/ { return 200 "new $uri"; }"#,
        &[
            "GET /index.html",
            "GET /dynamic/page?x=1",
            "GET /old/thing",
            "GET /a%20b/c",
            "POST /form | Content-Length: 4",
        ],
    ),
    Group::new(
        "set-args",
        r#"
            location /strip/ { set $args ""; proxy_pass http://{{UP}}; }
            location /add/ { set $args "$args&added=1"; proxy_pass http://{{UP}}; }
            location /over/ { set $args "only=1"; return 200 "$args|$arg_only|$is_args"; }
            location /uripart/ { set $args "z=9"; proxy_pass http://{{UP}}/u/; }"#,
        &[
            "GET /strip/x?a=1&b=2",
            "GET /strip/x",
            "GET /add/x?a=1",
            "GET /add/x",
            "GET /over/x?a=1",
            "GET /uripart/x?a=1",
        ],
    ),
    Group::new(
        "port-in-redirect",
        r#"
            location /on { return 301 /target; }
            location /off { port_in_redirect off; return 301 /target; }
            location /sn { server_name_in_redirect on; return 302 /t; }
            location /dir/ { proxy_pass http://{{UP}}; }"#,
        &[
            "GET /on",
            "GET /on | Host: example.com:9999",
            "GET /off | Host: example.com",
            "GET /sn | Host: other.example",
            "GET /dir",
            "GET /dir?q=1 | Host: h.example",
        ],
    ),
    Group::new(
        "headers-local",
        r#"
            add_header X-Frame-Options SAMEORIGIN;
            add_header X-Always always-on always;
            location /inherit { return 200 "i"; }
            location /own { add_header X-Own own; return 200 "o"; }
            location /err { return 404; }
            location /err-own { add_header X-E e; add_header X-EA ea always; return 500; }
            location /redir { return 302 /x; }
            location /exp { expires epoch; return 200 "e"; }
            location /exp-max { expires max; return 200 "m"; }
            location /exp-0 { expires 0; return 200 "z"; }
            location /exp-err { expires 1h; return 404; }
            location /exp-204 { expires 10m; return 204; }
            location /empty-val { add_header X-Empty ""; add_header X-Var "$arg_v"; return 200 "v"; }
            location /cc { add_header Cache-Control private; expires 5m; return 200 "cc"; }"#,
        &[
            "GET /inherit",
            "GET /own",
            "GET /err",
            "GET /err-own",
            "GET /redir",
            "GET /exp",
            "GET /exp-max",
            "GET /exp-0",
            "GET /exp-err",
            "GET /exp-204",
            "GET /empty-val",
            "GET /empty-val?v=set",
            "GET /cc",
        ],
    ),
    Group::new(
        "internal",
        r#"
            root {{ROOT}}/www;
            location /private/ { internal; return 200 "private"; }
            location /go { rewrite ^ /private/x last; }
            location /tf { try_files /nonexistent /private/y; }
            location = /maint.html { internal; }
            location /down { error_page 503 /maint.html; return 503; }"#,
        &[
            "GET /private/x",
            "GET /go",
            "GET /tf",
            "GET /maint.html",
            "GET /down",
        ],
    ),
    Group::new(
        "if-file",
        r#"
            root {{ROOT}}/www;
            location / {
                if (-f {{ROOT}}/www/maint.html) { return 503; }
                return 200 "up";
            }"#,
        &["GET /x"],
    ),
    Group::new(
        "if-file-tests",
        r#"
            root {{ROOT}}/www;
            location /f { if (-f {{ROOT}}/www$arg_p) { return 200 "file"; } return 200 "no file"; }
            location /d { if (-d {{ROOT}}/www$arg_p) { return 200 "dir"; } return 200 "no dir"; }
            location /e { if (!-e {{ROOT}}/www$arg_p) { return 200 "missing"; } return 200 "exists"; }"#,
        &[
            "GET /f?p=/index.html",
            "GET /f?p=/docs",
            "GET /d?p=/docs",
            "GET /d?p=/app.js",
            "GET /e?p=/nope",
            "GET /e?p=/app.js",
        ],
    ),
    Group::new(
        "match-limit",
        r#"
            location ~ "^/(a|aa)+$" { return 200 "matched"; }
            location / { return 200 "fallthrough"; }
            location /rw/ { rewrite "^/rw/(a|aa)+$" /done last; return 200 "no rewrite"; }
            location /done { return 200 "done"; }"#,
        &[
            "GET /aaaa",
            "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
            "GET /rw/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
            "GET /rw/aa",
            "GET /plain",
        ],
    ),
    Group::new(
        "if-configuration",
        r#"
            root {{ROOT}}/www;
            add_header X-Server server;
            location / {
                if ($http_user_agent ~* "(iphone|android)") {
                    rewrite ^/$ /spa/index.html break;
                }
                try_files $uri $uri/ /index.html;
            }
            location /r/ { if ($arg_x) { set $d 1; } try_files $uri /app.js; }
            location /api/ {
                add_header X-Loc api;
                if ($request_method = OPTIONS) {
                    add_header Access-Control-Allow-Origin *;
                    add_header Access-Control-Allow-Methods 'GET, POST, OPTIONS';
                    add_header Access-Control-Max-Age 1728000 always;
                    return 204;
                }
                return 200 "api";
            }
            location /h/ {
                add_header X-Loc h;
                if ($arg_a) { add_header X-A a; }
                if ($arg_b) { expires 1h; }
                if ($arg_c) { add_header X-C c always; return 404; }
                return 200 "h";
            }
            location /root/ {
                if ($arg_alt) { root {{ROOT}}/www/spa; error_page 404 = /fallback; }
                rewrite ^/root/(.*)$ /$1 break;
            }
            location = /fallback { return 200 "fallback"; }"#,
        &[
            "GET /x/y | User-Agent: iPhone",
            "GET /x/y",
            "GET / | User-Agent: Android",
            "GET /app.js | User-Agent: iPhone",
            "GET /r/z?x=1",
            "GET /r/z",
            "OPTIONS /api/x",
            "GET /api/x",
            "POST /api/x | Content-Length: 1",
            "GET /h/",
            "GET /h/?a=1",
            "GET /h/?b=1",
            "GET /h/?a=1&b=1",
            "GET /h/?c=1",
            "GET /h/?a=1&c=1",
            "GET /root/index.html",
            "GET /root/index.html?alt=1",
            "GET /root/main.js?alt=1",
            "GET /root/main.js",
            "GET /root/nope.js?alt=1",
        ],
    ),
    // The charset filter's label on every kind of answer: nginx's pages (never on a 301 or
    // 302), `return` texts, files, proxied answers with and without a charset of their own;
    // one spelling per charset whatever a later mention's case; `charset_types` adding to the
    // defaults or `*`; `override_charset`; `source_charset` the same as `charset`; `if`.
    Group::new(
        "charset",
        r#"
            root {{ROOT}}/www;
            include /etc/nginx/mime.types;
            charset UTF-8;
            location = /t { return 200 "t"; }
            location = /moved { return 301 /t; }
            location = /found { return 302 /t; }
            location = /tmp { return 307 /t; }
            location = /nf { return 404; }
            location = /no { return 204; }
            location /p/ { proxy_pass http://{{UP}}; }
            location /o/ { charset utf-8; override_charset on; proxy_pass http://{{UP}}; }
            location /css/ { charset_types text/css; rewrite ^/css/(.*)$ /$1 break; }
            location /any/ { charset_types *; rewrite ^/any/(.*)$ /$1 break; }
            location /off/ { charset off; return 200 "o"; }
            location /same/ { source_charset utf-8; return 200 "s"; }
            location /if/ { if ($arg_k) { charset gbk; } return 200 "i"; }
            location / { }"#,
        &[
            "GET /t",
            "GET /moved",
            "GET /found",
            "GET /tmp",
            "GET /nf",
            "GET /no",
            "GET /",
            "GET /index.html",
            "HEAD /index.html",
            "GET /app.js",
            "GET /style.css",
            "GET /assets/logo.png",
            "GET /missing.html",
            "GET /css/style.css",
            "GET /css/app.js",
            "GET /any/assets/logo.png",
            "GET /p/x",
            "GET /p/x | X-Echo-Content-Type: TEXT/HTML",
            "GET /p/x | X-Echo-Content-Type: text/html; charset=gbk",
            "GET /p/x | X-Echo-Content-Type: text/html;charset=",
            "GET /p/x | X-Echo-Content-Type: text/html; level=1",
            "GET /p/x | X-Echo-Content-Type: application/json",
            "GET /p/x | X-Echo-Status: 302 | X-Echo-Location: /t",
            "GET /p/x | X-Echo-Status: 404",
            "GET /o/x | X-Echo-Content-Type: text/html; charset=\"utf-8\"",
            "GET /o/x | X-Echo-Content-Type: text/html; charset=gbk",
            "GET /o/x | X-Echo-Content-Type: image/png; charset=utf-8",
            "GET /o/x | X-Echo-Content-Type: text/html; charset=utf-8 | X-Echo-Status: 302 | X-Echo-Location: /t",
            "GET /off/x",
            "GET /same/x",
            "GET /if/x",
            "GET /if/x?k=1",
        ],
    ),
    // `$request_filename` and `$document_root`: the classic fallbacks of files written before
    // `try_files` (`if (!-e $request_filename)`), under `root` and `alias`, and written out.
    Group::new(
        "request-filename",
        r#"
            root {{ROOT}}/www;
            location / {
                if (!-e $request_filename) { rewrite ^/(.*)$ /index.html last; }
            }
            location /spa/ {
                if (!-f $request_filename) { rewrite ^ /spa/index.html break; }
            }
            location /al/ {
                alias {{ROOT}}/www/alias-target/;
                if (-e $request_filename) { return 200 "$document_root|$request_filename"; }
                return 404;
            }
            location ~ ^/re/(.*)$ {
                alias {{ROOT}}/www/alias-target/$1;
                if (-f $request_filename) { return 200 "$document_root|$request_filename"; }
                return 404;
            }
            location = /show { return 200 "$document_root|$request_filename|$uri"; }
            location /moved/ {
                rewrite ^/moved/(.*)$ /$1 break;
                if (-d $request_filename) { return 200 "dir $request_filename"; }
                return 200 "not $request_filename";
            }
            location ~ \.php$ { if (!-e $request_filename) { return 404; } return 200 "php"; }"#,
        &[
            "GET /app.js",
            "GET /nope/deep/link",
            "GET /nope/deep/link?x=1",
            "GET /docs",
            "GET /docs/",
            "GET /a%20b.txt",
            "GET /spa/main.js",
            "GET /spa/route/x",
            "GET /spa/",
            "GET /al/x.txt",
            "GET /al/missing",
            "GET /al/sub/",
            "GET /re/x.txt",
            "GET /re/none",
            "GET /show",
            "GET /moved/docs",
            "GET /moved/app.js",
            "GET /a.php",
        ],
    ),
];

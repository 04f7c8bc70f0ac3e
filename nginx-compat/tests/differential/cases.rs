//! The rewrite-module corpus: each group is one server body and the requests sent to it.

use super::Group;

pub const GROUPS: &[Group] = &[
    Group {
        name: "seed004",
        http: "",
        body: r#"
            location / {
                rewrite ^/home/register(.*) /home#/register permanent;
                rewrite ^/login(.*) /#/login permanent;
                proxy_pass http://{{UP}};
            }"#,
        requests: &[
            "/home/register",
            "/home/register?code=abc&state=x",
            "/home/register/extra",
            "/home/registered",
            "/login",
            "/login?x=1",
            "/loginx/y",
            "/home",
            "/",
            "/home/%72egister",
            "/home//register",
            "/home/./register?a=b",
            "/x/../home/register",
            "/other?q=1",
        ],
    },
    Group {
        name: "captures",
        http: "",
        body: r#"
            location / {
                rewrite ^/u/(\d+)/(\w+)$ /user?id=$1&tab=$2 last;
                rewrite ^/r/(.*)$ /target/$1 redirect;
                rewrite ^/p/(.*)$ /perm/$1? permanent;
                rewrite ^/n/(?<name>[a-z]+)/(.*)$ /named/$name/$2 last;
                proxy_pass http://{{UP}};
            }
            location /user { proxy_pass http://{{UP}}; }"#,
        requests: &[
            "/u/12/profile",
            "/u/12/profile?x=1",
            "/u/ab/profile",
            "/r/a/b",
            "/r/a%20b",
            "/r/a+b",
            "/r/a%2Bb?q=1",
            "/r/%41%42",
            "/r/caf%C3%A9",
            "/p/x?drop=me",
            "/p/x",
            "/n/abc/def",
            "/n/abc/d%20f?k=v",
            "/r/a?b=c",
            "/r/x%3Fy",
            "/r/x%25y",
            "/r/x%23y",
        ],
    },
    Group {
        name: "query",
        http: "",
        body: r#"
            location /a { rewrite ^ /b?new=1 last; }
            location /c { rewrite ^ /b?new=1? last; }
            location /d { rewrite ^ /b? last; }
            location /e { rewrite ^/e(.*) /b?x=$1 last; }
            location /f { rewrite ^ http://example.com/f? ; }
            location /g { rewrite ^ http://example.com/g?z=1 ; }
            location /h { rewrite ^ /h2?k=$arg_k&m=$args redirect; }
            location /b { proxy_pass http://{{UP}}; }
            location /h2 { proxy_pass http://{{UP}}; }"#,
        requests: &[
            "/a",
            "/a?old=2",
            "/c?old=2",
            "/d?old=2",
            "/d",
            "/e%20x?o=1",
            "/e+y",
            "/e/z?o",
            "/f?x=1",
            "/f",
            "/g?x=1",
            "/g",
            "/h?k=v&j=2",
            "/h",
            "/h?K=up",
        ],
    },
    Group {
        name: "return",
        http: "",
        body: r#"
            location = /r200 { return 200 "hello $uri $args"; }
            location = /r204 { return 204; }
            location = /r301 { return 301 /moved$is_args$args; }
            location = /r302 { return 302 http://other.example/x; }
            location = /r307 { return 307 "/t?$query_string"; }
            location = /rurl { return https://secure.example$request_uri; }
            location = /r404 { return 404; }
            location = /r403t { return 403 "no $request_method"; }
            location = /rrel { return 301 relative/path; }
            location = /rhost { return 200 "$host|$server_name|$server_port|$scheme"; }
            location = /rvar { set $a "x$arg_a"; set $b "${a}y"; return 200 "$a|$b"; }"#,
        requests: &[
            "/r200",
            "/r200?a=1&b=2",
            "/r204",
            "/r301",
            "/r301?x=1",
            "/r302",
            "/r307?q",
            "/r307",
            "/rurl?a=1",
            "/r404",
            "/r403t",
            "/rrel",
            "/rhost",
            "/rvar?a=7",
            "/rvar",
            "/r%32%30%30",
            "/r200/",
        ],
    },
    Group {
        name: "location-order",
        http: "",
        body: r#"
            location = / { return 200 "exact-root"; }
            location / { return 200 "prefix-root"; }
            location /documents/ { return 200 "documents"; }
            location ^~ /images/ { return 200 "images"; }
            location ~* \.(gif|jpg|jpeg)$ { return 200 "regex-img $1"; }
            location ~ ^/case/ { return 200 "case"; }
            location /longer/prefix/ { return 200 "longer"; }
            location /longer/ { return 200 "long"; }
            location ~ ^/longer/prefix/(?<rest>.*)$ { return 200 "re-longer $rest"; }"#,
        requests: &[
            "/",
            "/index.html",
            "/documents/",
            "/documents/a.jpg",
            "/images/a.jpg",
            "/images/",
            "/a/b.GIF",
            "/case/x",
            "/CASE/x",
            "/longer/prefix/x",
            "/longer/x.jpg",
            "/longer/",
            "/longer/prefix/",
            "/%64ocuments/x",
            "//images//a.png",
            "/images/../documents/a.gif",
            "/x/%2e%2e/case/y",
        ],
    },
    Group {
        name: "last-break",
        http: "",
        body: r#"
            location /one { rewrite ^/one(.*)$ /two$1 last; return 200 "not reached"; }
            location /two { rewrite ^/two(.*)$ /three$1 break; return 200 "two-after-break"; }
            location /three { return 200 "three $uri"; }
            location /loop { rewrite ^ /loop last; }
            location /ping { rewrite ^ /pong last; }
            location /pong { rewrite ^ /ping last; }
            location /noflag { rewrite ^/noflag/(.*) /three/$1; rewrite ^/three/(.*) /final/$1; }
            location /final { return 200 "final $uri"; }
            location /brk { break; return 200 "after break"; }
            location /bk2 { rewrite ^ /three break; proxy_pass http://{{UP}}; }"#,
        requests: &[
            "/one",
            "/one/x",
            "/two/x",
            "/three",
            "/loop",
            "/ping",
            "/noflag/z",
            "/brk",
            "/bk2/q?a=1",
            "/one%2Fy",
        ],
    },
    Group {
        name: "if",
        http: "",
        body: r#"
            location / {
                if ($arg_mode = "json") { return 200 "json"; }
                if ($arg_mode != "") { return 200 "mode=$arg_mode"; }
                if ($http_x_test) { return 200 "header $http_x_test"; }
                if ($uri ~ ^/re/(\d+)) { return 200 "re $1"; }
                if ($uri ~* ^/CI/(\w+)) { return 200 "ci $1"; }
                if ($uri !~ ^/keep) { rewrite ^ /kept last; }
                if ($args !~* debug) { set $d "nodebug"; }
                return 200 "fall $d";
            }
            location /kept { return 200 "kept from $request_uri"; }"#,
        requests: &[
            "/keep?mode=json",
            "/keep?mode=x",
            "/keep?mode=",
            "/re/42",
            "/ci/abc",
            "/CI/ABC",
            "/other",
            "/keep",
            "/keep?DEBUG=1",
            "/keep/x?debug",
            "/re/x",
        ],
    },
    Group {
        name: "absolute-redirect-off",
        http: "",
        body: r#"
            absolute_redirect off;
            location /a { return 301 /b; }
            location /c { rewrite ^ /d permanent; }
            location /e { absolute_redirect on; return 302 /f; }"#,
        requests: &["/a", "/c", "/c?x=1", "/e", "/a?q"],
    },
    Group {
        name: "port-off",
        http: "",
        body: r#"
            port_in_redirect off;
            location /a { return 301 /b; }
            location /c { server_name_in_redirect on; rewrite ^ /d redirect; }
            location /e { return 302 https://abs.example/e; }"#,
        requests: &["/a", "/c", "/e", "/a?z=1"],
    },
    Group {
        name: "server-rewrite",
        http: "",
        body: r#"
            rewrite ^/old/(.*)$ /new/$1 last;
            rewrite ^/gone$ /nowhere permanent;
            rewrite ^/srv$ /final;
            if ($arg_block) { return 403; }
            location /new/ { return 200 "new $uri"; }
            location /final { return 200 "final $uri $args"; }
            location / { return 200 "root $uri"; }"#,
        requests: &[
            "/old/a",
            "/old/a?x=1",
            "/gone",
            "/gone?y=2",
            "/srv",
            "/new/b",
            "/x?block=1",
            "/x",
            "/old/",
            "/old/%7Euser",
        ],
    },
    Group {
        name: "nested",
        http: "",
        body: r#"
            location /api/ {
                location /api/v1/ { return 200 "v1 $uri"; }
                location ~ \.json$ { return 200 "api-json"; }
                return 200 "api";
            }
            location ~ \.json$ { return 200 "outer-json"; }
            location ^~ /static/ {
                location ~ \.css$ { return 200 "css"; }
                return 200 "static";
            }
            location ~ \.css$ { return 200 "outer-css"; }"#,
        requests: &[
            "/api/",
            "/api/x",
            "/api/v1/x",
            "/api/v1/x.json",
            "/api/a.json",
            "/b.json",
            "/static/a.css",
            "/static/a.js",
            "/other.css",
            "/api/v1/",
        ],
    },
    Group {
        name: "auto-redirect",
        http: "",
        body: r#"
            location /app/ { proxy_pass http://{{UP}}; }
            location /exact { proxy_pass http://{{UP}}; }
            location = /e2/ { proxy_pass http://{{UP}}; }
            location / { return 200 "root"; }"#,
        requests: &[
            "/app", "/app?x=1", "/app/", "/app/z", "/exact", "/e2", "/e2/", "/ap",
        ],
    },
    Group {
        name: "hash-routes",
        http: "",
        body: r#"
            location / {
                rewrite ^/m/(\w+)$ /#/$1 permanent;
                rewrite ^/q/(\w+)$ /index.html#/$1?from=q redirect;
                rewrite ^/s/(.*)$ $scheme://$host/spa#/$1 redirect;
                return 200 "app";
            }"#,
        requests: &[
            "/m/orders",
            "/m/orders?id=3",
            "/q/list",
            "/q/list?p=2",
            "/s/a/b",
            "/s/a%20b?z",
            "/m/x%41",
            "/s/%E4%B8%AD",
        ],
    },
    Group {
        name: "bad-uris",
        http: "",
        body: r#"
            location / { return 200 "ok $uri"; }"#,
        requests: &[
            "/..",
            "/../x",
            "/a/../../x",
            "/%zz",
            "/a%2",
            "/%00",
            "/a/%2e%2e/b",
            "/a/.",
            "/a/..",
            "/a%2F%2Fb",
            "//a///b",
            "/a/./b/../c",
        ],
    },
    Group {
        name: "cycle",
        http: "",
        body: r#"
            location / {
                rewrite ^/n(\d)$ /n$1x;
                rewrite ^/(.*)x$ /$1y;
                return 200 "end $uri";
            }
            location /c { rewrite ^/c(\d*)$ /c$1a last; }
            location /ca { rewrite ^ /cb last; }
            location /cb { rewrite ^ /cc last; }
            location /cc { return 200 "reached $uri"; }"#,
        requests: &["/n1", "/c", "/c1", "/ca", "/cb"],
    },
];

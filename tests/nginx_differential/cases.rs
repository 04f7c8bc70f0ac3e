//! At least one case of each directive the gateway honours from an nginx file.

use super::Group;

const HOST: &[&str] = &["host"];

pub const GROUPS: &[Group] = &[
    // nginx's catch-all beside the site sending the hosts it does not name (an address, another
    // name) to the site's own: the "禁止IP访问" block of compliance checklists.
    Group {
        name: "catch-all-return",
        http: "server { listen 127.0.0.1:{{PORT}} default_server; server_name _;\n\
                 return 301 https://crm.example.com$request_uri; }",
        body: "location / { proxy_pass http://{{UP}}; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /a?x=1&y=%2F | Host: 10.0.0.1",
            "GET /a%20b/../c | Host: evil.example.org",
            "GET //x/./y | Host: 127.0.0.1:8080",
            "HEAD /h | Host: 10.0.0.1",
            "POST /form | Host: 10.0.0.1 | Content-Length: 3",
            "GET /p?q=1 | Host: localhost",
            "GET /p | Host: LOCALHOST.",
        ],
    },
    Group {
        name: "catch-all-rewrite",
        http: "server { listen 127.0.0.1:{{PORT}} default_server; server_name _;\n\
                 rewrite ^(.*)$ http://crm.example.com$1 permanent; }",
        body: "location / { proxy_pass http://{{UP}}; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /a?x=1 | Host: 10.0.0.1",
            "GET /a%20b?c=%2F | Host: 10.0.0.1",
            "GET /caf%C3%A9/x | Host: other.example",
            "GET /p | Host: localhost",
        ],
    },
    // A block that only sends its names to the site's (`www.` to the bare name, an old
    // domain): its names get its redirect, the site's names the site; written first and with no
    // catch-all, it is nginx's first server on the port, which the hosts no block names get.
    Group {
        name: "named-redirect",
        http: "server { listen 127.0.0.1:{{PORT}}; server_name www.localhost old.example.com;\n\
                 return 301 http://localhost$request_uri; }",
        body: "location / { proxy_pass http://{{UP}}; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /a?x=1 | Host: www.localhost",
            "GET /b | Host: OLD.example.com:8080",
            "GET /c/../d | Host: 10.0.0.1",
            "GET /e?q=%2F",
        ],
    },
    Group {
        name: "named-redirect-wildcard",
        http: "server { listen 127.0.0.1:{{PORT}}; server_name *.localhost ~^(?<sub>[a-z]+)\\.example\\.org$;\n\
                 location / { rewrite ^(.*)$ http://localhost$1 permanent; } }",
        body: "location / { proxy_pass http://{{UP}}; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /x?y=1 | Host: a.localhost",
            "GET /a%20b | Host: a.b.localhost",
            "GET /z | Host: shop.example.org",
            "GET /z | Host: 10.0.0.1",
            "GET /p",
        ],
    },
    Group {
        name: "catch-all-location",
        http: "server { listen 127.0.0.1:{{PORT}} default_server; server_name _;\n\
                 location / { return 302 http://crm.example.com/welcome; } }",
        body: "location / { proxy_pass http://{{UP}}; }",
        toml: None,
        up_headers: HOST,
        requests: &["GET /anything?x=1 | Host: 10.0.0.1", "GET /p | Host: localhost"],
    },
    Group {
        name: "seed004",
        http: "",
        body: "location / {\n\
                 rewrite ^/home/register(.*) /home#/register permanent;\n\
                 rewrite ^/login(.*) /#/login permanent;\n\
                 proxy_pass http://{{UP}};\n\
               }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /home/register",
            "GET /home/register?code=abc&state=x",
            "GET /home/%72egister",
            "GET /home//register",
            "GET /x/../home/register",
            "GET /login?x=1",
            "GET /loginx/y",
            "GET /other?q=1",
            "GET /a%20b?c=d",
        ],
    },
    Group {
        name: "toml-server-rewrites",
        http: "",
        body: "rewrite ^/home/register(.*) /home#/register permanent;\n\
               rewrite ^/r/(.*)$ /target/$1 redirect;\n\
               rewrite ^/p/(.*)$ /perm/$1? permanent;\n\
               location / { proxy_pass http://{{UP}}; proxy_set_header Host $host; }",
        toml: Some(
            "[[rewrite]]\npattern = '^/home/register(.*)'\nreplacement = '/home#/register'\nflag = 'permanent'\n\
             [[rewrite]]\npattern = '^/r/(.*)$'\nreplacement = '/target/$1'\nflag = 'redirect'\n\
             [[rewrite]]\npattern = '^/p/(.*)$'\nreplacement = '/perm/$1?'\nflag = 'permanent'\n\
             [[routes]]\nlocation = '/'\nupstream = 'up'\n",
        ),
        up_headers: HOST,
        requests: &[
            "GET /home/register?code=1",
            "GET /r/a%20b",
            "GET /r/a+b",
            "GET /r/caf%C3%A9",
            "GET /r/x%3Fy?q=1",
            "GET /p/x?drop=me",
            "GET /plain",
        ],
    },
    Group {
        name: "internal-rewrites",
        http: "",
        body: "location / {\n\
                 rewrite ^/u/(\\d+)/(\\w+)$ /user?id=$1&tab=$2 last;\n\
                 rewrite ^/n/(?<name>[a-z]+)/(.*)$ /named/$name/$2 last;\n\
                 rewrite ^/loop /loop last;\n\
                 return 404;\n\
               }\n\
               location /user { proxy_pass http://{{UP}}; }\n\
               location /named/ { proxy_pass http://{{UP}}; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /u/12/profile",
            "GET /u/12/profile?x=1",
            "GET /u/ab/profile",
            "GET /n/abc/d%20f?k=v",
            "GET /loop",
            "GET /named",
        ],
    },
    Group {
        name: "return-if-locations",
        http: "",
        body: "location = /exact { return 201; }\n\
               location ^~ /static/ { return 202 \"static\"; }\n\
               location ~ \\.php$ { return 403; }\n\
               location /go { if ($arg_to) { return 302 /went/$arg_to; } return 204; }\n\
               location /abs { return 301 https://example.com/x?$args; }\n\
               location /spa { root no-such-root; try_files $uri $uri/ =404; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /exact",
            "GET /exact/more",
            "GET /static/a.php",
            "GET /dyn/a.php",
            "GET /go?to=home",
            "GET /go",
            "HEAD /go",
            "GET /abs?a=1",
            "GET /spa/x",
        ],
    },
    Group {
        name: "proxy-pass-uri",
        http: "",
        body: "location /api/ { proxy_pass http://{{UP}}/; }\n\
               location /v1/ { proxy_pass http://{{UP}}/backend/v1/; }\n\
               location ~ ^/re/(?<rest>.*)$ { proxy_pass http://{{UP}}/inner/$rest$is_args$args; }\n\
               location /ru/ { proxy_pass http://{{UP}}$request_uri; }\n\
               location /bk/ { rewrite ^/bk/(.*)$ /changed/$1 break; proxy_pass http://{{UP}}/base/; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /api/users?page=2",
            "GET /api/a%20b",
            "GET /api/./x/../y",
            "GET /api",
            "POST /api/form | Content-Length: 4",
            "GET /v1/x/y",
            "GET /re/a/b?c=1",
            "GET /ru/x%20y?z=1",
            "GET /bk/q?w=1",
            // Bytes a browser encodes, a script or a webhook may not: nginx takes them.
            "GET /api/a<b>?q=a\"b<c>`d",
            "GET /ru/a`b?q=<x>",
            "GET /re/a\"b?c=\"d\"",
            // JavaScript's `escape()` (old jQuery front ends), and escapes a client got wrong:
            // the query reaches the CRM as written.
            "GET /api/x?a=%u4e2d%u6587&b=%ZZ&c=%&d=%2",
            "GET /v1/x?a=%u4e2d",
            "GET /ru/x?a=%u4e2d",
            "GET /re/x?a=%u4e2d",
        ],
    },
    Group {
        name: "map-named-captures",
        http: "map $uri $shop { default none; ~^/t(?<sn>[0-9]+)/ t$sn; }",
        body: "location / {\n\
                 proxy_set_header X-Backend $shop;\n\
                 proxy_set_header X-Shop $sn;\n\
                 proxy_pass http://{{UP}};\n\
               }\n\
               location = /both { return 200 \"[$shop][$sn]\"; }",
        toml: None,
        up_headers: &["host", "x-backend", "x-shop"],
        requests: &["GET /t42/x", "GET /t7/y?z=1", "GET /plain", "GET /both"],
    },
    Group {
        name: "decoded-targets",
        http: "",
        body: "location /s/ { rewrite ^ /p/x?u=$uri; }\n\
               location /p/ { proxy_pass http://{{UP}}; }\n\
               location /i/ { proxy_pass http://{{UP}}/v$uri; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /i/a%22b%3Cc%3Ed%60e",
            "GET /s/q%22x%3C",
            // A decoded lone `%` in the query is sent as nginx sends it.
            "GET /s/a%25ZZ",
        ],
    },
    Group {
        name: "proxy-set-header",
        http: "map $http_upgrade $connection_upgrade { default upgrade; '' close; }",
        body: "location /h/ {\n\
                 proxy_set_header Host $host;\n\
                 proxy_set_header X-Real-IP $remote_addr;\n\
                 proxy_set_header X-Original-URI $request_uri;\n\
                 proxy_set_header Accept-Encoding \"\";\n\
                 proxy_set_header X-Map $connection_upgrade;\n\
                 proxy_pass http://{{UP}};\n\
               }\n\
               location /d/ { proxy_pass http://{{UP}}; }\n\
               location /ws/ {\n\
                 proxy_http_version 1.1;\n\
                 proxy_set_header Upgrade $http_upgrade;\n\
                 proxy_set_header Connection $connection_upgrade;\n\
                 proxy_pass http://{{UP}};\n\
               }",
        toml: None,
        up_headers: &[
            "host",
            "x-real-ip",
            "x-original-uri",
            "accept-encoding",
            "x-map",
            "x-custom",
            "upgrade",
            "user-agent",
        ],
        requests: &[
            "GET /h/x?y=1 | Accept-Encoding: gzip | X-Custom: kept | User-Agent: t/1",
            "GET /h/x | Host: crm.example.com | Upgrade: websocket",
            "GET /d/x | X-Custom: kept | Accept-Encoding: br | TE: trailers",
            "GET /d/x | Upgrade: websocket | Connection: Upgrade",
            "GET /ws/x | Upgrade: websocket | Connection: Upgrade",
        ],
    },
    Group {
        name: "named-and-error-pages",
        http: "",
        body: "root {{ROOT}}/www;\n\
               error_page 404 /404.html;\n\
               location / { try_files $uri @app; }\n\
               location @app { proxy_pass http://{{UP}}; }\n\
               location /r404 { return 404; }\n\
               location /r403 { error_page 403 =200 /ok; return 403; }\n\
               location /r500 { error_page 500 = @err; return 500; }\n\
               location /r503 { error_page 503 =301 https://status.example/; return 503; }\n\
               location /ok { return 200 \"ok $uri\"; }\n\
               location @err { return 200 \"named error\"; }\n\
               location /missing/ { try_files $uri =404; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /index.html",
            "GET /dynamic/page?x=1",
            "POST /form | Content-Length: 3",
            "GET /r404",
            "GET /r403",
            "GET /r500",
            "GET /r503",
            "GET /missing/x",
            "HEAD /missing/x",
        ],
    },
    Group {
        name: "upstream-errors",
        http: "",
        body: "root {{ROOT}}/www;\n\
               location /dead/ { proxy_pass http://{{DEAD}}; }\n\
               location /dead-page/ { error_page 502 /50x.html; proxy_pass http://{{DEAD}}; }\n\
               location = /50x.html { }\n\
               location /dead-named/ { error_page 502 = @backup; proxy_pass http://{{DEAD}}; }\n\
               location @backup { proxy_pass http://{{UP}}; }\n\
               location /slow/ { proxy_read_timeout 300ms; proxy_pass http://{{UP}}; }\n\
               location /intercept/ {\n\
                 proxy_intercept_errors on;\n\
                 error_page 404 /404.html;\n\
                 error_page 500 = @backup;\n\
                 proxy_pass http://{{UP}};\n\
               }\n\
               location = /404.html { }\n\
               location /plain/ { proxy_pass http://{{UP}}; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /dead/x",
            "GET /dead-page/x",
            "GET /dead-named/x?y=1",
            "GET /slow/x | X-Echo-Delay-Ms: 1500",
            "GET /intercept/x | X-Echo-Status: 404",
            "GET /intercept/x | X-Echo-Status: 500",
            "GET /intercept/x | X-Echo-Status: 201",
            "GET /plain/x | X-Echo-Status: 404",
        ],
    },
    Group {
        name: "proxy-redirect",
        http: "",
        body: "location /d/ { proxy_pass http://{{UP}}/in/; }\n\
               location /off/ { proxy_redirect off; proxy_pass http://{{UP}}/in/; }\n\
               location /c/ { proxy_redirect http://backend/ /c/; proxy_pass http://{{UP}}; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /d/x | X-Echo-Status: 302 | X-Echo-Location: http://{{UP}}/in/login",
            "GET /off/x | X-Echo-Status: 302 | X-Echo-Location: http://{{UP}}/in/login",
            "GET /c/x | X-Echo-Status: 301 | X-Echo-Location: http://backend/a",
            "GET /d/x | X-Echo-Status: 302 | X-Echo-Location: /rel",
            // A Refresh is rewritten as a Location is, but not made absolute.
            "GET /d/x | X-Echo-Header: Refresh: 0; url=http://{{UP}}/in/x",
            "GET /c/x | X-Echo-Header: Refresh: 5;URL=http://backend/b",
        ],
    },
    Group {
        name: "body-size-access",
        http: "",
        body: "client_max_body_size 10;\n\
               location /small/ { proxy_pass http://{{UP}}; }\n\
               location /big/ { client_max_body_size 1k; proxy_pass http://{{UP}}; }\n\
               location /deny/ { deny 127.0.0.1; proxy_pass http://{{UP}}; }\n\
               location /allow/ { allow 127.0.0.0/8; deny all; proxy_pass http://{{UP}}; }\n\
               location /ro/ { limit_except GET { deny all; } proxy_pass http://{{UP}}; }\n\
               location /ret/ { limit_except GET { deny all; } return 200 \"x\"; }\n\
               location /rw/ { limit_except GET { deny all; } rewrite ^ /ok/ last; }\n\
               location /ok/ { return 200 \"ok\"; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "POST /ret/x",
            "GET /ret/x",
            "DELETE /rw/x",
            "GET /rw/x",
            "POST /small/x | Content-Length: 10",
            "POST /small/x | Content-Length: 11",
            "POST /big/x | Content-Length: 500",
            "GET /deny/x",
            "GET /allow/x",
            "GET /ro/x",
            "HEAD /ro/x",
            "POST /ro/x | Content-Length: 1",
            "DELETE /ro/x",
        ],
    },
    Group {
        name: "headers-out",
        http: "",
        body: "root {{ROOT}}/www;\n\
               add_header X-Frame-Options SAMEORIGIN;\n\
               location /p/ { proxy_pass http://{{UP}}; }\n\
               location /pa/ { add_header X-A a; add_header X-B b always; proxy_pass http://{{UP}}; }\n\
               location /exp/ { expires 1h; proxy_pass http://{{UP}}; }\n\
               location /assets/ { expires 30d; add_header Cache-Control public; }\n\
               location /epoch { expires epoch; return 200 \"e\"; }\n\
               location /max { expires max; return 200 \"m\"; }\n\
               location /err { add_header X-E e; add_header X-EA ea always; return 500; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /p/x",
            "GET /p/x | X-Echo-Status: 404",
            "GET /pa/x",
            "GET /pa/x | X-Echo-Status: 503",
            "GET /exp/x",
            "GET /assets/logo.png",
            "GET /epoch",
            "GET /max",
            "GET /err",
        ],
    },
    Group {
        // A true `if` in a location makes its block the request's configuration: the
        // location's `try_files` is gone, the block's `add_header` list replaces the
        // location's (the CORS preflight every CRM file has), `gzip` and `expires` apply.
        name: "if-blocks",
        http: "",
        body: "root {{ROOT}}/www;\n\
               location / {\n\
                 if ($http_user_agent ~* \"(iphone|android)\") { rewrite ^/$ /spa/index.html break; }\n\
                 try_files $uri $uri/ /index.html;\n\
               }\n\
               location /api/ {\n\
                 add_header X-Loc api;\n\
                 if ($request_method = OPTIONS) {\n\
                   add_header Access-Control-Allow-Origin *;\n\
                   add_header Access-Control-Allow-Methods 'GET, POST, OPTIONS';\n\
                   return 204;\n\
                 }\n\
                 proxy_pass http://{{UP}};\n\
               }\n\
               location /js/ {\n\
                 gzip_types text/plain application/javascript;\n\
                 if ($arg_z) { gzip on; expires 1h; }\n\
                 rewrite ^/js/(.*)$ /$1 break;\n\
               }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /x/y | User-Agent: iPhone",
            "GET /x/y",
            "GET / | User-Agent: Android",
            "OPTIONS /api/x",
            "GET /api/x",
            "GET /js/app.js?z=1 | Accept-Encoding: gzip",
            "GET /js/app.js | Accept-Encoding: gzip",
        ],
    },
    Group {
        name: "gzip",
        http: "",
        body: "root {{ROOT}}/www;\n\
               gzip on;\n\
               gzip_types text/plain application/javascript;\n\
               location /p/ { proxy_pass http://{{UP}}; }\n\
               location /off/ { gzip off; proxy_pass http://{{UP}}; }\n\
               location / { }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /p/x | Accept-Encoding: gzip",
            "GET /p/x",
            "GET /p/x | Accept-Encoding: br",
            "GET /off/x | Accept-Encoding: gzip",
            "GET /app.js | Accept-Encoding: gzip",
            "GET /index.html | Accept-Encoding: gzip",
            "GET /assets/logo.png | Accept-Encoding: gzip",
            // A HEAD is told what its GET would get: gzip, no length, no ranges.
            "HEAD /app.js | Accept-Encoding: gzip",
            "HEAD /p/x | Accept-Encoding: gzip",
            // ngx_http_gzip_accept_encoding reads the first header's first `gzip`.
            "GET /p/x | Accept-Encoding: gzipx, gzip",
            "GET /p/x | Accept-Encoding: gzip;level=1",
            "GET /p/x | Accept-Encoding: identity | Accept-Encoding: gzip",
            "HEAD /app.js",
            // nginx's gzip filter runs before its range filter: a range of a file it
            // compresses for this client is the whole file, compressed; for another, the range.
            "GET /app.js | Accept-Encoding: gzip | Range: bytes=0-3",
            "GET /app.js | Range: bytes=0-3",
            "GET /assets/logo.png | Accept-Encoding: gzip | Range: bytes=0-3",
        ],
    },
    // `gzip_types` as JeecgBoot's and many tutorials' files write it (images, a zip) and a
    // `gzip_min_length` below 20: compressed as listed, whatever the type or size.
    Group {
        name: "gzip-any-type",
        http: "",
        body: "root {{ROOT}}/www;\n\
               types { image/png png; application/javascript js; text/html html; }\n\
               gzip on;\n\
               gzip_min_length 1;\n\
               gzip_types image/png application/javascript application/zip;\n\
               location /z/ { default_type application/zip; alias {{ROOT}}/www/; }\n\
               location / { }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /assets/logo.png | Accept-Encoding: gzip",
            "GET /app.js | Accept-Encoding: gzip",
            "GET /z/404.html | Accept-Encoding: gzip",
            "HEAD /assets/logo.png | Accept-Encoding: gzip",
        ],
    },
    // `gzip_proxied` as nginx's docs and LNMP files write it, for requests through a CDN
    // (`Via`): compressed unless the answer's `Expires` is ahead or its `Cache-Control` names
    // none of the flags; an answer with neither is compressed.
    Group {
        name: "gzip-proxied",
        http: "",
        body: "gzip on; gzip_min_length 1; gzip_types text/plain;\n\
               location /flags/ { gzip_proxied expired no-cache no-store private auth;\n\
                 proxy_pass http://{{UP}}; }\n\
               location /lm/ { gzip_proxied no_last_modified no_etag; proxy_pass http://{{UP}}; }\n\
               location /off/ { proxy_pass http://{{UP}}; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /flags/a | Accept-Encoding: gzip | Via: 1.1 cdn",
            "GET /flags/a | Accept-Encoding: gzip | Via: 1.1 cdn | X-Echo-Header: Cache-Control: max-age=60",
            "GET /flags/a | Accept-Encoding: gzip | Via: 1.1 cdn | X-Echo-Header: Cache-Control: public, no-cache",
            "GET /flags/a | Accept-Encoding: gzip | Via: 1.1 cdn | X-Echo-Header: Cache-Control: private=\"x\"",
            "GET /flags/a | Accept-Encoding: gzip | Via: 1.1 cdn | X-Echo-Header: Expires: Thu, 01 Jan 1970 00:00:01 GMT",
            "GET /flags/a | Accept-Encoding: gzip | Via: 1.1 cdn | X-Echo-Header: Expires: Fri, 01 Jan 2100 00:00:00 GMT",
            "GET /flags/a | Accept-Encoding: gzip | Via: 1.1 cdn | X-Echo-Header: Expires: garbage",
            "GET /flags/a | Accept-Encoding: gzip | Via: 1.1 cdn | Authorization: Basic eA== | X-Echo-Header: Cache-Control: max-age=60",
            "GET /lm/a | Accept-Encoding: gzip | Via: 1.1 cdn",
            "GET /lm/a | Accept-Encoding: gzip | Via: 1.1 cdn | X-Echo-Header: ETag: \"v1\"",
            "GET /off/a | Accept-Encoding: gzip | Via: 1.1 cdn",
            "GET /off/a | Accept-Encoding: gzip",
        ],
    },
    // nginx 1.21.1 and later escape `"`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}` where a URI is
    // made again (a proxy_pass URI part, a rewrite's captures, its redirect): servlet
    // containers refuse them raw in a request-target.
    Group {
        name: "escaped-bytes",
        http: "",
        body: "location /pp/ { proxy_pass http://{{UP}}/x/; }\n\
               location /rb/ { rewrite ^/rb/(.*)$ /y/$1 break; proxy_pass http://{{UP}}; }\n\
               location /rl/ { rewrite ^/rl/(.*)$ /z/$1 last; }\n\
               location /z/ { proxy_pass http://{{UP}}; }\n\
               location /s/ { rewrite ^/s/(.*)$ /search?q=$1 last; }\n\
               location /search { proxy_pass http://{{UP}}; }\n\
               location /q/ { rewrite ^/q/(.*)$ /r2/x?item=$1 redirect; }\n\
               location /p/ { rewrite ^/p/(.*)$ /new/$1 permanent; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /pp/a%7Cb",
            "GET /pp/a%7Bb%7D%5E%5C%60%22%3C%3E",
            "GET /rb/a%7Cb",
            "GET /rl/a%7B%7D",
            "GET /s/a%5Cb",
            "GET /s/a%7C%26b",
            "GET /q/a%7Bb%7D",
            "GET /p/%7B%22id%22%3A1%7D",
            "GET /p/a%3Cb%3E%5E",
        ],
    },
    Group {
        name: "return-edges",
        http: "",
        body: "location /close { return 444; }\n\
               location /bare { return 301; }\n\
               location /r200 { return 200; }\n\
               location /r204 { return 204; }\n\
               location /port { return 302 /target; }\n\
               location /args/ { set $args \"fixed=1\"; proxy_pass http://{{UP}}; }\n\
               location /noargs/ { set $args \"\"; proxy_pass http://{{UP}}; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /close",
            "GET /bare",
            "GET /r200",
            "HEAD /r200",
            "GET /r204",
            "HEAD /r204",
            "GET /port",
            "GET /port | Host: crm.example.com:1234",
            "GET /args/x?a=1",
            "GET /noargs/x?a=1&b=2",
        ],
    },
    Group {
        name: "forwarded-for",
        http: "",
        body: "location /xff/ {\n\
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                 proxy_pass http://{{UP}};\n\
               }\n\
               location /own/ {\n\
                 proxy_set_header X-Forwarded-For $remote_addr;\n\
                 proxy_pass http://{{UP}};\n\
               }\n\
               location /none/ {\n\
                 proxy_set_header X-Forwarded-For \"\";\n\
                 proxy_pass http://{{UP}};\n\
               }",
        toml: None,
        // Compared only where the file sets it: elsewhere the gateway adds its own on top. A
        // file that sets it to `$remote_addr` keeps a client's made-up list from the CRM.
        up_headers: &["host", "x-forwarded-for"],
        requests: &[
            "GET /xff/x",
            "GET /xff/x | X-Forwarded-For: 10.1.1.1",
            "GET /xff/x | X-Forwarded-For: 10.1.1.1, 10.2.2.2",
            "GET /own/x | X-Forwarded-For: 10.1.1.1",
            "GET /own/x",
            "GET /none/x | X-Forwarded-For: 10.1.1.1",
        ],
    },
    Group {
        name: "timeouts-redirect-ports",
        http: "",
        body: "location /t/ {\n\
                 proxy_connect_timeout 2s;\n\
                 proxy_send_timeout 2s;\n\
                 proxy_read_timeout 2s;\n\
                 proxy_pass http://{{UP}};\n\
               }\n\
               location /t-dead/ { proxy_connect_timeout 1s; proxy_pass http://{{DEAD}}; }\n\
               location /pir-on { port_in_redirect on; return 302 /target; }\n\
               location /pir-off { port_in_redirect off; return 302 /target; }\n\
               location /rel { absolute_redirect off; return 302 /target; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /t/x?y=1",
            "POST /t/x | Content-Length: 4",
            "GET /t-dead/x",
            "GET /pir-on",
            "GET /pir-on | Host: crm.example.com:1234",
            "GET /pir-off",
            "GET /pir-off | Host: crm.example.com:1234",
            "GET /rel",
        ],
    },
    Group {
        name: "static",
        http: "",
        body: "root {{ROOT}}/www;\n\
               location / { }\n\
               location /spa/ { try_files $uri $uri/ /spa/index.html; }\n\
               location /assets/ { expires 30d; add_header Cache-Control \"public, immutable\"; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            // A range past the end: 416, with the headers the file's 200 would carry.
            "GET /assets/logo.png | Range: bytes=100-",
            "GET /assets/logo.png | Range: bytes=0-1",
            "GET /index.html",
            "HEAD /index.html",
            "POST /index.html | Content-Length: 1",
            "PUT /index.html | Content-Length: 1",
            "GET /assets",
            "GET /assets?v=1",
            "GET /assets/",
            "GET /missing",
            "GET /spa/deep/link",
            "GET /spa",
        ],
    },
    // `charset` labels nginx's pages (never a 301 or 302), `return` texts, files and proxied
    // answers of its types, keeps a proxied answer's own charset unless `override_charset`.
    Group {
        name: "charset",
        http: "",
        body: "root {{ROOT}}/www;\n\
               include /etc/nginx/mime.types;\n\
               default_type text/plain;\n\
               charset utf-8;\n\
               location = /t { return 200 \"t\"; }\n\
               location = /moved { return 301 /t; }\n\
               location = /tmp { return 307 /t; }\n\
               location = /nf { return 404; }\n\
               location /p/ { proxy_pass http://{{UP}}; }\n\
               location /o/ { override_charset on; proxy_pass http://{{UP}}; }\n\
               location /off/ { charset off; return 200 \"o\"; }\n\
               location /if/ { if ($arg_k) { charset gbk; } return 200 \"i\"; }\n\
               location / { }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /t",
            "GET /moved",
            "GET /tmp",
            "GET /nf",
            "GET /index.html",
            "HEAD /index.html",
            "GET /app.js",
            "GET /assets/logo.png",
            "GET /missing.html",
            "GET /p/x",
            "GET /p/x | X-Echo-Content-Type: TEXT/HTML",
            "GET /p/x | X-Echo-Content-Type: text/html; charset=gbk",
            "GET /p/x | X-Echo-Content-Type: application/json",
            "GET /p/x | X-Echo-Status: 302 | X-Echo-Location: /t",
            "GET /o/x | X-Echo-Content-Type: text/html; charset=\"UTF-8\"",
            "GET /o/x | X-Echo-Content-Type: text/html; charset=gbk",
            "GET /o/x | X-Echo-Status: 302 | X-Echo-Location: /t | X-Echo-Content-Type: text/html; charset=utf-8",
            "GET /off/x",
            "GET /if/x",
            "GET /if/x?k=1",
        ],
    },
    // The fallback of files written before `try_files`: `if (!-e $request_filename)`.
    Group {
        name: "request-filename",
        http: "",
        body: "root {{ROOT}}/www;\n\
               location / {\n\
                 if (!-e $request_filename) { rewrite ^/(.*)$ /index.html last; }\n\
               }\n\
               location /spa/ {\n\
                 if (!-f $request_filename) { rewrite ^ /spa/index.html break; }\n\
               }\n\
               location /api/ {\n\
                 if (!-e $request_filename) { proxy_pass http://{{UP}}; }\n\
               }\n\
               location = /show { return 200 \"$document_root|$request_filename\"; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /app.js",
            "GET /customer/42",
            "GET /spa/route/x",
            "GET /spa/",
            "GET /api/orders?id=1",
            "GET /show",
        ],
    },
    // nginx drops a header whose name has `_` as it reads the request (its default), so
    // neither the upstream nor a variable sees it; `underscores_in_headers on` keeps it, and
    // `$http_x_under` then reads `X_Under` as well as `X-Under`.
    Group {
        name: "underscores",
        http: "",
        body: "location /p/ { proxy_pass http://{{UP}}; }\n\
               location = /v { return 200 \"[$http_x_under]\"; }",
        toml: None,
        up_headers: &["host", "x_under", "x-dash", "x.dot"],
        requests: &[
            "GET /p/a | X_Under: 1 | X-Dash: 2",
            "GET /p/a | X.Dot: 3 | X-Dash: 2",
            "GET /v | X_Under: 1",
            "GET /v | X-Under: 2",
        ],
    },
    Group {
        name: "underscores-on",
        http: "",
        body: "underscores_in_headers on;\n\
               location /p/ { proxy_pass http://{{UP}}; }\n\
               location = /v { return 200 \"[$http_x_under]\"; }",
        toml: None,
        up_headers: &["host", "x_under", "x-dash", "x.dot"],
        requests: &[
            "GET /p/a | X_Under: 1 | X-Dash: 2",
            "GET /p/a | X.Dot: 3 | X_Under: 1",
            "GET /v | X_Under: 1",
            "GET /v | X-Under: 2",
        ],
    },
    Group {
        name: "invalid-headers-kept",
        http: "",
        body: "ignore_invalid_headers off;\n\
               location /p/ { proxy_pass http://{{UP}}; }",
        toml: None,
        up_headers: &["host", "x_under", "x.dot"],
        requests: &["GET /p/a | X_Under: 1", "GET /p/a | X.Dot: 3"],
    },
    // `proxy_hide_header`: the upstream's header is not passed on; a level with its own
    // replaces the inherited list. `gzip_http_version 1.0` compresses for HTTP/1.0 clients
    // too (nginx's default, 1.1, does not).
    Group {
        name: "hide-header-gzip-version",
        http: "",
        body: "proxy_hide_header Location;\n\
               gzip on; gzip_min_length 1; gzip_types text/plain;\n\
               location /h/ { proxy_pass http://{{UP}}; }\n\
               location /own/ { proxy_hide_header X-Other; proxy_pass http://{{UP}}; }\n\
               location /g10/ { gzip_http_version 1.0; proxy_pass http://{{UP}}; }\n\
               location /g11/ { proxy_pass http://{{UP}}; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /h/a | X-Echo-Location: /elsewhere",
            "GET /own/a | X-Echo-Location: /elsewhere",
            "GET /g10/a HTTP/1.0 | Accept-Encoding: gzip",
            "GET /g11/a HTTP/1.0 | Accept-Encoding: gzip",
            "GET /g11/a | Accept-Encoding: gzip",
        ],
    },
    // `proxy_cookie_path` and `proxy_cookie_domain`: a path's prefix (with case) or a regex,
    // a domain without case and its leading dot; a rewritten cookie is written again with
    // `; ` between its attributes, an untouched one as it came; `off` undoes the inherited.
    Group {
        name: "cookie-path-domain",
        http: "",
        body: "proxy_cookie_path /api/ /;\n\
               proxy_cookie_path ~*^/Legacy/(.*)$ /new/$1;\n\
               proxy_cookie_domain .crm.internal $host;\n\
               proxy_cookie_domain ~^(.+)\\.corp$ $1.example.com;\n\
               location /c/ { proxy_pass http://{{UP}}; }\n\
               location /off/ { proxy_cookie_path off; proxy_cookie_domain off; proxy_pass http://{{UP}}; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /c/a | X-Echo-Set-Cookie: sid=1;Path=/api/v1;HttpOnly | X-Echo-Set-Cookie: lang=zh; path=/API/x",
            "GET /c/a | X-Echo-Set-Cookie: a=b ;  PATH = /legacy/one ; Secure",
            "GET /c/a | X-Echo-Set-Cookie: d=1; Domain=.CRM.internal; Path=/",
            "GET /c/a | X-Echo-Set-Cookie: d=1; domain=app.corp",
            "GET /c/a | X-Echo-Set-Cookie: d=1; domain=other.org; path=/keep",
            "GET /c/a | X-Echo-Set-Cookie: novalue; path=/api/x",
            "GET /off/a | X-Echo-Set-Cookie: sid=1; Path=/api/v1",
        ],
    },
    // `proxy_cookie_flags` (the usual fix of a scan's "cookie without Secure/HttpOnly/
    // SameSite"): the first rule naming the cookie (without case, a caseless regex, a
    // variable) decides; a flag kept where it is, a `SameSite` of another value rewritten in
    // place, one taken off, the missing ones added at the end; a cookie named by no rule, or
    // by flags nginx does not know, passes as it came; `off` undoes the inherited; with a
    // `proxy_cookie_path` on the same cookie.
    Group {
        name: "cookie-flags",
        http: "",
        body: "set $flag httponly;\n\
               proxy_cookie_flags one $flag;\n\
               proxy_cookie_flags ~^t(wo|hree)$ nosecure samesite=strict;\n\
               proxy_cookie_flags unknown bogus;\n\
               proxy_cookie_flags ~ secure httponly samesite=lax;\n\
               location /c/ { proxy_pass http://{{UP}}; }\n\
               location /off/ { proxy_cookie_flags off; proxy_pass http://{{UP}}; }\n\
               location /own/ { proxy_cookie_flags sid nohttponly nosamesite samesite=none;\n\
                 proxy_cookie_path /api/ /; proxy_pass http://{{UP}}; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /c/a | X-Echo-Set-Cookie: ONE=1;Path=/ | X-Echo-Set-Cookie: one=2; HttpOnly",
            "GET /c/a | X-Echo-Set-Cookie: two=2; secure; SameSite=Lax; path=/ | X-Echo-Set-Cookie: Three=3;SAMESITE=strict",
            "GET /c/a | X-Echo-Set-Cookie: unknown=1;  path=/x",
            "GET /c/a | X-Echo-Set-Cookie: sid=abc; Path=/; Secure | X-Echo-Set-Cookie: x=1; samesite; httponly=1",
            "GET /c/a | X-Echo-Set-Cookie: novalue; path=/",
            "GET /off/a | X-Echo-Set-Cookie: sid=1; Path=/api/v1",
            "GET /own/a | X-Echo-Set-Cookie: sid=1; HttpOnly; SameSite=Strict; Path=/api/v1 | X-Echo-Set-Cookie: other=1;path=/api/x",
        ],
    },
    // `geo`: the most specific network (IPv4, IPv6, an IPv4-mapped address as IPv4), the
    // `default` for both families or the empty value without one, `delete`, a later line for a
    // network replacing the earlier, a source that is no address read as 255.255.255.255, the
    // client's own address without a source, and `proxy` (`proxy_recursive`) reading
    // X-Forwarded-For from the right.
    Group {
        name: "geo",
        http: "geo $http_x_addr $g {\n\
                 default none;\n\
                 10.0.0.0/8 ten;\n\
                 10.1.0.0/16 ten-one;\n\
                 10.1.2.3 host;\n\
                 10.1.9.0/24 gone;\n\
                 delete 10.1.9.0/24;\n\
                 192.168.0.0/16 first;\n\
                 192.168.0.0/16 second;\n\
                 255.255.255.255 broadcast;\n\
                 2001:db8::/32 doc;\n\
                 2001:db8:1::/48 doc-one;\n\
               }\n\
               geo $http_x_addr $nodefault { 10.0.0.0/8 ten; }\n\
               geo $client { default other; 127.0.0.0/8 loopback; }\n\
               geo $via { default direct; proxy 127.0.0.1; 10.0.0.0/8 inside; 172.16.0.0/12 lb; }\n\
               geo $via_r { default direct; proxy 127.0.0.0/8; proxy 172.16.0.0/12; proxy_recursive;\n\
                 10.0.0.0/8 inside; 172.16.0.0/12 lb; }",
        body: "location / { return 200 \"g=$g nodefault=$nodefault client=$client via=$via via_r=$via_r\\n\"; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET / | X-Addr: 10.1.2.3",
            "GET / | X-Addr: 10.1.2.4",
            "GET / | X-Addr: 10.2.0.1",
            "GET / | X-Addr: 10.1.9.9",
            "GET / | X-Addr: 192.168.5.5",
            "GET / | X-Addr: 8.8.8.8",
            "GET / | X-Addr: not-an-address",
            "GET /",
            "GET / | X-Addr: ::ffff:10.1.2.3",
            "GET / | X-Addr: 2001:db8:1::5",
            "GET / | X-Addr: 2001:db8:2::5",
            "GET / | X-Addr: ::1",
            "GET / | X-Addr: 10.1.2.3:8080",
            "GET / | X-Addr: 010.001.2.3",
            "GET / | X-Addr: 10..2.3",
            "GET / | X-Addr: [2001:db8::1]",
            "GET / | X-Forwarded-For: 10.5.5.5:8080",
            "GET / | X-Forwarded-For: [2001:db8::9]:443",
            "GET / | X-Forwarded-For: 10.5.5.5:0",
            "GET / | X-Forwarded-For: 10.5.5.5",
            "GET / | X-Forwarded-For: 10.5.5.5, 172.16.0.9",
            "GET / | X-Forwarded-For: 10.5.5.5,172.16.0.9 , ",
            "GET / | X-Forwarded-For: garbage, 172.16.0.9",
            "GET / | X-Forwarded-For: 10.5.5.5 | X-Forwarded-For: 172.16.0.9",
        ],
    },
    // `set_real_ip_from`/`real_ip_header`/`real_ip_recursive` (behind Aliyun SLB or a CDN):
    // `$remote_addr`, `$proxy_add_x_forwarded_for` and `allow`/`deny` read the address the
    // trusted proxy names, from the right past trusted ones; a non-address keeps the peer's.
    Group {
        name: "real-ip",
        http: "",
        body: "set_real_ip_from 127.0.0.1;\n\
               set_real_ip_from 10.0.0.0/8;\n\
               real_ip_header X-Forwarded-For;\n\
               real_ip_recursive on;\n\
               location / { proxy_set_header X-Real-IP $remote_addr;\n\
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                 proxy_pass http://{{UP}}; }\n\
               location /deny/ { deny 1.1.1.1; allow all; return 200 \"in\"; }",
        toml: None,
        up_headers: &["host", "x-real-ip", "x-forwarded-for"],
        requests: &[
            "GET /a | X-Forwarded-For: 1.1.1.1",
            "GET /a | X-Forwarded-For: 1.1.1.1, 10.0.0.5",
            "GET /a | X-Forwarded-For: 9.9.9.9, 1.1.1.1, 10.0.0.5",
            "GET /a | X-Forwarded-For: garbage",
            "GET /a",
            "GET /deny/x | X-Forwarded-For: 1.1.1.1",
            "GET /deny/x | X-Forwarded-For: 2.2.2.2, 10.0.0.1",
        ],
    },
    // `valid_referers` and `$invalid_referer` (anti-hotlinking of uploads): `none`, `blocked`,
    // `server_names`, wildcard hosts, a host with a URI prefix, a regex; case and a port in the
    // Referer; a location without the directive accepts anything.
    Group {
        name: "valid-referers",
        http: "",
        body: "location /img/ { valid_referers none blocked server_names *.example.com \
                 example.org/pub/ ~\\.baidu\\.;\n\
                 if ($invalid_referer) { return 403; } return 200 \"ok\"; }\n\
               location /tail/ { valid_referers www.example.*; \
                 if ($invalid_referer) { return 403; } return 200 \"ok\"; }\n\
               location /any/ { if ($invalid_referer) { return 403; } return 200 \"ok\"; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /img/a",
            "GET /img/a | Referer: http://localhost/x",
            "GET /img/a | Referer: https://www.example.com/p",
            "GET /img/a | Referer: http://example.com/p",
            "GET /img/a | Referer: http://example.org/pub/x",
            "GET /img/a | Referer: http://example.org/priv",
            "GET /img/a | Referer: http://www.baidu.com/s?wd=x",
            "GET /img/a | Referer: http://evil.com/",
            "GET /img/a | Referer: stripped-by-a-firewall",
            "GET /img/a | Referer: http://EVIL.Example.COM:8080/x",
            "GET /img/a | Referer: http://a.ru",
            "GET /tail/a | Referer: http://www.example.cn/x",
            "GET /tail/a | Referer: http://example.cn/x",
            "GET /tail/a",
            "GET /any/a | Referer: http://evil.com/",
        ],
    },
    // `gzip_static`: a file's `.gz` served instead to a client that takes gzip (as `gzip` would
    // decide: version, `q=0`, `Via` and `gzip_proxied`), to every client with `always`; the
    // file itself otherwise, or when there is no `.gz`.
    Group {
        name: "gzip-static",
        http: "",
        body: "root {{ROOT}}/www;\n\
               location /gz/ { gzip_static on; gzip_vary on; error_page 404 /404.html; }\n\
               location /always/ { alias {{ROOT}}/www/gz/; gzip_static always; }\n\
               location /proxied/ { alias {{ROOT}}/www/gz/; gzip_static on; gzip_proxied any; }\n\
               location /noetag/ { alias {{ROOT}}/www/gz/; gzip_static on; gzip_proxied no_etag; }\n\
               location /auth/ { alias {{ROOT}}/www/gz/; gzip_static on; gzip_proxied auth; }\n\
               location /dis/ { alias {{ROOT}}/www/gz/; gzip_static on; gzip_disable msie6 \"^curl/\"; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /gz/app.js | Accept-Encoding: gzip",
            "GET /gz/app.js",
            "HEAD /gz/app.js | Accept-Encoding: gzip, deflate",
            "GET /gz/app.js | Accept-Encoding: gzip;q=0",
            "GET /gz/app.js | Accept-Encoding: gzip | Range: bytes=0-3",
            "GET /gz/app.js HTTP/1.0 | Accept-Encoding: gzip",
            "GET /gz/app.js | Accept-Encoding: gzip | Via: 1.1 cdn",
            "GET /gz/only.css | Accept-Encoding: gzip",
            "GET /always/app.js",
            "GET /proxied/app.js | Accept-Encoding: gzip | Via: 1.1 cdn",
            "POST /gz/app.js | Accept-Encoding: gzip",
            "GET /gz/gz-only.js | Accept-Encoding: gzip",
            "HEAD /gz/gz-only.js | Accept-Encoding: gzip",
            "GET /gz/gz-only.js",
            "GET /gz/gz-only.js | Accept-Encoding: gzip | Via: 1.1 cdn",
            "GET /gz/gz-only.js | Accept-Encoding: gzip;q=0",
            "GET /noetag/gz-only.js | Accept-Encoding: gzip | Via: 1.1 lb",
            "GET /noetag/app.js | Accept-Encoding: gzip | Via: 1.1 lb",
            "GET /auth/app.js | Accept-Encoding: gzip | Via: 1.1 lb",
            "GET /always/gz-only.js",
            "POST /gz/gz-only.js | Accept-Encoding: gzip",
            // ngx_http_gzip_ok's reading of the client, for a `.gz` alone too: its version,
            // its User-Agent, its first Accept-Encoding's first `gzip`.
            "GET /gz/gz-only.js HTTP/1.0 | Accept-Encoding: gzip",
            "GET /dis/gz-only.js | Accept-Encoding: gzip | User-Agent: curl/8.0",
            "GET /dis/gz-only.js | Accept-Encoding: gzip | User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)",
            "GET /dis/app.js | Accept-Encoding: gzip | User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)",
            "GET /dis/app.js | Accept-Encoding: gzip | User-Agent: wget/1 | User-Agent: curl/8.0",
            "GET /gz/app.js | Accept-Encoding: gzipx, gzip",
            "GET /gz/app.js | Accept-Encoding: x-gzip, gzip",
            "GET /gz/app.js | Accept-Encoding: gzip;level=1",
            "GET /gz/app.js | Accept-Encoding: gzip; q = 0.5",
            "GET /gz/app.js | Accept-Encoding: gzip;q=2",
            "GET /gz/app.js | Accept-Encoding: gzip;q=0.5",
            "GET /gz/app.js | Accept-Encoding: br | Accept-Encoding: gzip",
        ],
    },
    // `X-Accel-Redirect`: an internal redirect (to an `internal` location, a named one), the
    // method GET, the answer's `Content-Disposition`, `Cache-Control` and cookies (through
    // `proxy_cookie_path`) kept, a climbing URI
    // a 404, `proxy_ignore_headers` passing the answer on; `X-Accel-*` and `X-Pad` never
    // reach the client.
    Group {
        name: "x-accel-redirect",
        http: "",
        body: "location /dl/ { proxy_pass http://{{UP}}; }\n\
               location /keep/ { proxy_ignore_headers X-Accel-Redirect; proxy_pass http://{{UP}}; }\n\
               location /dlc/ { proxy_cookie_path /api/ /; proxy_pass http://{{UP}}; }\n\
               location /protected/ { internal; alias {{ROOT}}/www/; }\n\
               location @named { return 200 \"named\\n\"; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /dl/a | X-Echo-Header: X-Accel-Redirect: /protected/app.js | X-Echo-Header: Content-Disposition: attachment; filename=\"a.js\" | X-Echo-Header: Cache-Control: no-cache",
            "HEAD /dl/a | X-Echo-Header: X-Accel-Redirect: /protected/app.js",
            "POST /dl/a | X-Echo-Header: X-Accel-Redirect: /protected/app.js",
            "GET /dl/a | X-Echo-Header: X-Accel-Redirect: /protected/missing.js",
            "GET /dl/a | X-Echo-Header: X-Accel-Redirect: /protected/../app.js",
            "GET /dl/a | X-Echo-Header: X-Accel-Redirect: @named",
            "GET /keep/a | X-Echo-Header: X-Accel-Redirect: /protected/app.js",
            "GET /dlc/a | X-Echo-Header: X-Accel-Redirect: /protected/app.js | X-Echo-Set-Cookie: fileDownload=true; path=/ | X-Echo-Set-Cookie: sid=1; Path=/api/v1",
            "GET /protected/app.js",
            "GET /dl/a | X-Echo-Header: X-Pad: avoid browser bug | X-Echo-Header: X-Accel-Buffering: no",
        ],
    },
    // A file's validators and ranges: `If-None-Match: *` is a 304 without `Accept-Ranges`
    // (nginx's not-modified filter clears it), a range a 206 without it, a range past the end
    // a 416 with nginx's page. (Several ranges get the whole file, where nginx answers
    // multipart/byteranges: the README says so.)
    Group {
        name: "file-conditions",
        http: "",
        body: "root {{ROOT}}/www;\n\
               location / { }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /app.js",
            "GET /app.js | If-None-Match: *",
            "HEAD /app.js | If-None-Match: *",
            "GET /app.js | Range: bytes=0-3",
            "GET /app.js | Range: bytes=-2",
            // A resumed download of a file that has changed since: whole, not stitched.
            "GET /app.js | Range: bytes=0-3 | If-Range: \"5f5e0ff-1\"",
            "GET /app.js | Range: bytes=0-3 | If-Range: Mon, 01 Jan 2001 00:00:00 GMT",
            "GET /app.js | Range: bytes=0-3 | If-Range: W/\"x\"",
            "GET /app.js | Range: bytes=100000-",
            "HEAD /app.js | Range: bytes=100000-",
            "GET /app.js | Range: chars=0-3",
        ],
    },
    // `if_modified_since`: `exact` (the default) is a 304 for the file's time only, `before`
    // for it or a later one, `off` never; each condition a request sends must hold (a browser
    // sends both validators of its copy); a date that cannot be read is none. Loaded with no
    // effect: `rewrite_log`, `uninitialized_variable_warn`.
    Group {
        name: "if-modified-since",
        http: "rewrite_log on; uninitialized_variable_warn off;",
        body: "root {{ROOT}}/www;\n\
               location /ims/ { rewrite_log off; }\n\
               location /before/ { alias {{ROOT}}/www/ims/; if_modified_since before; \
                 if ($arg_x) { rewrite_log on; } }\n\
               location /off/ { alias {{ROOT}}/www/ims/; if_modified_since off; }\n\
               location /noetag/ { alias {{ROOT}}/www/ims/; etag off; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /ims/app.js | If-Modified-Since: Sun, 09 Sep 2001 01:46:40 GMT",
            "GET /ims/app.js | If-Modified-Since: Sun, 09 Sep 2001 01:46:41 GMT",
            "GET /ims/app.js | If-Modified-Since: Sun, 09 Sep 2001 01:46:39 GMT",
            "GET /ims/app.js | If-Modified-Since: yesterday",
            "GET /ims/app.js | If-None-Match: * | If-Modified-Since: Sun, 09 Sep 2001 01:46:41 GMT",
            "GET /ims/app.js | If-None-Match: \"3b9aca00-b\" | If-Modified-Since: Sun, 09 Sep 2001 01:46:40 GMT",
            "GET /ims/app.js | If-None-Match: \"other\" | If-Modified-Since: Sun, 09 Sep 2001 01:46:40 GMT",
            "GET /before/app.js | If-Modified-Since: Sun, 09 Sep 2001 01:46:40 GMT",
            "GET /before/app.js | If-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT",
            "GET /before/app.js?x=1 | If-Modified-Since: Sun, 09 Sep 2001 01:46:39 GMT",
            "GET /off/app.js | If-Modified-Since: Sun, 09 Sep 2001 01:46:40 GMT",
            "GET /off/app.js | If-None-Match: *",
            // The file must still be the one named, else 412 (a resumed download, a guarded
            // write): the time at or after the file's, the ETag compared strongly.
            "GET /ims/app.js | If-Unmodified-Since: Sun, 09 Sep 2001 01:46:40 GMT",
            "GET /ims/app.js | If-Unmodified-Since: Sun, 09 Sep 2001 01:46:39 GMT",
            "GET /ims/app.js | If-Unmodified-Since: yesterday",
            "GET /ims/app.js | If-Match: \"3b9aca00-b\"",
            "GET /ims/app.js | If-Match: \"other\", \"3b9aca00-b\"",
            "GET /ims/app.js | If-Match: \"other\"",
            "GET /ims/app.js | If-Match: W/\"3b9aca00-b\"",
            "GET /ims/app.js | If-Match: *",
            "HEAD /ims/app.js | If-Match: \"other\"",
            "GET /ims/app.js | If-Match: \"other\" | Range: bytes=0-3",
            "GET /noetag/app.js | If-Match: *",
        ],
    },
    // `autoindex`: a directory without an index file listed as nginx lists it, in each format.
    Group {
        name: "autoindex",
        http: "",
        body: "root {{ROOT}}/www;\n\
               location /files/ { autoindex on; }\n\
               location /loose/ { alias {{ROOT}}/www/files/; autoindex on; autoindex_exact_size off; }\n\
               location /utf/ { alias {{ROOT}}/www/files/; autoindex on; charset utf-8; }\n\
               location /json/ { alias {{ROOT}}/www/files/; autoindex on; autoindex_format json; }\n\
               location /jsonp/ { alias {{ROOT}}/www/files/; autoindex on; autoindex_format jsonp; }\n\
               location /xml/ { alias {{ROOT}}/www/files/; autoindex on; autoindex_format xml; }\n\
               location /spa/ { autoindex on; }\n\
               location /gz/ { alias {{ROOT}}/www/files/; autoindex on; gzip on; gzip_min_length 1; gzip_types application/json; }\n\
               location /off/ { alias {{ROOT}}/www/files/; }",
        toml: None,
        up_headers: HOST,
        requests: &[
            "GET /files/",
            "HEAD /files/",
            "GET /files/sub/",
            "GET /files/empty/",
            "GET /files/nosuch/",
            "GET /files/a%20b.txt",
            "POST /files/",
            "GET /loose/",
            "GET /utf/",
            "GET /json/",
            "GET /jsonp/?callback=cb_1.x",
            "GET /jsonp/",
            "GET /jsonp/?callback=alert(1)",
            "GET /xml/",
            "GET /spa/",
            "GET /gz/ | Accept-Encoding: gzip",
            "GET /gz/?x | Accept-Encoding: gzip",
            "GET /off/",
        ],
    },
    // A multi-tenant SaaS front (yudao-cloud, RuoYi-Cloud-Plus): the tenant is a named
    // capture of a `server_name` regex (caseless), set only for a Host none of the other
    // names is.
    Group {
        name: "server_name captures",
        http: "",
        body: "server_name ~^(?<tenant>[a-z0-9]+)\\.crm\\.example\\.com$ *.static.example.com;\n\
               location /t { return 200 \"tenant=[$tenant]\"; }\n\
               location /up/ { proxy_set_header X-Tenant $tenant; proxy_pass http://{{UP}}; }",
        toml: None,
        up_headers: &["host", "x-tenant"],
        requests: &[
            "GET /t | Host: acme.crm.example.com",
            "GET /t | Host: ACME.Crm.Example.com:8080",
            "GET /t | Host: localhost",
            "GET /t | Host: a.static.example.com",
            "GET /t | Host: other.example.com",
            "GET /t | Host: a.b.crm.example.com",
            "GET /up/x | Host: beta2.crm.example.com",
            "GET /up/x | Host: localhost",
        ],
    },
    // The answer's variables in its header filters: `expires` by the answer's type through a
    // map (nginx's `expires` docs, Nuxt's and many SPA guides), and the debugging headers of
    // a load-balanced file (`$upstream_addr`, `$upstream_status`); `$upstream_http_*` reads
    // a header `proxy_hide_header` keeps from the client.
    Group {
        name: "answer variables",
        http: "map $sent_http_content_type $expires {\n\
                 default off;\n\
                 text/html epoch;\n\
                 application/javascript max;\n\
                 ~image/ 1h;\n\
                 text/css bogus;\n\
               }\n\
               map $arg_e $ex { default $arg_e; }",
        body: "location /exp/ { expires $expires; proxy_pass http://{{UP}}; }\n\
               location /mod/ { expires modified $expires; proxy_pass http://{{UP}}; }\n\
               location /dbg/ { proxy_hide_header X-Secret;\n\
                 add_header X-Up $upstream_addr; add_header X-Up-Status $upstream_status;\n\
                 add_header X-Type $sent_http_content_type; add_header X-S $status always;\n\
                 add_header X-Kept $upstream_http_x_secret; add_header X-Rt $upstream_response_time;\n\
                 proxy_pass http://{{UP}}; }\n\
               location = /own { add_header X-S $status; add_header X-Up \"[$upstream_addr]\"; return 200 \"own\"; }\n\
               location /big/ { expires $ex; proxy_set_header X-Status $status; add_header X-Cc $sent_http_cache_control; proxy_pass http://{{UP}}; }\n\
               location /bigmod/ { expires modified $ex; proxy_pass http://{{UP}}; }\n\
               location = /st { return 200 \"st=$status\"; }\n\
               location = /st302 { return 302 \"/x?st=$status\"; }",
        toml: None,
        up_headers: &["host", "x-status"],
        requests: &[
            "GET /exp/a",
            "GET /exp/a | X-Echo-Content-Type: text/html",
            "GET /exp/a | X-Echo-Content-Type: application/javascript",
            "GET /exp/a | X-Echo-Content-Type: image/png",
            "GET /exp/a | X-Echo-Content-Type: text/css",
            "GET /exp/a | X-Echo-Content-Type: text/html | X-Echo-Status: 404",
            "GET /mod/a | X-Echo-Content-Type: image/png",
            "GET /dbg/a | X-Echo-Header: X-Secret: kept-back",
            "GET /dbg/a | X-Echo-Status: 500",
            "GET /dbg/a | X-Echo-Content-Type: text/html; charset=gbk",
            "GET /own",
            // Values a request (or an upstream) writes into `expires` through a variable:
            // as large as a number goes, or too large for one.
            "GET /big/a?e=9223372036854775807",
            "GET /big/a?e=-9223372036854775807",
            "GET /big/a?e=292471208677y",
            "GET /big/a?e=106751991167d",
            "GET /big/a?e=@25h",
            "GET /big/a?e=junk",
            "GET /big/a?e=-1h",
            "GET /bigmod/a?e=-1h | X-Echo-Header: Last-Modified: Fri, 01 Jan 2100 00:00:00 GMT",
            "GET /big/a | X-Echo-Header: Cache-Control: no-store | X-Echo-Header: Cache-Control: private",
            // `$status` in a `return`'s value is the code returned.
            "GET /st",
            "GET /st302",
        ],
    },
    // The proxy site a hosting panel (宝塔) writes for every reverse proxy: its cache-status
    // header (empty without a cache: not sent), a `set` flag from an `if` on the file type, the
    // upgrade map of its main nginx.conf, and its `REMOTE-HOST` header to the upstream.
    Group {
        name: "hosting panel proxy site",
        http: "map $http_upgrade $connection_upgrade { default upgrade; '' close; }",
        body: "location ^~ / {
                 proxy_pass http://{{UP}};
                 proxy_set_header X-Real-IP $remote_addr;
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                 proxy_set_header REMOTE-HOST $remote_addr;
                 proxy_set_header Upgrade $http_upgrade;
                 proxy_set_header Connection $connection_upgrade;
                 proxy_http_version 1.1;
                 add_header X-Cache $upstream_cache_status;
                 set $static_fileg6Dy3IFp 0;
                 if ( $uri ~* \"\\.(gif|png|jpg|css|js|woff|woff2)$\" ) {
                   set $static_fileg6Dy3IFp 1;
                   expires 1m;
                 }
                 if ( $static_fileg6Dy3IFp = 0 ) {
                   add_header Cache-Control no-cache;
                 }
               }
               location ~ ^/(\\.user.ini|\\.htaccess|\\.git|\\.env|\\.svn|\\.project|LICENSE|README.md) {
                 return 404;
               }",
        toml: None,
        // `Connection` frames the upstream connection, which stays the engine's (README, "What
        // the CRM receives"): nginx's `close` from the map is not copied.
        up_headers: &["remote-host", "x-real-ip", "upgrade"],
        requests: &[
            "GET /",
            "GET /app/main.js",
            "GET /app/logo.PNG",
            "GET /api/list?page=2",
            "GET /.env",
            "GET /.git/config",
            "GET /README.md",
            "GET /ws | Upgrade: websocket | Connection: Upgrade",
        ],
    },
];

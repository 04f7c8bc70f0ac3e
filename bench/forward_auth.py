#!/usr/bin/env python3
"""Forward-auth checks per second (SPEC section 19), beside the bare pingora proxy's proxying.

nginx's `auth_request` (or Traefik's ForwardAuth) calls `GET /_gateway/auth` once per request
of the protected site, so the check's rate bounds the site's. Rows, same machine, same run,
same worker count, keep-alive, small answers:

  bare pingora            the engine proxying to the upstream: the reference
  auth check, session     /_gateway/auth for a protected path with a session cookie: cookie
                          decrypt, revocation lookup, identity headers, the assertion
  auth check, public      /_gateway/auth for a public path (no session work)
  nginx + auth_request    an nginx with the README's block in front of the upstream, the
                          gateway as its auth service: the whole protected request

Prints a markdown table; bench/bench.py (the main table, bench/RESULTS.md) is left alone.
Reuses bench.py's helpers. `bench/run.sh` builds the release binaries first; run this after it:

    python3 bench/forward_auth.py [--duration 10] [--connections 64] [--threads 2]
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the driver's helpers: processes, nginx, wrk, the login)


def readme_block(gateway_port, upstream_port, listen_port):
    """The README's forward-auth nginx block, pointed at this run's processes."""
    readme = open(os.path.join(bench.ROOT, "README.md"), encoding="utf-8").read()
    marker = "<!-- forward-auth nginx: tested by tests/frontdoors/nginx.rs -->\n```nginx\n"
    start = readme.index(marker) + len(marker)
    block = readme[start:readme.index("```", start)]
    block = block.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{gateway_port}; keepalive 64;")
    block = block.replace("server 127.0.0.1:9000;", f"server 127.0.0.1:{upstream_port}; keepalive 64;")
    block = block.replace("listen 80;", f"listen 127.0.0.1:{listen_port} reuseport backlog=4096;")
    # Upstream keep-alive, as bench.py's nginx row has it.
    block = block.replace("proxy_pass http://", 'proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://')
    return block


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="nginx workers = gateway threads")
    ap.add_argument("--bin-dir", default=os.path.join(bench.ROOT, "target/release"),
                    help="where wecom-gateway, wecom-emulator and bare-proxy are")
    args = ap.parse_args()
    gateway, emulator, bare = (os.path.join(args.bin_dir, n) for n in ("wecom-gateway", "wecom-emulator", "bare-proxy"))
    env = dict(os.environ, WGW_LOG="warn")
    work = tempfile.mkdtemp(prefix="wgw-bench-auth-")
    os.chmod(work, 0o755)
    procs = bench.Procs()
    try:
        up, ngx, gw, admin, emu, bare_port = (bench.free_port() for _ in range(6))
        conf = bench.nginx_conf(os.path.join(work, "upstream"), f"""
    server {{
        listen 127.0.0.1:{up} reuseport backlog=4096;
        location / {{ return 200 "hello from the upstream\\n"; }}
    }}""", args.threads)
        procs.start([bench.NGINX, "-p", os.path.join(work, "upstream"), "-c", conf])
        procs.start([bare, f"127.0.0.1:{bare_port}", f"127.0.0.1:{up}", "--threads", str(args.threads)], env=env)
        procs.start([emulator, "--listen", f"127.0.0.1:{emu}"])
        gw_conf = os.path.join(work, "gateway.toml")
        with open(gw_conf, "w") as f:
            f.write(bench.gateway_toml(gw, admin, emu, up, args.threads, public=ngx))
        procs.start([gateway, "run", "-c", gw_conf], env=env)
        conf = bench.nginx_conf(os.path.join(work, "front"), readme_block(gw, up, ngx), args.threads)
        procs.start([bench.NGINX, "-p", os.path.join(work, "front"), "-c", conf])
        for url in (f"http://127.0.0.1:{up}/", f"http://127.0.0.1:{bare_port}/", f"http://127.0.0.1:{admin}/healthz",
                    f"http://127.0.0.1:{emu}/_emulator/healthz", f"http://127.0.0.1:{ngx}/"):
            bench.wait_http(url)
        # The login goes through nginx, whose address is public_url (the cookie's host).
        cookie = bench.login_cookie(ngx, "crm", "/app/")
        if cookie is None:
            sys.exit("no session cookie came back from the login through nginx")
        host = f"Host: 127.0.0.1:{ngx}"
        rows = [
            ("bare pingora", f"http://127.0.0.1:{bare_port}/", ()),
            ("auth check, session", f"http://127.0.0.1:{gw}/_gateway/auth",
             (host, "X-Original-URI: /app/x", f"Cookie: {cookie}")),
            ("auth check, public", f"http://127.0.0.1:{gw}/_gateway/auth", (host, "X-Original-URI: /x")),
            ("nginx + auth_request", f"http://127.0.0.1:{ngx}/app/x", (f"Cookie: {cookie}",)),
        ]
        results = []
        for name, url, headers in rows:
            r = bench.wrk(url, True, headers, args.duration, args.connections, args.threads)
            if r["errors"]:
                sys.exit(f"{name}: {r['errors']} answers were not 2xx: the row would measure refusals")
            results.append((name, r))
            print(f"{name:22} {r['rps']:10.0f} rps  p50 {r['p50']:.3f} ms  p99 {r['p99']:.3f} ms", flush=True)
        base = results[0][1]["rps"]
        print(f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, {args.threads} threads, "
              f"{args.connections} connections, {args.duration} s per row\n")
        print("| row | req/s | p50 ms | p99 ms | x bare pingora |\n|---|---|---|---|---|")
        for name, r in results:
            print(f"| {name} | {r['rps']:.0f} | {r['p50']:.3f} | {r['p99']:.3f} | {r['rps'] / base:.2f} |")
    finally:
        procs.stop()


if __name__ == "__main__":
    main()

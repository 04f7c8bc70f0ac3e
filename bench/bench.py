#!/usr/bin/env python3
"""Measures wecom-gateway against nginx on one machine, in one run, and writes bench/RESULTS.md.

Everything listens on 127.0.0.1 and is stopped at the end. The numbers are ratios from one run:
the load tool, nginx and the gateway share the same cores, so absolute figures mean little and
the ratios to nginx (measured minutes apart, same conditions) are what to read.

Sections:
  1. proxying: direct upstream, nginx proxy_pass, the bare pingora proxy (bench/bare-proxy: a
     ProxyHttp that only picks the peer, the engine's own limit), gateway public route, gateway
     with a session (cookie decrypt + identity headers + JWT assertion); keep-alive and not;
     small and 100 KB. Every row is compared with nginx and with the bare proxy. The rows run in
     rounds (--rounds): medians over the rounds, each ratio taken within its round.
  2. qyapi endpoint with a cached token vs the emulator directly (and, for reference, the bare
     proxy in front of the emulator).
  3. token-expiry stampede: 1,000 concurrent calls, count gettoken; one process with the memory
     store, then three processes sharing a redis-server (when installed).
  4. RSS idle and with 10,000 open keep-alive connections: nginx, the bare proxy, the gateway.

`--sections engine` runs instead a matrix of the bare proxy's engine settings (threads, work
stealing, listener tasks, upstream pool, read buffer) against the same upstream, RSS included.
`--sections proxy,qyapi,stampede,memory` runs a subset; `--preload LIB` runs the bare proxy and
the gateway with LD_PRELOAD=LIB (both are built with mimalloc as their global allocator, so a
preloaded allocator replaces only what C code allocates).
"""
import argparse
import http.client
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The measured builds: plain release, or the profile-guided one when bench/run.sh made it
# (WGW_BENCH_BIN=target/pgo/release). The emulator is always the plain release build.
BIN = os.path.abspath(os.environ.get("WGW_BENCH_BIN", os.path.join(ROOT, "target/release")))
GATEWAY = os.path.join(BIN, "wecom-gateway")
EMULATOR = os.path.join(ROOT, "target/release/wecom-emulator")
BARE = os.path.join(BIN, "bare-proxy")
NGINX = "/usr/sbin/nginx"
WECOM_UA = "Mozilla/5.0 (Linux; Android 12) AppleWebKit/537.36 MicroMessenger/8.0 wxwork/4.1.0"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} not ready")


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, args, **kw):
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=kw.pop("stderr", subprocess.DEVNULL), **kw)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def nginx_conf(workdir, body, workers):
    os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
    conf = f"""
worker_processes {workers};
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log warn;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/tmp_body;
    proxy_temp_path {workdir}/tmp_proxy;
    fastcgi_temp_path {workdir}/tmp_fcgi;
    uwsgi_temp_path {workdir}/tmp_uwsgi;
    scgi_temp_path {workdir}/tmp_scgi;
    keepalive_requests 1000000;
{body}
}}
"""
    path = os.path.join(workdir, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def gateway_toml(listen, admin, emulator, upstream, threads, public=None, qyapi=None):
    """The gateway every benchmark runs: app `crm` against the emulator, a login route `/app/`
    and a public route `/`, both in front of `upstream`. `public` is the port of `public_url`
    (default: `listen`; the forward-auth bench puts nginx in front)."""
    qyapi_line = f'qyapi_listen = "127.0.0.1:{qyapi}"\n' if qyapi else ""
    return f"""
[server]
listen = "127.0.0.1:{listen}"
public_url = "http://127.0.0.1:{public or listen}"
admin_listen = "127.0.0.1:{admin}"
{qyapi_line}threads = {threads}

[session]
secret = "bench-session-secret-0123456789abcdef"
assertion_secret = "bench-assertion-secret-0123456789abcdef"

[apps.crm]
kind = "wecom"
corp_id = "wwemu0000000000001"
agent_id = 1000002
secret = "emu-agent-secret"
contact_secret = "emu-contact-secret"
api_base = "http://127.0.0.1:{emulator}"
authorize_url = "http://127.0.0.1:{emulator}/connect/oauth2/authorize"
qr_login_url = "http://127.0.0.1:{emulator}/wwlogin/sso/login"

[upstreams.crm]
url = "http://127.0.0.1:{upstream}"

[[routes]]
location = "/app/"
upstream = "crm"
login = "crm"

[[routes]]
location = "/"
upstream = "crm"
"""


def wrk(url, keepalive=True, headers=(), duration=10, connections=64, threads=2):
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    hs = list(headers)
    if not keepalive:
        hs.append("Connection: close")
    for h in hs:
        args += ["-H", h]
    args.append(url)
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    done = int(re.search(r"(\d+) requests in", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "requests": done, "p50": to_ms(lat.get("50")), "p99": to_ms(lat.get("99")), "errors": int(non2xx.group(1)) if non2xx else 0}


def to_ms(v):
    if v is None:
        return float("nan")
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    n, unit = float(m.group(1)), m.group(2)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n


def combined(runs, nginx_runs=None, bare_runs=None):
    """The median of each figure over the rounds; each ratio is taken within its round (the
    rows of one round ran back to back) and the median of those is reported, with their range."""
    med = statistics.median
    r = {k: med(x[k] for x in runs) for k in ("rps", "p50", "p99", "cpu_us")}
    r["requests"] = sum(x["requests"] for x in runs)
    r["errors"] = sum(x["errors"] for x in runs)
    r["rounds"] = len(runs)
    for key, others in (("vs_nginx", nginx_runs), ("vs_bare", bare_runs)):
        if others:
            ratios = [x["rps"] / o["rps"] for x, o in zip(runs, others)]
            r[key] = med(ratios)
            r[key + "_range"] = (min(ratios), max(ratios))
    if nginx_runs:
        r["dp99"] = med(x["p99"] - o["p99"] for x, o in zip(runs, nginx_runs))
    return r


def spread(r, key, unit=""):
    """`0.84 (0.80–0.90)`: the median ratio and, over more than one round, its range."""
    lo, hi = r[key + "_range"]
    return f"{r[key]:.2f}{unit}" + (f" ({lo:.2f}–{hi:.2f})" if r["rounds"] > 1 else "")


def login_cookie(gateway_port, app, return_to):
    """Logs in through the gateway and the emulator like the WeCom client does; returns the
    Cookie header value, or None when the gateway has no login flow."""
    jar = {}
    url = f"http://127.0.0.1:{gateway_port}/_gateway/login?app={app}&return_to={urllib.parse.quote(return_to)}"
    for _ in range(8):
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        path = u.path + ("?" + u.query if u.query else "")
        headers = {"User-Agent": WECOM_UA, "Accept": "text/html"}
        if jar and u.port == gateway_port:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                jar[name] = rest.split(";")[0]
        if r.status not in (301, 302, 303, 307):
            break
        url = urllib.parse.urljoin(url, r.getheader("Location"))
    session = {k: v for k, v in jar.items() if k == "wgw_session" and v}
    return "; ".join(f"{k}={v}" for k, v in session.items()) or None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_tree_seconds(pid):
    """User + system CPU of a process (all its threads) and its children (nginx's workers)."""
    tick = os.sysconf("SC_CLK_TCK")

    def one(p):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick
        except (FileNotFoundError, ProcessLookupError):
            return 0.0
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return one(pid) + sum(one(int(k)) for k in kids)


def rss_tree_kib(pid):
    """RSS of a process and its children (nginx: master and workers)."""
    total = rss_kib(pid)
    try:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    except FileNotFoundError:
        kids = []
    return total + sum(rss_kib(int(k)) for k in kids)


def held_rss(pid, port, n=10000):
    """(idle RSS, RSS with n open keep-alive connections) of the process tree at pid."""
    idle = rss_tree_kib(pid)
    socks = hold_connections(port, n)
    time.sleep(0.5)
    held = rss_tree_kib(pid)
    for s in socks:
        s.close()
    time.sleep(0.5)
    return idle, held


def hold_connections(port, n, path="/small"):
    """Opens n keep-alive connections, sends one request on each and keeps them open."""
    socks = []
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.connect(("127.0.0.1", port))
        s.sendall(req)
        socks.append(s)
    for s in socks:
        s.settimeout(10)
        s.recv(65536)
    return socks


def stampede(qyapi_ports, emulator_port, app, calls=1000):
    """`calls` concurrent calls spread over the gateways listening on `qyapi_ports`."""
    post(f"http://127.0.0.1:{emulator_port}/_emulator/reset", {})
    # Warm the token (in every gateway), then expire it everywhere.
    for port in qyapi_ports:
        get(f"http://127.0.0.1:{port}/{app}/cgi-bin/user/get?userid=zhangsan")
    post(f"http://127.0.0.1:{emulator_port}/_emulator/expire-tokens", {})
    before = gettoken_count(emulator_port)
    ok = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(calls)

    def one(port):
        barrier.wait()
        body = get(f"http://127.0.0.1:{port}/{app}/cgi-bin/user/get?userid=zhangsan")
        if json.loads(body).get("errcode") == 0:
            with lock:
                ok[0] += 1

    threads = [threading.Thread(target=one, args=(qyapi_ports[i % len(qyapi_ports)],)) for i in range(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"calls": calls, "ok": ok[0], "gettoken": gettoken_count(emulator_port) - before,
            "instances": len(qyapi_ports)}


def cluster_stampede(procs, work, redis_bin, emu_port, threads, instances=3):
    """The stampede against `instances` gateways that share one redis-server."""
    redis_port = free_port()
    procs.start([redis_bin, "--save", "", "--appendonly", "no", "--bind", "127.0.0.1",
                 "--port", str(redis_port), "--dir", work])
    deadline = time.time() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", redis_port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError("redis-server did not answer")
        time.sleep(0.05)
    qy_ports = []
    for i in range(instances):
        port, admin, qy = free_port(), free_port(), free_port()
        conf = os.path.join(work, f"cluster-{i}.toml")
        with open(conf, "w") as f:
            f.write(f"""
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"
qyapi_listen = "127.0.0.1:{qy}"
threads = {threads}

[store]
backend = "redis"
redis_url = "redis://127.0.0.1:{redis_port}/0"

[apps.crm]
kind = "wecom"
corp_id = "wwemu0000000000001"
agent_id = 1000002
secret = "emu-agent-secret"
api_base = "http://127.0.0.1:{emu_port}"

[upstreams.crm]
url = "http://127.0.0.1:9"

[[routes]]
location = "/"
upstream = "crm"
""")
        procs.start([GATEWAY, "run", "-c", conf], env=dict(os.environ, WGW_LOG="warn"))
        wait_http(f"http://127.0.0.1:{admin}/readyz")
        qy_ports.append(qy)
    return stampede(qy_ports, emu_port, "crm")


def get(url):
    return urllib.request.urlopen(url, timeout=30).read()


def post(url, obj):
    req = urllib.request.Request(url, data=json.dumps(obj).encode(), headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=30).read()


def gettoken_count(emulator_port):
    calls = json.loads(get(f"http://127.0.0.1:{emulator_port}/_emulator/calls"))["calls"]
    return calls.get("/cgi-bin/gettoken", {}).get("total", 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="nginx workers = gateway threads")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/RESULTS.md"))
    ap.add_argument("--sections", default="proxy,qyapi,stampede,memory")
    ap.add_argument("--rounds", type=int, default=3,
                    help="proxy rows: every target once per round; medians and in-round ratios reported")
    ap.add_argument("--preload", default=None, help="LD_PRELOAD for the bare proxy and the gateway")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    engine_env = dict(os.environ, WGW_LOG="warn")
    if args.preload:
        engine_env["LD_PRELOAD"] = args.preload
    # The gateway logs as in production: SPEC 16's authenticated request includes its access
    # log line (written to a file here, by the gateway's background writer).
    gateway_env = {k: v for k, v in engine_env.items() if k != "WGW_LOG"}
    load_before = os.getloadavg()
    # 10,000 held connections need that many descriptors here and in the gateway (inherited).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    work = tempfile.mkdtemp(prefix="wgw-bench-")
    # nginx's workers run as an unprivileged user: they must be able to read the 100 KB file.
    os.chmod(work, 0o755)
    procs = Procs()
    rows = []
    notes = []
    try:
        up_port, ngx_port, gw_port, admin_port, emu_port, qy_port, bare_port = (free_port() for _ in range(7))
        os.makedirs(os.path.join(work, "www"))
        with open(os.path.join(work, "www", "big"), "wb") as f:
            f.write(os.urandom(100 * 1024))
        upstream_dir = os.path.join(work, "upstream")
        conf = nginx_conf(upstream_dir, f"""
    server {{
        listen 127.0.0.1:{up_port} reuseport backlog=4096;
        location / {{ return 200 "hello from the upstream\\n"; }}
        location = /big {{ root {work}/www; }}
        location = /app/big {{ alias {work}/www/big; }}
    }}""", args.threads)
        procs.start([NGINX, "-p", upstream_dir, "-c", conf])
        proxy_dir = os.path.join(work, "proxy")
        conf = nginx_conf(proxy_dir, f"""
    upstream backend {{ server 127.0.0.1:{up_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{ngx_port} reuseport backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}""", args.threads)
        ngx = procs.start([NGINX, "-p", proxy_dir, "-c", conf])
        bare = procs.start([BARE, f"127.0.0.1:{bare_port}", f"127.0.0.1:{up_port}", "--threads", str(args.threads)],
                           env=engine_env)
        emu = procs.start([EMULATOR, "--listen", f"127.0.0.1:{emu_port}"])
        gw_conf = os.path.join(work, "gateway.toml")
        with open(gw_conf, "w") as f:
            f.write(gateway_toml(gw_port, admin_port, emu_port, up_port, args.threads, qyapi=qy_port))
        gw_log = open(os.path.join(work, "gateway.log"), "wb")
        gw = procs.start([GATEWAY, "run", "-c", gw_conf], env=gateway_env, stderr=gw_log)
        for url in (f"http://127.0.0.1:{up_port}/", f"http://127.0.0.1:{ngx_port}/", f"http://127.0.0.1:{bare_port}/",
                    f"http://127.0.0.1:{admin_port}/healthz", f"http://127.0.0.1:{emu_port}/_emulator/healthz"):
            wait_http(url)
        time.sleep(0.5)
        gw_idle = rss_kib(gw.pid)

        cookie = login_cookie(gw_port, "crm", "/app/")
        if cookie is None:
            notes.append("gateway with a session: skipped, the login flow did not produce a session cookie")

        # (name, port, small path, 100 KB path, extra headers, the process whose CPU is counted)
        up_pid = procs.procs[0].pid
        targets = [
            ("direct upstream", up_port, "/", "/big", (), up_pid),
            ("nginx proxy_pass", ngx_port, "/", "/big", (), ngx.pid),
            ("bare pingora", bare_port, "/", "/big", (), bare.pid),
            ("gateway public route", gw_port, "/", "/big", (), gw.pid),
        ]
        if cookie:
            targets.append(("gateway with session", gw_port, "/app/", "/app/big", (f"Cookie: {cookie}",), gw.pid))
        for keepalive in (True, False) if "proxy" in sections else ():
            for body in ("small", "100 KB"):
                # Every target once per round, the rounds one after the other: each ratio pairs
                # figures taken minutes apart at most, and the median of the rounds is reported,
                # so a burst of other work on the shared cores moves one round, not the result.
                runs = {t[0]: [] for t in targets}
                for _ in range(args.rounds):
                    for name, port, small, big, headers, pid in targets:
                        path = small if body == "small" else big
                        cpu = cpu_tree_seconds(pid)
                        r = wrk(f"http://127.0.0.1:{port}{path}", keepalive, headers, args.duration, args.connections, args.threads)
                        # The proxy's own CPU per request: unlike req/s, barely moved by whatever
                        # else shares the cores (the upstream row counts the upstream itself).
                        r["cpu_us"] = (cpu_tree_seconds(pid) - cpu) * 1e6 / max(r["requests"], 1)
                        runs[name].append(r)
                        print(f"{name:24} {'ka' if keepalive else 'close':6} {body:7} {r['rps']:10.0f} rps  p50 {r['p50']:.3f} ms  p99 {r['p99']:.3f} ms  cpu {r['cpu_us']:.1f} us/req  non-2xx {r['errors']}", flush=True)
                for name, *_ in targets:
                    compared = name.startswith("gateway") or name == "bare pingora"
                    base = runs["nginx proxy_pass"] if compared else None
                    bare_runs = runs["bare pingora"] if name.startswith("gateway") else None
                    rows.append((name, "keep-alive" if keepalive else "close", body,
                                 combined(runs[name], base, bare_runs), base, bare_runs))

        qy = []
        st = []
        try:
            if "qyapi" not in sections:
                raise StopIteration
            post(f"http://127.0.0.1:{emu_port}/_emulator/reset", {})
            token = json.loads(get(f"http://127.0.0.1:{emu_port}/cgi-bin/gettoken?corpid=wwemu0000000000001&corpsecret=emu-agent-secret"))["access_token"]
            emu_pid = emu.pid
            direct_url = f"http://127.0.0.1:{emu_port}/cgi-bin/user/get?access_token={token}&userid=zhangsan"
            through_url = f"http://127.0.0.1:{qy_port}/crm/cgi-bin/user/get?userid=zhangsan"

            def measured(url, proxy_pid=gw.pid):
                # CPU per call of the emulator and of the proxy in front of it, beside wrk's figures.
                before = cpu_tree_seconds(emu_pid), cpu_tree_seconds(proxy_pid)
                r = wrk(url, True, (), args.duration, args.connections, args.threads)
                n = max(r["requests"], 1)
                r["emu_cpu_us"] = (cpu_tree_seconds(emu_pid) - before[0]) * 1e6 / n
                r["gw_cpu_us"] = (cpu_tree_seconds(proxy_pid) - before[1]) * 1e6 / n
                return r
            direct = measured(direct_url)
            get(through_url)
            through = measured(through_url)
            # What any proxy hop costs here: the bare pingora proxy in front of the emulator,
            # sharing the same two cores with it and with wrk.
            ref_port = free_port()
            ref = procs.start([BARE, f"127.0.0.1:{ref_port}", f"127.0.0.1:{emu_port}", "--threads", str(args.threads)],
                              env=engine_env)
            wait_http(f"http://127.0.0.1:{ref_port}/_emulator/healthz")
            reference = measured(f"http://127.0.0.1:{ref_port}/cgi-bin/user/get?access_token={token}&userid=zhangsan", ref.pid)
            ref.send_signal(signal.SIGTERM)
            ref.wait(timeout=10)
            # And nginx's hop, kept-alive to the emulator as the proxy rows keep it to theirs.
            hop_port, hop_dir = free_port(), os.path.join(work, "qyapi-hop")
            conf = nginx_conf(hop_dir, f"""
    upstream emulator {{ server 127.0.0.1:{emu_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{hop_port} reuseport backlog=4096;
        location / {{ proxy_pass http://emulator; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}""", args.threads)
            hop = procs.start([NGINX, "-p", hop_dir, "-c", conf])
            wait_http(f"http://127.0.0.1:{hop_port}/_emulator/healthz")
            nginx_hop = measured(f"http://127.0.0.1:{hop_port}/cgi-bin/user/get?access_token={token}&userid=zhangsan", hop.pid)
            hop.send_signal(signal.SIGQUIT)
            hop.wait(timeout=10)
            qy = [("emulator directly", direct), ("through qyapi endpoint", through)]
            # The same against an API that takes 5 ms to answer, as WeCom's take a few.
            post(f"http://127.0.0.1:{emu_port}/_emulator/faults",
                 {"api": "/cgi-bin/user/get", "delay_ms": 5, "count": 4_000_000_000})
            direct = measured(direct_url)
            through = measured(through_url)
            qy += [("emulator directly, answering in 5 ms", direct), ("through qyapi endpoint, 5 ms API", through)]
            qy.append(("through the bare pingora proxy (reference: pingora's hop)", reference))
            qy.append(("through nginx `proxy_pass` (reference: nginx's hop)", nginx_hop))
            post(f"http://127.0.0.1:{emu_port}/_emulator/reset", {})
        except StopIteration:
            pass
        except Exception as e:  # the endpoint may not exist in this build
            notes.append(f"qyapi section skipped: {e}")
        if "stampede" in sections:
            try:
                st = [stampede([qy_port], emu_port, "crm")]
            except Exception as e:
                notes.append(f"stampede skipped: {e}")
        redis_bin = shutil.which("redis-server")
        if st and redis_bin:
            try:
                st.append(cluster_stampede(procs, work, redis_bin, emu_port, args.threads))
            except Exception as e:
                notes.append(f"cluster stampede skipped: {e}")
        elif st:
            notes.append("cluster stampede skipped: redis-server is not installed (make deps)")

        if rows:
            with open(os.path.join(work, "gateway.log"), "rb") as f:
                lost = f.read().count(b"failed to acquire reusable stream")
            notes.append(f"pingora's \"failed to acquire reusable stream\" in the gateway's log during the proxy rows: {lost}")

        if "engine" in sections:
            engine_matrix(args, procs, up_port, engine_env)
            return

        memory = []
        if "memory" in sections:
            if rows or qy or st:
                # At rest: the gateway hands back what a burst left free within 10 s
                # (src/allocator.rs); the rows below measure it after that, not mid-burst.
                time.sleep(11)
            for name, pid, port in (("nginx proxy_pass", ngx.pid, ngx_port), ("bare pingora", bare.pid, bare_port),
                                    ("gateway", gw.pid, gw_port)):
                idle, held = held_rss(pid, port)
                memory.append((name, idle, held))
                print(f"{name:24} RSS idle {idle / 1024:.1f} MiB, 10k connections {held / 1024:.1f} MiB", flush=True)

        notes.append("the gateway wrote its access log (one line per request, the default filter) in every row; "
                     "runs before 2026-11-30 17:00 had it off (WGW_LOG=warn)")
        load_after = os.getloadavg()
        notes.append(f"machine load (1-minute average) {load_before[0]:.1f} at the start of the run, "
                     f"{load_after[0]:.1f} at the end, on {os.cpu_count()} CPUs shared with other work")
        write_results(args, rows, qy, st, memory, gw_idle, notes)
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)


ENGINE_SETTINGS = [
    ("default here (2 threads, no stealing, 1 listener task, pool 128, 64 KiB read buffer, mimalloc as the gateway's)", []),
    ("work stealing", ["--work-stealing"]),
    ("2 listener tasks per fd", ["--listener-tasks", "2"]),
    ("1 thread", ["--threads", "1"]),
    ("upstream pool 16", ["--pool", "16"]),
    ("upstream pool 1024", ["--pool", "1024"]),
    ("read buffer 8 KiB", ["--read-buffer", "8192"]),
    ("read buffer off", ["--read-buffer", "0"]),
    ("the gateway's timeouts (keep-alive 75 s, header 60 s, upstream read, write and idle 60 s)", ["--timeouts"]),
]


def engine_matrix(args, procs, up_port, env):
    """The bare proxy under each engine setting, one after the other, same upstream."""
    lines = ["# Engine settings (bare pingora proxy)", "",
             f"`bench/run.sh --sections engine --duration {args.duration} --connections {args.connections}`"
             f"{' with LD_PRELOAD=' + env['LD_PRELOAD'] if 'LD_PRELOAD' in env else ''}, {time.strftime('%Y-%m-%d')}.", "",
             "| setting | req/s keep-alive | p99 ms | req/s close | req/s 100 KB keep-alive | CPU µs/req 100 KB | RSS 10k conns MiB | KiB/conn |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, extra in ENGINE_SETTINGS:
        port = free_port()
        threads = [] if "--threads" in extra else ["--threads", str(args.threads)]
        p = procs.start([BARE, f"127.0.0.1:{port}", f"127.0.0.1:{up_port}"] + threads + extra, env=env)
        wait_http(f"http://127.0.0.1:{port}/")
        ka = wrk(f"http://127.0.0.1:{port}/", True, (), args.duration, args.connections, args.threads)
        close = wrk(f"http://127.0.0.1:{port}/", False, (), args.duration, args.connections, args.threads)
        cpu = cpu_tree_seconds(p.pid)
        big = wrk(f"http://127.0.0.1:{port}/big", True, (), args.duration, args.connections, args.threads)
        big_cpu = (cpu_tree_seconds(p.pid) - cpu) * 1e6 / max(big["requests"], 1)
        idle, held = held_rss(p.pid, port)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)
        line = (f"| {label} | {ka['rps']:.0f} | {ka['p99']:.3f} | {close['rps']:.0f} | {big['rps']:.0f} | {big_cpu:.1f} | {held / 1024:.1f} | "
                f"{per_conn_kib(idle, held):.1f} |")
        print(line, flush=True)
        lines.append(line)
    text = "\n".join(lines) + "\n"
    out = os.path.join(os.path.dirname(args.out), "ENGINE.md") if args.out.endswith("RESULTS.md") else args.out
    with open(out, "w") as f:
        f.write(text)
    print(text)


def per_conn_kib(idle, held, n=10000):
    return (held - idle) / n


def targets(rows, qy, st, memory, gw_idle):
    """Each target of SPEC section 16 with what this run measured and whether it holds."""
    def mark(ok):
        return "holds" if ok else "**not met**"
    out = []
    for name, conn, body, r, base, bare in rows:
        if conn != "keep-alive" or body != "small":
            continue
        if name == "gateway with session" and bare:
            out.append(f"- authenticated request at least 0.9x the bare pingora proxy: {spread(r, 'vs_bare', 'x')} — "
                       f"{mark(r['vs_bare'] >= 0.9)}")
        if name == "gateway public route" and bare:
            out.append(f"- public route at least 0.95x the bare pingora proxy: {spread(r, 'vs_bare', 'x')} — "
                       f"{mark(r['vs_bare'] >= 0.95)}")
        if name == "gateway with session" and base:
            out.append(f"- authenticated request at least nginx's throughput (the standing aim): {spread(r, 'vs_nginx', 'x')} — "
                       f"{mark(r['vs_nginx'] >= 1.0)}")
            out.append(f"- p99 within 0.5 ms of nginx's: {r['dp99']:+.3f} ms — {mark(r['dp99'] <= 0.5)}")
    if qy:
        ratio = qy[1][1]["rps"] / qy[0][1]["rps"]
        ref = (f" (in front of the emulator the bare pingora proxy gets {qy[4][1]['rps'] / qy[0][1]['rps']:.2f}x, "
               f"nginx {qy[5][1]['rps'] / qy[0][1]['rps']:.2f}x)" if len(qy) >= 6 else "")
        out.append(f"- qyapi endpoint at least 0.8x the direct throughput against the emulator: {ratio:.2f}x — "
                   f"{mark(ratio >= 0.8)}{ref}")
    if len(qy) >= 4:
        direct, through = qy[2][1], qy[3][1]
        added = through["p50"] - direct["p50"]
        share = added / direct["p50"]
        out.append(f"- qyapi endpoint adds under 10% to a direct call (an API answering in 5 ms, token cached): "
                   f"{added:+.3f} ms at p50 over {direct['p50']:.3f} ms ({share * 100:+.1f}%), throughput "
                   f"{through['rps'] / direct['rps']:.2f}x — {mark(share < 0.1)}")
    for s in st:
        out.append(f"- exactly one gettoken for 1,000 concurrent calls at expiry ({'memory, one process' if s['instances'] == 1 else str(s['instances']) + ' processes on Redis'}): {s['gettoken']} — {mark(s['gettoken'] == 1)}")
    mem = {name: (idle, held) for name, idle, held in memory}
    if "gateway" in mem:
        _, held = mem["gateway"]
        out.append(f"- RSS under 30 MiB idle (after start): {gw_idle / 1024:.1f} MiB — {mark(gw_idle < 30 * 1024)}")
        out.append(f"- RSS under 150 MiB with 10,000 keep-alive connections: {held / 1024:.1f} MiB — {mark(held < 150 * 1024)}")
        if "bare pingora" in mem:
            gw_c, bare_c = per_conn_kib(*mem["gateway"]), per_conn_kib(*mem["bare pingora"])
            out.append(f"- per connection no more than the bare pingora proxy + 2 KiB: {gw_c:.1f} KiB vs {bare_c:.1f} KiB — "
                       f"{mark(gw_c <= bare_c + 2)}")
    return out


def write_results(args, rows, qy, st, memory, gw_idle, notes):
    lines = [
        "# Benchmark results",
        "",
        f"Made by `bench/run.sh --duration {args.duration} --connections {args.connections} --threads {args.threads}"
        f"{' --sections ' + args.sections if args.sections != 'proxy,qyapi,stampede,memory' else ''}"
        f"{' --rounds ' + str(args.rounds) if args.rounds != 3 else ''}` "
        f"on {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}. One run; wrk, nginx and the gateway share the cores,",
        "so read the ratios, not the absolute numbers.",
        "",
        ("The gateway and the bare pingora proxy are both the profile-guided build of `scripts/pgo.sh`."
         if os.path.realpath(BIN).endswith(os.path.join("target", "pgo", "release"))
         else f"The gateway and the bare pingora proxy are the builds in `{os.path.relpath(BIN, ROOT)}`."),
    ]
    if rows:
        lines += [
            "",
            "## Proxying (wrk, " + f"{args.connections} connections, {args.duration} s each, {args.rounds} rounds)",
            "",
            f"Each target ran once per round, {args.rounds} rounds in turn. Figures are medians over the rounds;",
            "a ratio is taken within each round (its rows ran back to back) and shown as the median",
            "with the rounds' range in brackets.",
            "",
            "| target | connection | body | req/s | p50 ms | p99 ms | vs nginx | vs bare pingora | p99 − nginx p99 | CPU µs/req |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
    for name, conn, body, r, base, bare in rows:
        ratio = spread(r, "vs_nginx") if base else ""
        bare_ratio = spread(r, "vs_bare") if bare else ""
        dp99 = f"{r['dp99']:+.3f} ms" if base else ""
        lines.append(f"| {name} | {conn} | {body} | {r['rps']:.0f} | {r['p50']:.3f} | {r['p99']:.3f} | {ratio} | {bare_ratio} | {dp99} | {r['cpu_us']:.1f} |")
    if qy:
        lines += ["", "## qyapi endpoint (user/get, cached token)", "",
                  "| path | req/s | p50 ms | p99 ms | emulator CPU µs/call | proxy CPU µs/call |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, r in qy:
            lines.append(f"| {name} | {r['rps']:.0f} | {r['p50']:.3f} | {r['p99']:.3f} | {r['emu_cpu_us']:.1f} | {r['gw_cpu_us']:.1f} |")
        lines.append("")
        for i in range(0, min(len(qy), 4) - 1, 2):
            lines.append(f"Through the endpoint / direct ({qy[i][0]}): throughput **{qy[i + 1][1]['rps'] / qy[i][1]['rps']:.2f}**; "
                         f"p50 added: {qy[i + 1][1]['p50'] - qy[i][1]['p50']:+.3f} ms.")
        if len(qy) >= 5:
            lines.append(f"Through the bare pingora proxy / direct (emulator directly): throughput "
                         f"**{qy[4][1]['rps'] / qy[0][1]['rps']:.2f}**: what pingora's hop leaves on these shared cores.")
        if len(qy) >= 6:
            lines.append(f"Through nginx / direct: throughput **{qy[5][1]['rps'] / qy[0][1]['rps']:.2f}**: "
                         f"what nginx's hop leaves.")
    if st:
        lines += ["", "## Token-expiry stampede", ""]
        for r in st:
            where = ("memory store, one process" if r["instances"] == 1
                     else f"{r['instances']} processes sharing Redis")
            lines.append(f"- {r['calls']} concurrent calls right after `/_emulator/expire-tokens`: {r['ok']} succeeded, "
                         f"**{r['gettoken']} gettoken** ({where}).")
    if memory:
        lines += ["", "## Memory (RSS; 10,000 open keep-alive connections, one request made on each; 'before' is after the throughput runs, not the idle start the targets below name)", "",
                  "| process | before MiB | 10k connections MiB | per connection KiB |", "|---|---:|---:|---:|"]
        for name, idle, held in memory:
            lines.append(f"| {name} | {idle / 1024:.1f} | {held / 1024:.1f} | {per_conn_kib(idle, held):.1f} |")
    lines += ["", "## Against the targets of SPEC section 16", ""] + targets(rows, qy, st, memory, gw_idle)
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()

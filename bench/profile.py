#!/usr/bin/env python3
"""Instructions per request of the gateway, counted by valgrind's callgrind (bench/README.md,
"Profile of the authenticated path").

Instruction counts do not move with the load of the machine, so a change to the gateway can be
judged on this 2-core machine while others compile. One release gateway (`threads = 1`) runs
under callgrind in front of an nginx upstream, with the emulator for the login and the qyapi
calls; after a warm-up the counters are zeroed, `--requests` keep-alive requests are made one
after the other, and the counters are dumped:

  python3 bench/profile.py --mode session     # cookie, identity headers, assertion, access log
  python3 bench/profile.py --mode public      # a public route
  python3 bench/profile.py --mode qyapi       # user/get through the qyapi endpoint, cached token
  python3 bench/profile.py --mode bare        # the bare pingora proxy (bench/bare-proxy), 1 thread
  python3 bench/profile.py --mode bare-timeouts  # the same with the gateway's default timeouts

The bare proxy's count is the engine's own cost per request; a gateway mode minus it is what
the gateway adds.

It prints the instructions per request and the callgrind file (read it with
`callgrind_annotate --inclusive=yes FILE`). The access log is on (the default filter), written
to a file, as in production.
"""
import argparse
import glob
import http.client
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BARE, EMULATOR, GATEWAY, NGINX, Procs, free_port, gateway_toml, login_cookie, nginx_conf, wait_http  # noqa: E402


def drive(port, path, n, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(n):
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"{path}: {r.status}")
    conn.close()


def total_ir(path):
    with open(path) as f:
        for line in f:
            m = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if m:
                return int(m.group(1))
    raise RuntimeError(f"no totals in {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["session", "public", "qyapi", "bare", "bare-timeouts"], default="session")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--gateway", default=GATEWAY)
    ap.add_argument("--out", default=None, help="where the callgrind file goes")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="wgw-profile-")
    os.chmod(work, 0o755)
    procs = Procs()
    try:
        up, gw, admin, emu, qy, bare = (free_port() for _ in range(6))
        conf = nginx_conf(os.path.join(work, "upstream"), f"""
    server {{
        listen 127.0.0.1:{up};
        location / {{ return 200 "hello from the upstream\\n"; }}
    }}""", 1)
        procs.start([NGINX, "-p", os.path.join(work, "upstream"), "-c", conf])
        procs.start([EMULATOR, "--listen", f"127.0.0.1:{emu}"])
        gw_conf = os.path.join(work, "gateway.toml")
        with open(gw_conf, "w") as f:
            f.write(gateway_toml(gw, admin, emu, up, 1, qyapi=qy))
        out = os.path.abspath(args.out or os.path.join(work, "callgrind.out"))
        env = dict(os.environ)
        env.pop("WGW_LOG", None)
        log = open(os.path.join(work, "gateway.log"), "wb")
        is_bare = args.mode.startswith("bare")
        measured = ([BARE, f"127.0.0.1:{bare}", f"127.0.0.1:{up}", "--threads", "1"] if is_bare
                    else [args.gateway, "run", "-c", gw_conf])
        if args.mode == "bare-timeouts":
            measured.append("--timeouts")
        gateway = procs.start(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p"] + measured,
                              env=env, stderr=log)
        for url in (f"http://127.0.0.1:{up}/", f"http://127.0.0.1:{emu}/_emulator/healthz"):
            wait_http(url)
        if is_bare:
            wait_http(f"http://127.0.0.1:{bare}/", timeout=300)
        else:
            wait_http(f"http://127.0.0.1:{admin}/readyz", timeout=300)

        if args.mode == "session":
            cookie = login_cookie(gw, "crm", "/app/")
            if not cookie:
                raise RuntimeError("no session cookie")
            port, path, headers = gw, "/app/", {"Cookie": cookie}
        elif args.mode == "public":
            port, path, headers = gw, "/", {}
        elif is_bare:
            port, path, headers = bare, "/", {}
        else:
            port, path, headers = qy, "/crm/cgi-bin/user/get?userid=zhangsan", {}
        drive(port, path, 300, headers)
        subprocess.run(["callgrind_control", "-z", str(gateway.pid)], check=True, capture_output=True)
        drive(port, path, args.requests, headers)
        subprocess.run(["callgrind_control", "-d", str(gateway.pid)], check=True, capture_output=True)
        time.sleep(1)
        dumps = sorted(glob.glob(f"{out}.{gateway.pid}*"), key=os.path.getmtime)
        dump = [d for d in dumps if not d.endswith(f".{gateway.pid}")] or dumps
        ir = total_ir(dump[-1])
        print(f"{args.mode}: {ir / args.requests:,.0f} instructions per request ({args.requests} requests); {dump[-1]}")
    finally:
        procs.stop()


if __name__ == "__main__":
    main()

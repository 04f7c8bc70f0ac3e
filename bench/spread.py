#!/usr/bin/env python3
"""Two builds side by side: how evenly the worker threads share few keep-alive connections.

Each accepted connection is served by one worker thread for its whole life. Behind a load
balancer or an nginx `keepalive` pool a gateway sees a handful of long-lived connections, and
where they land decides whether both threads work: two connections on one thread serve at one
thread's pace. This runs `wrk` with few connections (a new set each round, so each round is a
new placement) against the bare pingora proxy of each build and, when given, each gateway
build's public route, rounds alternated, and reports per connection count the median req/s,
p99, and the busiest worker thread's share of the workers' CPU time (0.50: even, 1.00: one
thread did everything).

    python3 bench/spread.py --bare-a /tmp/bare-old --bare-b target/release/bare-proxy \\
        --gateway-a /tmp/gw-old --gateway-b target/release/wecom-gateway
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (  # noqa: E402
    BARE,
    EMULATOR,
    GATEWAY,
    NGINX,
    Procs,
    free_port,
    gateway_toml,
    nginx_conf,
    wait_http,
)


def thread_ticks(pid):
    """CPU ticks per thread of the process."""
    ticks = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks[t] = int(fields[11]) + int(fields[12])
    return ticks


def millis(text):
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    raise ValueError(text)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bare-a", default=BARE)
    p.add_argument("--bare-b")
    p.add_argument("--gateway-a")
    p.add_argument("--gateway-b")
    p.add_argument("--connections", default="2,4,8", help="comma-separated wrk -c values")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--seconds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="worker threads of every proxy")
    args = p.parse_args()

    work = tempfile.mkdtemp(prefix="spread-")
    os.chmod(work, 0o755)
    procs = Procs()
    try:
        up, emu = free_port(), free_port()
        conf = nginx_conf(os.path.join(work, "up"), f"""
    server {{ listen 127.0.0.1:{up} reuseport backlog=4096;
        location / {{ return 200 "hello from the upstream\\n"; }} }}""", 2)
        procs.start([NGINX, "-p", os.path.join(work, "up"), "-c", conf])
        wait_http(f"http://127.0.0.1:{up}/")
        quiet = dict(os.environ, WGW_LOG="warn")
        targets = []
        for tag, binary in (("A", args.bare_a), ("B", args.bare_b)):
            if not binary:
                continue
            port = free_port()
            b = procs.start([binary, f"127.0.0.1:{port}", f"127.0.0.1:{up}",
                             "--threads", str(args.threads)], env=quiet)
            wait_http(f"http://127.0.0.1:{port}/")
            targets.append((f"bare {tag}", b.pid, f"http://127.0.0.1:{port}/"))
        if args.gateway_a or args.gateway_b:
            procs.start([EMULATOR, "--listen", f"127.0.0.1:{emu}"])
            wait_http(f"http://127.0.0.1:{emu}/_emulator/healthz")
        for tag, binary in (("A", args.gateway_a), ("B", args.gateway_b)):
            if not binary:
                continue
            gw, adm = free_port(), free_port()
            os.makedirs(os.path.join(work, f"g{tag}"))
            gconf = os.path.join(work, f"g{tag}", "gateway.toml")
            with open(gconf, "w") as f:
                f.write(gateway_toml(gw, adm, emu, up, args.threads))
            with open(os.path.join(work, f"g{tag}.log"), "wb") as logf:
                g = procs.start([binary, "run", "-c", gconf], stderr=logf)
            wait_http(f"http://127.0.0.1:{adm}/healthz")
            targets.append((f"public {tag}", g.pid, f"http://127.0.0.1:{gw}/"))
        time.sleep(0.3)

        results = {}
        for conns in (int(c) for c in args.connections.split(",")):
            for _ in range(args.rounds):
                for name, pid, url in targets:
                    before = thread_ticks(pid)
                    out = subprocess.run(
                        ["wrk", "--latency", f"-t{min(2, conns)}", f"-c{conns}",
                         f"-d{args.seconds}s", url],
                        capture_output=True, text=True).stdout
                    after = thread_ticks(pid)
                    rps = float(re.search(r"Requests/sec:\s+(\S+)", out).group(1))
                    p99 = millis(re.search(r" 99%\s+(\S+)", out).group(1))
                    used = sorted((after[t] - before.get(t, 0) for t in after), reverse=True)
                    workers = used[: args.threads]
                    share = workers[0] / max(1, sum(workers))
                    results.setdefault((conns, name), []).append((rps, p99, share))

        print(f"{'conns':>5} {'target':10} {'req/s':>8} {'p99 ms':>7} {'busiest':>8}  "
              f"{'busiest thread share per round'}")
        for (conns, name), rows in results.items():
            shares = [r[2] for r in rows]
            print(f"{conns:5} {name:10} {median(r[0] for r in rows):8.0f} "
                  f"{median(r[1] for r in rows):7.2f} {median(shares):8.2f}  "
                  f"{' '.join(f'{s:.2f}' for s in shares)}")
    finally:
        procs.stop()


if __name__ == "__main__":
    main()

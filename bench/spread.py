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
import ab  # noqa: E402
from bench import BARE, Procs  # noqa: E402


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
        targets = ab.start(procs, work, (("A", args.bare_a), ("B", args.bare_b)),
                           (("A", args.gateway_a, None), ("B", args.gateway_b, None)),
                           args.threads, session=False)
        time.sleep(0.3)

        results = {}
        for conns in (int(c) for c in args.connections.split(",")):
            for _ in range(args.rounds):
                for name, pid, url, _ in targets:
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

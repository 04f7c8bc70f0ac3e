#!/usr/bin/env python3
"""Two builds side by side: CPU time per request, req/s and context switches, rounds alternated.

For changes too small for `run.sh`'s req/s to show (±5% from run to run on shared cores): the
process's own CPU time per request (`/proc` utime + stime of all its threads over a wrk run,
divided by its requests) spreads by under 1 µs within a run. Each target runs once per round,
the rounds in turn, and each figure is the median over the rounds.

Targets: the bare pingora proxy of each build (--bare-a, --bare-b) and, for each gateway build
(--gateway-a, --gateway-b), its public route and a request with a session, all against one
nginx upstream answering 200; with --qyapi also a qyapi endpoint call against the emulator
(the proxy's CPU only: the emulator's is left out). Every other round runs the targets in the
reverse order: whichever build runs first in a round reads a few percent higher. The builds' binaries are copied aside first (e.g. to /tmp) so that
a rebuild does not replace one of them.

    python3 bench/cpu_ab.py --bare-a /tmp/bare-old --bare-b target/release/bare-proxy \\
        --gateway-a /tmp/gw-old --gateway-b target/release/wecom-gateway --rounds 4

Columns: CPU µs per request (median, then each round's), req/s (`wrk -t1 -c32` unless told), the access log
writer thread's share, system time, and voluntary / involuntary context switches per request
(an involuntary one: the worker was preempted, usually by a process it woke).
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
from bench import BARE, GATEWAY, Procs  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def counters(pid):
    """CPU seconds (all), system seconds, the log writer's seconds, voluntary and involuntary
    context switches, summed over the process's threads."""
    cpu = sys_s = log = 0.0
    vol = invol = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                raw = f.read()
            with open(f"/proc/{pid}/task/{t}/status") as f:
                status = f.read()
        except FileNotFoundError:
            continue
        fields = raw.rsplit(")", 1)[1].split()
        user, system = int(fields[11]) / TICK, int(fields[12]) / TICK
        cpu += user + system
        sys_s += system
        if "wgw-log" in raw:
            log += user + system
        vol += int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
        invol += int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
    return cpu, sys_s, log, vol, invol


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bare-a", default=BARE)
    p.add_argument("--bare-b")
    p.add_argument("--gateway-a", default=GATEWAY)
    p.add_argument("--gateway-b")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seconds", type=int, default=4, help="measured wrk run per target and round")
    p.add_argument("--threads", type=int, default=2, help="worker threads of every proxy")
    p.add_argument("--log-a", help="WGW_LOG for gateway A (e.g. warn: no access log)")
    p.add_argument("--log-b", help="WGW_LOG for gateway B")
    p.add_argument("--connections", type=int, default=32, help="wrk's connections")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk's threads")
    p.add_argument("--qyapi", action="store_true", help="also a qyapi endpoint call of each gateway")
    args = p.parse_args()

    work = tempfile.mkdtemp(prefix="cpu-ab-")
    os.chmod(work, 0o755)
    procs = Procs()
    try:
        targets = ab.start(procs, work, (("A", args.bare_a), ("B", args.bare_b)),
                           (("A", args.gateway_a, args.log_a), ("B", args.gateway_b, args.log_b)),
                           args.threads, qyapi=args.qyapi)
        time.sleep(0.3)

        results = {}
        for round_ in range(args.rounds):
            for name, pid, url, headers in (targets if round_ % 2 == 0 else targets[::-1]):
                load = [f"-t{args.wrk_threads}", f"-c{args.connections}"]
                subprocess.run(["wrk", *load, "-d1s", url] + headers, capture_output=True)
                before = counters(pid)
                out = subprocess.run(["wrk", *load, f"-d{args.seconds}s", url] + headers,
                                     capture_output=True, text=True).stdout
                after = counters(pid)
                n = int(re.search(r"(\d+) requests in", out).group(1))
                rps = float(re.search(r"Requests/sec:\s+(\S+)", out).group(1))
                d = [a - b for a, b in zip(after, before)]
                results.setdefault(name, []).append(
                    (d[0] * 1e6 / n, rps, d[2] * 1e6 / n, d[1] * 1e6 / n, d[3] / n, d[4] / n))

        def median(xs):
            xs = sorted(xs)
            return xs[len(xs) // 2]

        print(f"{'target':10} {'CPU µs/req':>10}  {'rounds':24} {'req/s':>8}  {'log µs':>6} "
              f"{'sys µs':>6}  {'vol/req':>7} {'invol/req':>9}")
        for name, _, _, _ in targets:
            rows = results[name]
            cpu = [r[0] for r in rows]
            print(f"{name:10} {median(cpu):10.2f}  {' '.join(f'{x:.1f}' for x in cpu):24} "
                  f"{median(r[1] for r in rows):8.0f}  {median(r[2] for r in rows):6.2f} "
                  f"{median(r[3] for r in rows):6.2f}  {median(r[4] for r in rows):7.3f} "
                  f"{median(r[5] for r in rows):9.3f}")
    finally:
        procs.stop()


if __name__ == "__main__":
    main()

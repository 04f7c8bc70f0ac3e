"""Two builds side by side, for `cpu_ab.py` and `spread.py`: one nginx upstream answering 200,
the bare pingora proxy of each build and each gateway build, started and ready."""
import os

from bench import (
    EMULATOR,
    NGINX,
    free_port,
    gateway_toml,
    login_cookie,
    nginx_conf,
    wait_http,
)


def start(procs, work, bares, gateways, threads, session=True, qyapi=False):
    """Starts the upstream and, for each `(tag, binary)` of `bares` and `gateways` with a
    binary, that proxy. Returns the targets as `(name, pid, url, wrk headers)`: `bare A`, ...,
    `public A`, with `session` `session A` (a signed-in request) and with `qyapi` `qyapi A`
    (`user/get` through the qyapi endpoint, the token cached, against the emulator)."""
    up, emu = free_port(), free_port()
    conf = nginx_conf(os.path.join(work, "up"), f"""
    server {{ listen 127.0.0.1:{up} reuseport backlog=4096;
        location / {{ return 200 "hello from the upstream\\n"; }} }}""", 2)
    procs.start([NGINX, "-p", os.path.join(work, "up"), "-c", conf])
    wait_http(f"http://127.0.0.1:{up}/")
    quiet = dict(os.environ, WGW_LOG="warn")
    targets = []
    for tag, binary in bares:
        if not binary:
            continue
        port = free_port()
        b = procs.start([binary, f"127.0.0.1:{port}", f"127.0.0.1:{up}",
                         "--threads", str(threads)], env=quiet)
        wait_http(f"http://127.0.0.1:{port}/")
        targets.append((f"bare {tag}", b.pid, f"http://127.0.0.1:{port}/", []))
    if not any(binary for _, binary, *_ in gateways):
        return targets
    procs.start([EMULATOR, "--listen", f"127.0.0.1:{emu}"])
    wait_http(f"http://127.0.0.1:{emu}/_emulator/healthz")
    for tag, binary, log in gateways:
        if not binary:
            continue
        gw, adm, qy = free_port(), free_port(), free_port()
        os.makedirs(os.path.join(work, f"g{tag}"))
        gconf = os.path.join(work, f"g{tag}", "gateway.toml")
        with open(gconf, "w") as f:
            f.write(gateway_toml(gw, adm, emu, up, threads, qyapi=qy if qyapi else None))
        env = dict(os.environ)
        if log:
            env["WGW_LOG"] = log
        with open(os.path.join(work, f"g{tag}.log"), "wb") as logf:
            g = procs.start([binary, "run", "-c", gconf], env=env, stderr=logf)
        wait_http(f"http://127.0.0.1:{adm}/healthz")
        targets.append((f"public {tag}", g.pid, f"http://127.0.0.1:{gw}/", []))
        if session:
            cookie = login_cookie(gw, "crm", "/app/")
            targets.append((f"session {tag}", g.pid, f"http://127.0.0.1:{gw}/app/",
                            ["-H", f"Cookie: {cookie}"]))
        if qyapi:
            url = f"http://127.0.0.1:{qy}/crm/cgi-bin/user/get?userid=zhangsan"
            wait_http(url)
            targets.append((f"qyapi {tag}", g.pid, url, []))
    return targets

#!/usr/bin/env python3
"""The training run of a profile-guided build (scripts/pgo.sh): the instrumented bare proxy and
gateway in `BIN_DIR`, each under the request shapes bench.py measures, writing their counts
into `OUT_DIR` when they stop (a clean stop: SIGTERM).

    python3 bench/pgo_train.py target/pgo-gen/release target/pgo-data
"""
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import EMULATOR, NGINX, Procs, free_port, gateway_toml, login_cookie, nginx_conf, wait_http  # noqa: E402


def wrk(url, headers=(), seconds=3):
    r = subprocess.run(["wrk", "-t1", "-c32", f"-d{seconds}s", url, *headers],
                       capture_output=True, text=True)
    if "Non-2xx" in r.stdout or r.returncode != 0:
        raise RuntimeError(f"{url}: {r.stdout}{r.stderr}")


def stop(proc):
    proc.terminate()
    if proc.wait(timeout=30) != 0:
        raise RuntimeError(f"{proc.args[0]} ended with {proc.returncode}: its counts may be missing")


def main():
    bin_dir, out = (os.path.abspath(a) for a in sys.argv[1:3])
    work = tempfile.mkdtemp(prefix="wgw-pgo-")
    os.chmod(work, 0o755)
    procs = Procs()
    try:
        up, emu = free_port(), free_port()
        os.makedirs(os.path.join(work, "files"))
        with open(os.path.join(work, "files", "big"), "wb") as f:
            f.write(b"x" * 102400)
        conf = nginx_conf(os.path.join(work, "up"), f"""
    server {{
        listen 127.0.0.1:{up} reuseport backlog=4096;
        location / {{ return 200 "hello from the upstream\\n"; }}
        location ~ /big$ {{ root {work}/files; try_files /big =404; }}
    }}""", 2)
        procs.start([NGINX, "-p", os.path.join(work, "up"), "-c", conf])
        procs.start([EMULATOR, "--listen", f"127.0.0.1:{emu}"])
        wait_http(f"http://127.0.0.1:{up}/")
        wait_http(f"http://127.0.0.1:{emu}/_emulator/healthz")
        close = ["-H", "Connection: close"]

        port = free_port()
        bare = subprocess.Popen(
            [os.path.join(bin_dir, "bare-proxy"), f"127.0.0.1:{port}", f"127.0.0.1:{up}", "--threads", "2"],
            env=dict(os.environ, WGW_LOG="warn", LLVM_PROFILE_FILE=f"{out}/bare-%p-%m.profraw"))
        wait_http(f"http://127.0.0.1:{port}/")
        wrk(f"http://127.0.0.1:{port}/")
        wrk(f"http://127.0.0.1:{port}/big", seconds=2)
        wrk(f"http://127.0.0.1:{port}/", close, seconds=1)
        stop(bare)

        gw, admin, qy = free_port(), free_port(), free_port()
        gconf = os.path.join(work, "gateway.toml")
        with open(gconf, "w") as f:
            f.write(gateway_toml(gw, admin, emu, up, 2, qyapi=qy))
        with open(os.path.join(work, "gateway.log"), "wb") as log:
            gateway = subprocess.Popen(
                [os.path.join(bin_dir, "wecom-gateway"), "run", "-c", gconf],
                env=dict(os.environ, LLVM_PROFILE_FILE=f"{out}/gateway-%p-%m.profraw"), stderr=log)
        wait_http(f"http://127.0.0.1:{admin}/readyz")
        session = login_cookie(gw, 'crm', '/app/')
        if not session:
            # Without it every signed-in row would train a 401, and the build would lay the
            # signed-in path out as cold code.
            raise RuntimeError("pgo: the training could not sign in (no session cookie)")
        cookie = ["-H", f"Cookie: {session}"]
        wrk(f"http://127.0.0.1:{gw}/")
        wrk(f"http://127.0.0.1:{gw}/app/", cookie)
        wrk(f"http://127.0.0.1:{gw}/big", seconds=2)
        wrk(f"http://127.0.0.1:{gw}/app/big", cookie, seconds=1)
        wrk(f"http://127.0.0.1:{gw}/", close, seconds=1)
        wrk(f"http://127.0.0.1:{gw}/app/", cookie + close, seconds=1)
        call = f"http://127.0.0.1:{qy}/crm/cgi-bin/user/get?userid=zhangsan"
        urllib.request.urlopen(call).read()
        wrk(call)
        stop(gateway)
        written = sorted(f for f in os.listdir(out) if f.endswith(".profraw"))
        written = [f for f in written if f.startswith(("bare-", "gateway-"))]
        if not any(f.startswith("bare-") for f in written) or not any(f.startswith("gateway-") for f in written):
            raise RuntimeError(f"counts missing in {out}: {written}")
        print("pgo: trained;", ", ".join(written))
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Soak of the callback path (issue 17): N events posted like WeCom while the CRM flaps.

Not part of the test suite (it runs for a minute or more and reports figures, it asserts no
timing). Everything listens on 127.0.0.1 and is stopped at the end:

- a **CRM** that takes `POST /wecom/callback`, checks `X-Gateway-Signature`, and flaps: up for
  `--up` seconds, then down for `--down` seconds, during which it answers 503 or drops the
  connection without an answer (half each);
- the **gateway** (`target/release` when built, else `target/debug`), `[store] backend =
  "local"` (the default: the redb file, fsync'd before `success`), app `crm` forwarding its
  callbacks to that CRM.

The events are `change_contact`/`update_user` messages, each with its own `UserID`,
encrypted and signed with wechatpy (an implementation independent of the gateway's), posted:

1. at WeCom's pace: `--paced` events one after the other, `--pace` per second;
2. faster: the rest from `--senders` concurrent connections as fast as they are answered;
   `--resend` of them are posted a second time (new nonce and timestamp, the same message), as
   WeCom does when `success` is late: they must be acknowledged and delivered once.

A post not answered `success` is posted again (WeCom retries too); an event never acknowledged
is counted as refused, not lost. Then it waits until the CRM has taken every acknowledged event
(or nothing moved for `--drain` seconds) and prints:

- delivered / lost / duplicated: events the CRM took (2xx) / acknowledged but never taken /
  taken more than once (must be N/0/0);
- the paced events' order at the CRM (delivery is in order per app);
- the ack latency (the POST's round trip up to `success`) p50 / p99 / max per phase;
- what the CRM answered (2xx, 503, dropped) and the gateway's `wgw_events_total`.

Run with the repository's Python environment (wechatpy is installed by `make deps`):

    .venv/bin/python bench/soak_callbacks.py                # 10,000 events
    .venv/bin/python bench/soak_callbacks.py --events 2000 --up 2 --down 1
"""
import argparse
import collections
import hashlib
import hmac
import http.client
import http.server
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from wechatpy.enterprise.crypto import WeChatCrypto

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import free_port, wait_http  # noqa: E402  (the driver's helpers)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "soakCallbackToken"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CORP_ID = "wwsoak000000000001"
AGENT_ID = 1000002
ASSERTION_SECRET = "soak-assertion-secret-0123456789abcdef"


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class Crm:
    """The flapping CRM. `taken[user]` counts 2xx answers per event, `order` the first takes."""

    def __init__(self, up, down):
        self.lock = threading.Lock()
        self.taken = collections.Counter()
        self.ids = {}
        self.order = []
        self.answers = collections.Counter()
        self.bad_signature = 0
        self.up, self.down = up, down
        self.started = time.time()
        crm = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if not crm.is_up():
                    if random.random() < 0.5:
                        crm.count("dropped")
                        # No answer at all: the connection is cut.
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    crm.count("503")
                    self.send_response(503)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                mac = hmac.new(ASSERTION_SECRET.encode(), body, hashlib.sha256).hexdigest()
                good = hmac.compare_digest(self.headers.get("x-gateway-signature", ""), "sha256=" + mac)
                m = re.search(rb"<UserID><!\[CDATA\[soak(\d+)\]\]></UserID>|<UserID>soak(\d+)</UserID>", body)
                with crm.lock:
                    if not good or not m:
                        crm.bad_signature += 1
                    else:
                        n = int(m.group(1) or m.group(2))
                        if crm.taken[n] == 0:
                            crm.order.append(n)
                        crm.taken[n] += 1
                        crm.ids.setdefault(n, set()).add(self.headers.get("x-gateway-event-id", ""))
                    crm.answers["2xx"] += 1
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def is_up(self):
        t = (time.time() - self.started) % (self.up + self.down)
        return t < self.up

    def count(self, what):
        with self.lock:
            self.answers[what] += 1

    def delivered(self):
        with self.lock:
            return len(self.taken)


def gateway_config(port, admin, qyapi, crm_port):
    return f"""
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"
qyapi_listen = "127.0.0.1:{qyapi}"

[store]
backend = "local"
path = "soak.db"

[session]
secret = "soak-session-secret-0123456789abcdef"
assertion_secret = "{ASSERTION_SECRET}"

[apps.crm]
kind = "wecom"
corp_id = "{CORP_ID}"
agent_id = {AGENT_ID}
secret = "soak-agent-secret"
api_base = "http://127.0.0.1:9"
callback = {{ token = "{TOKEN}", encoding_aes_key = "{AES_KEY}", forward = "crm", forward_path = "/wecom/callback" }}

[upstreams.crm]
url = "http://127.0.0.1:{crm_port}"
connect_timeout = "1s"
read_timeout = "2s"

[[routes]]
location = "/"
upstream = "crm"
"""


def event_xml(n):
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{1_700_000_000 + n}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[update_user]]></ChangeType>"
        f"<UserID><![CDATA[soak{n}]]></UserID><Department><![CDATA[1,{n % 7 + 2}]]></Department></xml>"
    )


class Sender:
    """One keep-alive connection posting sealed events like WeCom."""

    def __init__(self, port, crypto):
        self.port, self.crypto = port, crypto
        self.conn = None

    def post(self, n):
        """Posts event n until `success` (at most 30 s); returns the first try's latency (s) or
        None if it was never acknowledged."""
        first = None
        deadline = time.time() + 30
        while time.time() < deadline:
            ts = int(time.time())
            nonce = str(random.randrange(10**9, 10**10))
            sealed = self.crypto.encrypt_message(event_xml(n), nonce, ts)
            encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", sealed).group(1)
            sig = re.search(r"<MsgSignature><!\[CDATA\[(.*?)\]\]></MsgSignature>", sealed).group(1)
            body = (
                f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><AgentID><![CDATA[{AGENT_ID}]]></AgentID>"
                f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
            ).encode()
            path = f"/_gateway/callback/crm?msg_signature={sig}&timestamp={ts}&nonce={nonce}"
            t0 = time.perf_counter()
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                self.conn.request("POST", path, body, {"content-type": "text/xml"})
                r = self.conn.getresponse()
                answer = r.read()
                took = time.perf_counter() - t0
                if first is None:
                    first = took
                if r.status == 200 and answer == b"success":
                    return first
            except (OSError, http.client.HTTPException):
                self.conn = None
            time.sleep(0.2)
        return None


def metrics(admin):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    return [l for l in text.splitlines() if l.startswith(("wgw_events_total", "wgw_event_queue_depth"))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--paced", type=int, default=1_000, help="events posted at WeCom's pace first")
    ap.add_argument("--pace", type=float, default=50.0, help="events per second in the paced phase")
    ap.add_argument("--senders", type=int, default=16, help="concurrent connections in the fast phase")
    ap.add_argument("--resend", type=float, default=0.05, help="share of fast-phase events posted twice")
    ap.add_argument("--up", type=float, default=3.0, help="seconds the CRM answers")
    ap.add_argument("--down", type=float, default=1.5, help="seconds the CRM fails")
    ap.add_argument("--drain", type=float, default=120.0, help="give up after this long without progress")
    ap.add_argument("--gateway", help="the binary (default: target/release, else target/debug)")
    args = ap.parse_args()

    gateway = args.gateway
    if not gateway:
        for profile in ("release", "debug"):
            p = os.path.join(ROOT, "target", profile, "wecom-gateway")
            if os.path.exists(p):
                gateway = p
                break
    if not gateway:
        sys.exit("no wecom-gateway binary: cargo build --release --bin wecom-gateway")

    crm = Crm(args.up, args.down)
    work = tempfile.mkdtemp(prefix="wgw-soak-")
    port, admin, qyapi = free_port(), free_port(), free_port()
    conf = os.path.join(work, "gateway.toml")
    with open(conf, "w") as f:
        f.write(gateway_config(port, admin, qyapi, crm.port))
    log = open(os.path.join(work, "gateway.log"), "w")
    ok = False
    gw = subprocess.Popen([gateway, "run", "-c", conf], stdout=log, stderr=log,
                          env=dict(os.environ, WGW_LOG="warn"))
    try:
        wait_http(f"http://127.0.0.1:{admin}/readyz")
        crypto = WeChatCrypto(TOKEN, AES_KEY, CORP_ID)
        n = args.events
        paced = min(args.paced, n)
        lat = {"paced": [], "fast": []}
        refused = []
        acked = set()
        lock = threading.Lock()
        started = time.time()

        # 1. WeCom's pace: one after the other.
        s = Sender(port, crypto)
        for i in range(paced):
            due = started + i / args.pace
            if due > time.time():
                time.sleep(due - time.time())
            t = s.post(i)
            (lat["paced"].append(t), acked.add(i)) if t is not None else refused.append(i)
        paced_done = time.time()

        # 2. Faster: concurrent senders; some events twice.
        todo = list(range(paced, n))
        todo += random.sample(todo, int(len(todo) * args.resend))
        random.shuffle(todo)
        it = iter(todo)

        def worker():
            s = Sender(port, crypto)
            while True:
                with lock:
                    i = next(it, None)
                if i is None:
                    return
                t = s.post(i)
                with lock:
                    if t is None:
                        refused.append(i)
                    else:
                        lat["fast"].append(t)
                        acked.add(i)

        threads = [threading.Thread(target=worker) for _ in range(args.senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        posted_done = time.time()

        # Drain: until every acknowledged event was taken, or nothing moves.
        last, moved = crm.delivered(), time.time()
        while crm.delivered() < len(acked) and time.time() - moved < args.drain:
            time.sleep(0.25)
            if crm.delivered() != last:
                last, moved = crm.delivered(), time.time()
        drained = time.time()

        with crm.lock:
            delivered = sum(1 for i in acked if crm.taken[i] >= 1)
            duplicated = sum(1 for c in crm.taken.values() if c > 1)
            ids_per_event = max((len(v) for v in crm.ids.values()), default=0)
            paced_order = [i for i in crm.order if i < paced]
            inversions = sum(1 for a, b in zip(paced_order, paced_order[1:]) if b < a)
            answers = dict(crm.answers)
            bad = crm.bad_signature
        lost = len(acked) - delivered

        ms = lambda v: f"{v * 1000:.1f} ms"
        print(f"gateway: {gateway} ({'release' if '/release/' in gateway else 'dev build'}), store local")
        print(f"CRM flapping: up {args.up:g} s / down {args.down:g} s (503 or dropped connection)")
        print(f"events: {n} ({paced} paced at {args.pace:g}/s, {n - paced} from {args.senders} senders, "
              f"{len(todo) - (n - paced)} posted twice)")
        print(f"posting took {posted_done - started:.1f} s (paced {paced_done - started:.1f} s), "
              f"all delivered {drained - started:.1f} s after the first post")
        print(f"delivered / lost / duplicated: {delivered} / {lost} / {duplicated}"
              f"   (acknowledged {len(acked)}, never acknowledged {len(refused)})")
        print(f"event ids per event: {ids_per_event} (1 = stable across retries); bad signatures at the CRM: {bad}")
        print(f"paced events in order at the CRM: {'yes' if inversions == 0 else f'no, {inversions} inversions'}")
        for phase, v in lat.items():
            if v:
                print(f"ack latency {phase:>6}: p50 {ms(percentile(v, 50))}  p99 {ms(percentile(v, 99))}  "
                      f"max {ms(max(v))}  ({len(v)} posts)")
        print(f"CRM answers: {answers}")
        for line in metrics(admin):
            print(line)
        ok = delivered == n and lost == 0 and duplicated == 0 and not refused
        print("PASS" if ok else f"FAIL (the gateway's log and database: {work})")
    finally:
        gw.send_signal(signal.SIGTERM)
        try:
            gw.wait(timeout=10)
        except subprocess.TimeoutExpired:
            gw.kill()
        crm.server.shutdown()
        log.close()
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

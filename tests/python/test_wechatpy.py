"""An unmodified wechatpy 1.8 against the gateway's qyapi endpoint (SPEC section 10).

The SDK is given the handle that the endpoint's gettoken / token call answers and its
API_BASE_URL pointed at the endpoint; nothing else changes. wechatpy 1.8 fetches tokens from a
hard-coded https://qyapi.weixin.qq.com / api.weixin.qq.com URL when it sees a token error, so a
single token error reaching the SDK would make these tests fail: they show that the gateway
absorbs expiry for it.

Run with `.venv/bin/python -m pytest tests/python` (after scripts/python-deps.sh and
`cargo build --bins --workspace`), or through `cargo test --test python`, which starts the
gateway and the emulator itself and passes their addresses in WGW_QYAPI_URL and
WGW_EMULATOR_URL.
"""

import io
import os
import socket
import subprocess
import tempfile
import time

import pytest
import requests
import wechatpy
from wechatpy.enterprise import WeChatClient as WeComClient

CORP_ID = "wwemu0000000000001"
AGENT_ID = 1000002
AGENT_SECRET = "emu-agent-secret"
MP_APP_ID = "wxemu000000000001"
MP_SECRET = "emu-mp-secret"

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ok(url, proc):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s exited early with %s" % (proc.args[0], proc.returncode))
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError("%s never became ready" % url)


@pytest.fixture(scope="module")
def world():
    """(qyapi URL, emulator URL): given by the Rust runner, or started here."""
    if os.environ.get("WGW_QYAPI_URL"):
        yield os.environ["WGW_QYAPI_URL"], os.environ["WGW_EMULATOR_URL"]
        return
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    bins = os.path.join(target, "debug")
    emu_port, port, admin, qyapi = free_port(), free_port(), free_port(), free_port()
    emu_url = "http://127.0.0.1:%d" % emu_port
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "gateway.toml")
        with open(config, "w") as f:
            f.write(
                """
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"
qyapi_listen = "127.0.0.1:{qyapi}"
threads = 2

[apps.crm]
kind = "wecom"
corp_id = "{corp}"
agent_id = {agent}
secret = "{secret}"
api_base = "{emu}"

[apps.mp]
kind = "wechat_mp"
app_id = "{mp}"
secret = "{mp_secret}"
api_base = "{emu}"

[upstreams.crm]
url = "http://127.0.0.1:9"

[[routes]]
location = "/"
upstream = "crm"
""".format(port=port, admin=admin, qyapi=qyapi, corp=CORP_ID, agent=AGENT_ID,
                    secret=AGENT_SECRET, emu=emu_url, mp=MP_APP_ID, mp_secret=MP_SECRET)
            )
        try:
            emu = subprocess.Popen(
                [os.path.join(bins, "wecom-emulator"), "--listen", "127.0.0.1:%d" % emu_port],
                stdout=subprocess.DEVNULL,
            )
            procs.append(emu)
            wait_ok(emu_url + "/_emulator/healthz", emu)
            gw = subprocess.Popen(
                [os.path.join(bins, "wecom-gateway"), "run", "-c", config],
                stdout=subprocess.DEVNULL,
            )
            procs.append(gw)
            wait_ok("http://127.0.0.1:%d/healthz" % admin, gw)
            yield "http://127.0.0.1:%d" % qyapi, emu_url
        finally:
            for p in procs:
                p.kill()
                p.wait()


def expire_tokens(emu_url):
    requests.post(emu_url + "/_emulator/expire-tokens").raise_for_status()


def calls(emu_url, api):
    c = requests.get(emu_url + "/_emulator/calls").json()["calls"].get(api, {})
    return c.get("total", 0), c.get("by_errcode", {})


def test_wechatpy_is_the_unmodified_release():
    assert wechatpy.__version__.startswith("1.8")


def test_wecom_client_across_token_expiry(world):
    qyapi, emu = world
    handle = requests.get(
        qyapi + "/cgi-bin/gettoken", params={"corpid": CORP_ID, "corpsecret": AGENT_SECRET}
    ).json()["access_token"]
    assert handle.startswith("wgw1.crm.")

    client = WeComClient(CORP_ID, AGENT_SECRET, access_token=handle)
    client.API_BASE_URL = qyapi + "/cgi-bin/"

    assert client.user.get("zhangsan")["name"] == u"张三"
    sent = client.message.send_text(AGENT_ID, ["zhangsan"], u"你好")
    assert sent["errcode"] == 0 and sent["msgid"]
    gettokens_before, _ = calls(emu, "/cgi-bin/gettoken")

    expire_tokens(emu)
    assert client.user.get("zhangsan")["userid"] == "zhangsan"
    sent = client.message.send_text(AGENT_ID, ["zhangsan"], u"after expiry")
    assert sent["errcode"] == 0
    uploaded = client.media.upload("image", io.BytesIO(b"\xff\xd8\xff" + b"x" * 4096))
    assert uploaded["type"] == "image" and uploaded["media_id"]

    gettokens_after, _ = calls(emu, "/cgi-bin/gettoken")
    assert gettokens_after - gettokens_before == 1
    _, by_errcode = calls(emu, "/cgi-bin/user/get")
    assert by_errcode.get("42001") == 1, "the expiry happened, and the gateway absorbed it"


def test_official_account_client_across_token_expiry(world):
    qyapi, emu = world
    handle = requests.get(
        qyapi + "/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": MP_APP_ID, "secret": MP_SECRET},
    ).json()["access_token"]
    assert handle.startswith("wgw1.mp.")

    client = wechatpy.WeChatClient(MP_APP_ID, MP_SECRET, access_token=handle)
    client.API_BASE_URL = qyapi + "/cgi-bin/"

    first = client.jsapi.get_ticket()
    assert first["ticket"]
    expire_tokens(emu)
    second = client.jsapi.get_ticket()
    assert second["ticket"] and second["ticket"] != first["ticket"]
    tokens, by_errcode = calls(emu, "/cgi-bin/token")
    assert by_errcode.get("0") == tokens


def test_sdk_sees_wecom_errors_unchanged(world):
    qyapi, _ = world
    handle = requests.get(
        qyapi + "/cgi-bin/gettoken", params={"corpid": CORP_ID, "corpsecret": AGENT_SECRET}
    ).json()["access_token"]
    client = WeComClient(CORP_ID, AGENT_SECRET, access_token=handle)
    client.API_BASE_URL = qyapi + "/cgi-bin/"
    with pytest.raises(wechatpy.exceptions.WeChatClientException) as e:
        client.user.get("nobody")
    assert e.value.errcode == 60111

#!/usr/bin/python3
"""Issue 13 point 1, browser attacks: what a web page open in the operator's
browser can make the browser send to the gateway on loopback. Reproduces
the hand-made attack of the review (a POST /api/whatsapp/reconnect with
`Origin: https://evil.example` and no key was answered 200 and unlinked the
phone) and DNS rebinding (a request with an attacker's Host name was
answered). Checks: a foreign Host is refused with 403 (loopback names, the
bind address and ALLOWED_HOSTS pass); POST and WebSocket upgrades from a
foreign Origin are refused with 403, key or no key, while the service's own
origin, listed origins and non-browser clients (no Origin) pass;
CORS_ORIGINS=* never exposes qr or the account to a caller without the key;
the key is not accepted in the query string. Every one of these checks fails
on the code before the fix."""
import json, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import TMP, GW, procs, fail, check, free_port, start_fakewa, gateway_env, req
from wsclient import WS

KEY = "browser-test-key-0123456789"
EVIL = "https://evil.example"


def start_gw(fw, name, extra):
    port = free_port()
    p = subprocess.Popen([GW, "--port", str(port), "--grpc-port", str(free_port()),
                          "--data-dir", os.path.join(TMP, "data-" + name)] + list(extra),
                         env=gateway_env(fw), stderr=open(os.path.join(TMP, "gw-%s.log" % name), "w"))
    procs.append(p)
    for _ in range(100):
        try:
            if req(port, "GET", "/healthz")[0] == 200:
                return port, p
        except OSError:
            time.sleep(0.05)
    fail("gateway %s did not start" % name)


def wait_state(port, state, headers=None):
    for _ in range(200):
        st, _, b = req(port, "GET", "/api/whatsapp/status", headers=headers)
        if st == 200 and json.loads(b)["data"]["state"] == state:
            return
        time.sleep(0.05)
    fail("state %s not reached" % state)


def link(port, fw, headers=None):
    """Pairs the gateway with the fake phone; returns when CONNECTED."""
    wait_state(port, "QR_READY", headers)
    st, _, raw = req(port, "GET", "/api/whatsapp/qr?format=raw", headers=headers)
    check(st == 200, "raw QR %d" % st)
    check(req(fw["cport"], "POST", "/control/scan", body=raw)[0] == 200, "scan refused")
    wait_state(port, "CONNECTED", headers)


def ws_status(port, path, headers):
    try:
        w = WS("127.0.0.1", port, path, headers=headers)
        st = w.status
        w.close()
        return st
    except EOFError:
        return 0


fw = start_fakewa("--refs", "5", "--qr-first-ms", "30000", "--qr-next-ms", "20000")

# --- no key, no CORS: the default loopback setup ---
port, gw = start_gw(fw, "nokey", [])
own = "http://127.0.0.1:%d" % port
wait_state(port, "QR_READY")

# DNS rebinding: the attacker's name, resolved to 127.0.0.1 by the browser
for path in ("/api/whatsapp/status", "/api/whatsapp/qr", "/", "/nope"):
    st, _, b = req(port, "GET", path, headers={"Host": "rebind.evil.example:%d" % port})
    check(st == 403 and json.loads(b)["success"] is False, "foreign Host on %s gave %d" % (path, st))
st, _, _ = req(port, "POST", "/api/whatsapp/reconnect", headers={"Host": "rebind.evil.example"})
check(st == 403, "foreign Host on POST reconnect gave %d" % st)
for h in ("127.0.0.1:%d" % port, "localhost:%d" % port, "LOCALHOST", "[::1]:%d" % port):
    st, _, _ = req(port, "GET", "/api/whatsapp/status", headers={"Host": h})
    check(st == 200, "loopback Host %s refused (%d)" % (h, st))

# the review's attack: a cross-site POST that unlinks the phone
st, _, b = req(port, "POST", "/api/whatsapp/reconnect", headers={"Origin": EVIL})
check(st == 403 and "Origin" in json.loads(b)["message"], "cross-site reconnect gave %d %s" % (st, b))
for path in ("/api/whatsapp/logout", "/whatsapp/reconnect", "/api/whatsapp/nope", "/api/whatsapp/status"):
    st, _, _ = req(port, "POST", path, headers={"Origin": EVIL, "Content-Type": "text/plain"}, body=b"{}")
    check(st == 403, "cross-site POST %s gave %d" % (path, st))
st, _, _ = req(port, "POST", "/api/whatsapp/reconnect", headers={"Origin": "null"})
check(st == 403, "POST from Origin null gave %d" % st)
st, _, _ = req(port, "DELETE", "/api/whatsapp/status", headers={"Origin": EVIL})
check(st == 403, "cross-site DELETE gave %d" % st)
# WebSocket upgrades are not covered by CORS: refused from a foreign page
check(ws_status(port, "/api/whatsapp/ws", {"Origin": EVIL}) == 403, "cross-site WebSocket not refused")
check(ws_status(port, "/api/whatsapp/ws", {"Origin": own}) == 101, "same-origin WebSocket refused")
check(ws_status(port, "/api/whatsapp/ws", {}) == 101, "WebSocket without Origin refused")
# reads from a foreign page get no CORS header (the browser keeps them from the page)
st, h, _ = req(port, "GET", "/api/whatsapp/qr", headers={"Origin": EVIL})
check("access-control-allow-origin" not in h, "CORS header for a foreign origin")
# the service's own page and non-browser clients still change state
st, _, b = req(port, "POST", "/api/whatsapp/reconnect", headers={"Origin": own}, timeout=20)
check(st == 200, "same-origin reconnect gave %d %s" % (st, b))
st, _, b = req(port, "POST", "/api/whatsapp/reconnect", timeout=20)
check(st == 200, "reconnect without Origin gave %d %s" % (st, b))
gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")

# --- a key, a listed origin, ALLOWED_HOSTS ---
port, gw = start_gw(fw, "key", ["--api-key", KEY, "--cors-origins", "http://dash.example",
                                "--allowed-hosts", "gw.example.org"])
K = {"X-API-Key": KEY}
wait_state(port, "QR_READY")
st, _, _ = req(port, "GET", "/api/whatsapp/status", headers={"Host": "gw.example.org:%d" % port})
check(st == 200, "ALLOWED_HOSTS name refused (%d)" % st)
st, _, _ = req(port, "GET", "/api/whatsapp/status", headers={"Host": "other.example.org"})
check(st == 403, "unlisted Host accepted (%d)" % st)
# key or no key, a foreign page cannot change state
st, _, _ = req(port, "POST", "/api/whatsapp/reconnect", headers=dict(K, Origin=EVIL))
check(st == 403, "cross-site reconnect with the key gave %d" % st)
check(ws_status(port, "/api/whatsapp/events", dict(K, Origin=EVIL)) == 403,
      "cross-site WebSocket with the key not refused")
st, _, _ = req(port, "POST", "/api/whatsapp/logout", headers=dict(K, Origin="http://dash.example"))
check(st == 200, "listed origin's logout gave %d" % st)
check(ws_status(port, "/api/whatsapp/events", dict(K, Origin="http://dash.example")) == 101,
      "listed origin's WebSocket refused")
# the key never travels in a URL: ?apiKey= is not a key
check(ws_status(port, "/api/whatsapp/events?apiKey=" + KEY, {}) == 401, "?apiKey= accepted on WebSocket")
st, _, _ = req(port, "GET", "/api/whatsapp/qr?apiKey=" + KEY)
check(st == 401, "?apiKey= accepted on qr (%d)" % st)
gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")

# --- CORS_ORIGINS=* without a key: nothing secret to any page ---
port, gw = start_gw(fw, "star", ["--cors-origins", "*"])
link(port, fw)
st, h, b = req(port, "GET", "/api/whatsapp/status", headers={"Origin": EVIL})
d = json.loads(b)["data"]
check(h.get("access-control-allow-origin") == EVIL and "account" not in d,
      "CORS=* status to a foreign page: %s %s" % (h.get("access-control-allow-origin"), d))
st, _, b = req(port, "GET", "/api/whatsapp/status")
check("account" in json.loads(b)["data"], "no account for a local client without a key configured")
st, _, _ = req(port, "POST", "/api/whatsapp/reconnect", body=b'{"keepCredentials":true}')
wait_state(port, "CONNECTED")
for path in ("/api/whatsapp/qr", "/api/whatsapp/qr?format=raw"):
    st, h, _ = req(port, "GET", path, headers={"Origin": EVIL})
    check("access-control-allow-origin" not in h, "CORS=* exposes %s without a key" % path)
st, _, _ = req(port, "POST", "/api/whatsapp/logout", headers={"Origin": EVIL})
check(st == 403, "CORS=* without a key lets a foreign page log out (%d)" % st)
check(ws_status(port, "/api/whatsapp/ws", {"Origin": EVIL}) == 403, "CORS=* WebSocket without a key")
gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")

# --- CORS_ORIGINS=* with a key: the key decides ---
port, gw = start_gw(fw, "starkey", ["--cors-origins", "*", "--api-key", KEY])
link(port, fw, K)
st, h, b = req(port, "GET", "/api/whatsapp/status", headers={"Origin": EVIL})
check("account" not in json.loads(b)["data"], "CORS=* status shows the account without the key")
st, h, b = req(port, "GET", "/api/whatsapp/status", headers=dict(K, Origin=EVIL))
check("account" in json.loads(b)["data"] and h.get("access-control-allow-origin") == EVIL,
      "CORS=* with the key: %s" % h)
st, h, _ = req(port, "GET", "/api/whatsapp/qr", headers={"Origin": EVIL})
check(st == 401 and "access-control-allow-origin" not in h, "CORS=* qr without the key (%d)" % st)
st, _, _ = req(port, "POST", "/api/whatsapp/logout", headers={"Origin": EVIL})
check(st == 401, "CORS=* logout without the key (%d)" % st)
gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")
fw["proc"].terminate()
print("PASS")

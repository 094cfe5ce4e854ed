#!/usr/bin/python3
"""The passkey step of linking end to end in real headless Chromium: the
link page, loaded from http://localhost:<port>/ (a secure context), runs the
WebAuthn ceremony itself with Chromium's virtual authenticator (DevTools
WebAuthn.addVirtualAuthenticator: ctap2, internal, user verification) that
holds the account's P-256 passkey for rpId "localhost"; the fake WhatsApp
server knows the same credential's public key and verifies the assertion
(challenge, origin, rpId hash, flags, ECDSA signature). Asserted: the page
posts the assertion without any help, shows the phone's confirmation code,
and reaches CONNECTED without a reload; the fake counted one good assertion
and a verified handoff proof; the authenticator's signature counter moved."""
import base64, http.client, json, os, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsclient import WS
from e2elib import TMP, GW, procs, fail, check, free_port, start_fakewa, gateway_env, req
from passkeylib import Passkey, Events

OUT = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", TMP)

env = start_fakewa("--refs", "6", "--qr-first-ms", "60000", "--qr-next-ms", "20000")
cport = env["cport"]
port = free_port()
gw = subprocess.Popen([GW, "--port", str(port), "--grpc-port", str(free_port()),
                       "--data-dir", os.path.join(TMP, "data")],
                      env=gateway_env(env), stderr=open(os.path.join(TMP, "gw.log"), "w"))
procs.append(gw)
for _ in range(100):
    try:
        if req(port, "GET", "/healthz")[0] == 200:
            break
    except OSError:
        time.sleep(0.05)


def control(method, path, body=None):
    st, _, data = req(cport, method, path, body=body)
    return st, json.loads(data)


# the account's passkey, known to the fake server for the page's origin
origin = "http://localhost:%d" % port
pk = Passkey()
st, j = pk.register(control, "localhost", origin)
check(st == 200, "credential refused: %s" % j)
check(control("POST", "/control/passkey/on-scan")[0] == 200, "on-scan refused")
events = Events(port)

chrome = shutil.which("chromium") or "/usr/bin/chromium"
profile = tempfile.mkdtemp(dir=TMP)
cr = subprocess.Popen([chrome, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                       "--disable-background-networking", "--disable-component-update",
                       "--disable-sync", "--disable-quic", "--user-data-dir=" + profile,
                       "--remote-debugging-port=0", "--window-size=800,1000", "about:blank"],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
procs.append(cr)
portfile = os.path.join(profile, "DevToolsActivePort")
for _ in range(200):
    if os.path.exists(portfile) and open(portfile).read().count("\n") >= 1:
        break
    time.sleep(0.05)
dport = int(open(portfile).read().split()[0])
c = http.client.HTTPConnection("127.0.0.1", dport, timeout=5)
c.request("GET", "/json/list")
page = [t for t in json.loads(c.getresponse().read()) if t["type"] == "page"][0]
ws = WS("127.0.0.1", dport, page["webSocketDebuggerUrl"].split(str(dport), 1)[1])
msg_id = 0


def cdp(method, **params):
    global msg_id
    msg_id += 1
    ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
    end = time.time() + 20
    while time.time() < end:
        m = ws.recv()
        if m.get("id") == msg_id:
            if "error" in m:
                fail("CDP %s: %s" % (method, m["error"]))
            return m.get("result", {})
    fail("CDP %s: no answer" % method)


def js(expr):
    return cdp("Runtime.evaluate", expression=expr, returnByValue=True).get("result", {}).get("value")


def wait_text(elem, want, secs):
    end = time.time() + secs
    got = None
    while time.time() < end:
        got = js("document.getElementById(%r) && document.getElementById(%r).textContent" % (elem, elem))
        if got is not None and want in got:
            return
        time.sleep(0.05)
    fail("#%s never showed %r (last %r; message %r; fake %s)" % (
        elem, want, got, js("document.getElementById('msg').textContent"),
        control("GET", "/control/state")[1].get("passkey")))


# the virtual authenticator with the account's passkey
cdp("WebAuthn.enable", enableUI=False)
auth = cdp("WebAuthn.addVirtualAuthenticator", options={
    "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
    "hasUserVerification": True, "isUserVerified": True,
    "automaticPresenceSimulation": True})["authenticatorId"]
cdp("WebAuthn.addCredential", authenticatorId=auth, credential={
    "credentialId": base64.b64encode(pk.cred_id).decode(), "isResidentCredential": False,
    "rpId": "localhost", "privateKey": pk.pkcs8_b64, "signCount": 0})

cdp("Page.enable")
cdp("Page.navigate", url="http://localhost:%d/" % port)
wait_text("state", "QR_READY", 30)
# keep every code the page shows (it may be on screen only briefly)
# (from the mutation records: two updates in one task leave only the last
# text in the element by the time the observer runs)
js("""window.__codes = []; new MutationObserver((records) => {
        for (const r of records)
          for (const n of r.addedNodes) if (n.textContent) window.__codes.push(n.textContent);
        const t = document.getElementById('pkcode').textContent; if (t) window.__codes.push(t);
     }).observe(document.getElementById('pkcode'), {childList: true, characterData: true, subtree: true});
     true""")

# the phone scans; WhatsApp asks for the passkey; the page does the rest
qr = req(port, "GET", "/api/whatsapp/qr?format=raw")[2]
st, j = control("POST", "/control/scan", qr)
check(st == 202 and j.get("passkey"), "scan: %s %s" % (st, j))
wait_text("state", "CONNECTED", 15)
open(os.path.join(OUT, "passkey-connected.png"), "wb").write(
    base64.b64decode(cdp("Page.captureScreenshot", format="png")["data"]))
check(js("performance.getEntriesByType('navigation').length") == 1, "the page was reloaded")

fst = control("GET", "/control/state")[1]
pkst = fst["passkey"]
check(pkst["assertionsOk"] == 1 and pkst["assertionsBad"] == 0, "fake: %s" % pkst)
check(pkst["handoffOk"] == 1, "handoff proof not verified: %s" % pkst)
check(pkst["pairingRequestsOk"] == 1 and fst["paired"] == 1, "fake: %s" % fst)
codes = js("window.__codes")
check(pkst["code"] in (codes or []), "the page showed %r, the phone %r" % (codes, pkst["code"]))
seen = events.find(lambda e: e.get("detail") == "passkey_confirm")
check(seen and seen[-1].get("linkCode") == pkst["code"], "status code: %s" % seen)
creds = cdp("WebAuthn.getCredentials", authenticatorId=auth)["credentials"]
check(len(creds) == 1 and creds[0]["signCount"] >= 1, "the authenticator did not sign: %s" % creds)
print("linked with the passkey; code %s" % pkst["code"])

events.close()
ws.close()
cr.terminate()
cr.wait(10)
gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")
env["proc"].terminate()
print("PASS")

#!/usr/bin/python3
"""The link page in real headless Chromium (Debian's chromium), driven over
the DevTools protocol: it shows QR_READY from the event stream; a screenshot
of the QR decodes (zbarimg) to the current QR string; after a click on
"Simulate phone scan" it shows CONNECTED within 2 seconds without a reload;
after a logout fault from the fake server it shows DISCONNECTED with the
reason; "Link with phone number instead" then shows a pairing code with its
countdown, and the simulated phone typing it links (CONNECTED). With an API
key, the page asks for it once and sends it in the X-API-Key header on every
request, its event stream included (fetch streaming): no request URL carries
the key (issue 13 point 1; before, the event stream put it in the query
string). A second session: the page lists the sessions, creates one (its
key shown once), links it by its own QR and switches back to default. The
page also works with PAGE turned off (404)."""
import base64, http.client, json, os, shutil, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsclient import WS

from e2elib import SRC, TMP, GW, procs, fail, check, free_port, start_fakewa, gateway_env
from e2elib import req as _req

OUT = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", TMP)


def req(port, method, path, body=None):
    st, _, data = _req(port, method, path, body=body)
    return st, data


env = start_fakewa("--refs", "3", "--qr-first-ms", "60000", "--qr-next-ms", "20000")
fw, control, cport = env["proc"], env["CONTROL"], env["cport"]
port = free_port()
gw = subprocess.Popen([GW, "--port", str(port), "--grpc-port", str(free_port()),
                       "--data-dir", os.path.join(TMP, "data"), "--demo-control-url", control],
                      env=gateway_env(env), stderr=open(os.path.join(TMP, "gw.log"), "w"))
procs.append(gw)
for _ in range(100):
    try:
        if req(port, "GET", "/healthz")[0] == 200:
            break
    except OSError:
        time.sleep(0.05)

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
targets = json.loads(c.getresponse().read())
page = [t for t in targets if t["type"] == "page"][0]
ws = WS("127.0.0.1", dport, page["webSocketDebuggerUrl"].split(str(dport), 1)[1])
msg_id = 0
events = []  # DevTools events received while waiting for answers


def cdp(method, **params):
    global msg_id
    msg_id += 1
    ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
    while True:
        m = ws.recv()
        if "method" in m:
            events.append(m)
        if m.get("id") == msg_id:
            if "error" in m:
                fail("CDP %s: %s" % (method, m["error"]))
            return m.get("result", {})


def js(expr):
    r = cdp("Runtime.evaluate", expression=expr, returnByValue=True)
    return r.get("result", {}).get("value")


def wait_text(elem, want, secs):
    end = time.time() + secs
    got = None
    while time.time() < end:
        got = js("document.getElementById(%r) && document.getElementById(%r).textContent" % (elem, elem))
        if got is not None and want in got:
            return time.time()
        time.sleep(0.03)
    fail("#%s never showed %r (last %r)" % (elem, want, got))


cdp("Page.enable")
cdp("Page.navigate", url="http://127.0.0.1:%d/" % port)
wait_text("state", "QR_READY", 30)
for _ in range(100):  # the QR image and the countdown are in place
    if js("document.getElementById('qr').naturalWidth > 0 && /Expires in/.test(document.getElementById('countdown').textContent)"):
        break
    time.sleep(0.05)
check(js("getComputedStyle(document.getElementById('scan')).display") != "none", "no scan button in demo mode")
shot = base64.b64decode(cdp("Page.captureScreenshot", format="png")["data"])
path = os.path.join(OUT, "page-qr.png")
open(path, "wb").write(shot)
st, raw = req(port, "GET", "/api/whatsapp/qr?format=raw")
dec = subprocess.run(["zbarimg", "--raw", "-q", path], capture_output=True, text=True).stdout.strip()
check(st == 200 and dec == raw.decode(), "screenshot QR decodes to %r, want %r" % (dec[:60], raw[:60]))

t0 = time.time()
js("document.getElementById('scan').click()")
t1 = wait_text("state", "CONNECTED", 2.0)
check(t1 - t0 <= 2.0, "CONNECTED after %.2f s" % (t1 - t0))
wait_text("account", "15551234567", 2)
open(os.path.join(OUT, "page-connected.png"), "wb").write(
    base64.b64decode(cdp("Page.captureScreenshot", format="png")["data"]))
print("connected %.2f s after the click" % (t1 - t0))

st, _ = req(cport, "POST", "/control/fault", b"logged_out")
check(st == 200, "fault refused")
wait_text("state", "DISCONNECTED", 5)
wait_text("detail", "Logged out", 2)
check(js("performance.getEntriesByType('navigation').length") == 1, "the page was reloaded")
open(os.path.join(OUT, "page-disconnected.png"), "wb").write(
    base64.b64decode(cdp("Page.captureScreenshot", format="png")["data"]))

# linking by phone number from DISCONNECTED: the form starts a registration
# and shows the code with its countdown; the simulated phone types it
js("document.getElementById('phonebox').open = true;"
   "document.getElementById('phone').value = '+1 555-123-4567';"
   "document.getElementById('phoneform').requestSubmit()")
wait_text("code", "-", 15)
code = js("document.getElementById('code').textContent")
st, b = req(port, "GET", "/api/whatsapp/status")
check(json.loads(b)["data"].get("linkCode") == code, "page code %r is not the status's" % code)
wait_text("codecountdown", "Valid for", 2)
check(js("getComputedStyle(document.getElementById('qrbox')).display") != "none", "QR hidden beside the code")
open(os.path.join(OUT, "page-code.png"), "wb").write(
    base64.b64decode(cdp("Page.captureScreenshot", format="png")["data"]))
js("document.getElementById('typecode').click()")
wait_text("state", "CONNECTED", 10)
check(js("getComputedStyle(document.getElementById('phonebox')).display") == "none", "code form while linked")
print("linked by pairing code from the page")

# A second session: the page lists the sessions, creates "sales" (showing
# its key once), switches to it (its own QR, from /api/sessions/sales/...),
# links it with a scan, and switches back to default, still linked.
for _ in range(100):
    if js("document.getElementById('session').options.length") == 1:
        break
    time.sleep(0.05)
check(js("!document.getElementById('sessions').hidden && document.getElementById('session').value") == "default",
      "no session list with default selected")
js("document.getElementById('newname').value = 'sales';"
   "document.getElementById('newform').requestSubmit()")
wait_text("sessname", "sales", 5)
wait_text("state", "QR_READY", 30)
newkey = js("(document.getElementById('newkeyvalue') || {}).textContent")
check(newkey and len(newkey) >= 32, "the new session's key was not shown: %r" % newkey)
check(js("[...document.getElementById('session').options].map(o => o.value).join(',')") == "default,sales",
      "the list after the create: %r" % js("document.getElementById('session').innerText"))
check(js("location.hash") == "#session=sales", "the fragment names the session")
for _ in range(100):
    if js("document.getElementById('qr').naturalWidth > 0 && /Expires in/.test(document.getElementById('countdown').textContent)"):
        break
    time.sleep(0.05)
path = os.path.join(OUT, "page-sales-qr.png")
open(path, "wb").write(base64.b64decode(cdp("Page.captureScreenshot", format="png")["data"]))
st, raw = req(port, "GET", "/api/sessions/sales/qr?format=raw")
dec = subprocess.run(["zbarimg", "--raw", "-q", path], capture_output=True, text=True).stdout.strip()
check(st == 200 and dec == raw.decode(), "sales' QR on the page decodes to %r, want %r" % (dec[:60], raw[:60]))
st, draw = req(port, "GET", "/api/whatsapp/qr?format=raw")
check(st == 409, "default shows a QR while linked (%d)" % st)
js("document.getElementById('scan').click()")
wait_text("state", "CONNECTED", 5)
wait_text("account", "15551234567", 2)
st, b = req(cport, "GET", "/control/state")
check(len(json.loads(b)["devices"]) == 2, "two devices on the fake server: %s" % b[:300])
st, b = req(port, "GET", "/api/sessions/sales/status")
check(json.loads(b)["data"]["state"] == "CONNECTED", "sales not linked: %s" % b[:200])
wait_text("session", "sales \u2014 CONNECTED", 2)
js("const s = document.getElementById('session'); s.value = 'default'; s.dispatchEvent(new Event('change'))")
wait_text("state", "CONNECTED", 5)
wait_text("account", "15551234567", 2)
check(js("location.hash") == "" and js("document.getElementById('sessname').textContent") == "",
      "back on default")
check(js("performance.getEntriesByType('navigation').length") == 1, "the page was reloaded")
print("second session created, linked and switched from the page")

gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")

# With an API key: the page asks for it (a prompt, answered here), then
# sends it in the X-API-Key header only; the event stream works with it.
KEY = "page-test-key-0123456789abcdef"
kport = free_port()
gwk = subprocess.Popen([GW, "--port", str(kport), "--grpc-port", str(free_port()),
                        "--data-dir", os.path.join(TMP, "data-key"), "--api-key", KEY],
                       env=gateway_env(env), stderr=open(os.path.join(TMP, "gw-key.log"), "w"))
procs.append(gwk)
for _ in range(100):
    try:
        if req(kport, "GET", "/healthz")[0] == 200:
            break
    except OSError:
        time.sleep(0.05)
cdp("Network.enable")
del events[:]
ws.send(json.dumps({"id": 0, "method": "Page.navigate", "params": {"url": "http://127.0.0.1:%d/" % kport}}))
answered = False
end = time.time() + 10
while time.time() < end and not answered:  # the prompt for the key
    m = ws.recv()
    if m.get("method"):
        events.append(m)
    if m.get("method") == "Page.javascriptDialogOpening":
        msg_id += 1
        ws.send(json.dumps({"id": msg_id, "method": "Page.handleJavaScriptDialog",
                            "params": {"accept": True, "promptText": KEY}}))
        answered = True
check(answered, "the page did not ask for the key")
wait_text("state", "QR_READY", 30)
for _ in range(100):  # the QR (a keyed route) is shown
    if js("document.getElementById('qr').naturalWidth > 0"):
        break
    time.sleep(0.05)
check(js("document.getElementById('qr').naturalWidth > 0"), "no QR image with a key")
st, raw = _req(kport, "GET", "/api/whatsapp/qr?format=raw", headers={"X-API-Key": KEY})[0::2]
check(req(cport, "POST", "/control/scan", raw)[0] == 200, "scan refused")
wait_text("state", "CONNECTED", 5)  # a change delivered by the keyed event stream
js("1")  # collect the network events so far
sent = [e["params"]["request"] for e in events if e["method"] == "Network.requestWillBeSent"]
check(any(r["url"].endswith("/api/whatsapp/events") and r["headers"].get("X-API-Key") == KEY for r in sent),
      "the event stream did not send X-API-Key: %s" % [r["url"] for r in sent])
check(not any(KEY in r["url"] for r in sent), "the key is in a URL: %s" % [r["url"] for r in sent])
print("keyed page ok: %d requests, key only in headers" % len(sent))

ws.close()
cr.terminate()
cr.wait(10)
gwk.terminate()
check(gwk.wait(10) == 0, "gateway exit status")

# PAGE=0 turns the page off
p2 = free_port()
gw2 = subprocess.Popen([GW, "--port", str(p2), "--grpc-port", str(free_port()), "--data-dir",
                        os.path.join(TMP, "data2")],
                       env=dict(gateway_env(env), PAGE="0"),
                       stderr=subprocess.DEVNULL)
procs.append(gw2)
for _ in range(100):
    try:
        st, _ = req(p2, "GET", "/")
        break
    except OSError:
        time.sleep(0.05)
check(st == 404, "PAGE=0 still serves the page (%d)" % st)
gw2.terminate()
gw2.wait(10)
fw.terminate()
print("PASS")

#!/usr/bin/python3
"""Several sessions over HTTP against the fake WhatsApp server: three
sessions ("default" and two created with POST /api/sessions) linked at once,
each scanning its own QR (three companion devices on the fake server),
watched by SSE subscribers (GET /api/events for all of them, a session's own
events with its key); restarted together without a QR; one deleted (the
fake server sees that device removed, the others stay linked and
connected); the errors of the sessions API (400, 404, 409, 507, 403)."""
import json, os, signal, socket, sys, threading, time
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import check, fail, req, start_fakewa, start_gateway  # noqa: E402

ADMIN = "admin-key-for-the-sessions-test-0123"
A = {"X-API-Key": ADMIN}


class SSE:
    """An SSE subscriber reading in a thread; events are parsed JSON objects."""

    def __init__(self, port, path, headers):
        self.events, self.ended, self.lock = [], False, threading.Lock()
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.c.request("GET", path, headers=headers)
        self.sock = self.c.sock
        self.r = self.c.getresponse()
        self.status = self.r.status
        if self.status == 200:
            threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        buf = b""
        try:
            while True:
                chunk = self.r.read1(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    for line in block.split(b"\n"):
                        if line.startswith(b"data: "):
                            with self.lock:
                                self.events.append(json.loads(line[6:]))
        except Exception:  # closed under the reader, or a malformed event
            pass
        self.ended = True

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def wait(self, pred, secs, what):
        t0 = time.time()
        while time.time() - t0 < secs:
            if pred(self.snapshot()):
                return
            time.sleep(0.05)
        fail("SSE: %s; got %s" % (what, [(e.get("session"), e.get("state")) for e in self.snapshot()][-20:]))

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader at once
        except OSError:
            pass
        self.c.close()


def api(port, method, path, body=None, headers=None):
    st, _, b = req(port, method, path, body=body, headers=A if headers is None else headers)
    try:
        return st, json.loads(b)
    except ValueError:
        return st, b


def control(fw, method, path, body=None):
    st, _, b = req(fw["cport"], method, path, body=body)
    return st, (json.loads(b) if b.startswith(b"{") else b)


T0 = time.time()


def step(what):
    print("%6.2fs %s" % (time.time() - T0, what), flush=True)


def latest(events):
    """The last state of each session in an /api/events stream."""
    out = {}
    for e in events:
        out[e["session"]] = e
    return out


fw = start_fakewa("--qr-first-ms", "60000", "--qr-next-ms", "20000")
args = ["--api-key", ADMIN, "--max-sessions", "4"]
gw, port, gport, log = start_gateway(fw, "sessions", args)

step("---")
# --- create two sessions next to "default" ---
keys = {}
for name in ("sales", "support"):
    st, b = api(port, "POST", "/api/sessions", body=json.dumps({"name": name, "deviceName": "WA " + name}))
    check(st == 201 and b["success"] and b["data"]["session"] == name and len(b["data"]["key"]) >= 32,
          "create %s: %s %s" % (name, st, b))
    keys[name] = b["data"]["key"]
st, b = api(port, "POST", "/api/sessions", body=b'{"name":"sales"}')
check(st == 409 and not b["success"], "duplicate name: %s %s" % (st, b))
st, b = api(port, "POST", "/api/sessions", body=b'{"name":"Not Valid"}')
check(st == 400 and not b["success"], "bad name in the body: %s %s" % (st, b))
st, b = api(port, "GET", "/api/sessions/Bad.Name/status")
check(st == 400 and not b["success"], "bad name in the path: %s %s" % (st, b))
st, b = api(port, "GET", "/api/sessions/nosuch")
check(st == 404 and not b["success"], "unknown session: %s %s" % (st, b))
st, b = api(port, "GET", "/api/sessions/nosuch/qr")
check(st == 404 and not b["success"], "unknown session's qr: %s %s" % (st, b))
st, b = api(port, "GET", "/api/sessions", headers={"X-API-Key": keys["sales"]})
check(st == 403, "a session key lists the sessions: %s %s" % (st, b))
st, b = api(port, "GET", "/api/sessions/support/qr", headers={"X-API-Key": keys["sales"]})
check(st == 403, "a session key on another session: %s %s" % (st, b))

step("---")
# --- subscribers: every session (admin), and sales with its own key ---
every = SSE(port, "/api/events", A)
check(every.status == 200, "GET /api/events: %d" % every.status)
sales_ev = SSE(port, "/api/sessions/sales/events", {"X-API-Key": keys["sales"]})
check(sales_ev.status == 200, "sales events with its key: %d" % sales_ev.status)
check(SSE(port, "/api/events", {"X-API-Key": keys["sales"]}).status == 403, "/api/events with a session key")
NAMES = ("default", "sales", "support")
every.wait(lambda ev: all(latest(ev).get(n, {}).get("state") == "QR_READY" for n in NAMES), 20,
           "every session shows a QR")

step("---")
# --- each scans its own QR ---
jids = {}
for name in NAMES:
    h = {"X-API-Key": ADMIN if name == "default" else keys[name]}
    st, _, raw = req(port, "GET", "/api/sessions/%s/qr?format=raw" % name, headers=h)
    check(st == 200 and raw.count(b",") >= 3, "raw QR of %s: %s %r" % (name, st, raw[:20]))
    st, b = control(fw, "POST", "/control/scan", body=raw)
    check(st == 200, "scan of %s: %s %s" % (name, st, b))
every.wait(lambda ev: all(latest(ev).get(n, {}).get("state") == "CONNECTED" for n in NAMES), 20,
           "the three sessions connected")
sales_ev.wait(lambda ev: ev and ev[-1]["state"] == "CONNECTED", 5, "sales' own stream sees CONNECTED")
check(all(e["session"] == "sales" for e in sales_ev.snapshot()), "another session in sales' stream")
st, b = control(fw, "GET", "/control/state")
check(len(b["devices"]) == 3 and len(set(b["devices"])) == 3 and b["live"] == 3 and b["doubleLive"] == 0,
      "three devices, three live connections: %s" % b)
st, b = api(port, "GET", "/api/sessions")
check(st == 200 and sorted(s["session"] for s in b["data"]) == sorted(NAMES)
      and all(s["state"] == "CONNECTED" and s["connected"] and "account" in s for s in b["data"]),
      "the list, linked, with accounts for the admin: %s" % b)
for s in b["data"]:
    jids[s["session"]] = s["account"]["jid"]
check(len(set(jids.values())) == 3 and set(jids.values()) == set(fw_jid for fw_jid in
      control(fw, "GET", "/control/state")[1]["devices"]), "each session its own device: %s" % jids)
st, b = api(port, "GET", "/api/sessions?state=QR_READY")
check(st == 200 and b["data"] == [], "?state=QR_READY while all are linked: %s" % b)
st, b = api(port, "GET", "/api/sessions?state=NOPE")
check(st == 400, "?state=NOPE: %s" % st)
st, b = api(port, "GET", "/api/sessions/support")
check(st == 200 and b["data"]["state"] == "CONNECTED" and b["data"]["session"] == "support",
      "GET /api/sessions/support: %s" % b)
st, b = api(port, "GET", "/api/sessions/support/status", headers={})
check(st == 200 and "account" not in b["data"], "status without a key hides the account: %s" % b)
st, b = api(port, "GET", "/api/sessions/support/status", headers={"X-API-Key": keys["support"]})
check(st == 200 and b["data"]["account"]["jid"] == jids["support"], "status with the session's key")

step("---")
# --- over MAX_SESSIONS (4): one more fits, the next is refused with 507 ---
st, b = api(port, "POST", "/api/sessions", body=b'{"name":"extra"}')
check(st == 201, "a fourth session: %s %s" % (st, b))
st, b = api(port, "POST", "/api/sessions", body=b'{"name":"toomany"}')
check(st == 507 and not b["success"], "over MAX_SESSIONS: %s %s" % (st, b))
st, b = api(port, "DELETE", "/api/sessions/extra")
check(st == 200 and b["success"], "delete an unlinked session: %s %s" % (st, b))
every.wait(lambda ev: any(e["session"] == "extra" for e in ev), 5, "extra in /api/events")
# extra's registration may still be reaching the fake server: wait until its
# connection is gone and the count stays put
prev, t0 = None, time.time()
while time.time() - t0 < 10:
    fst = control(fw, "GET", "/control/state")[1]
    if fst["live"] == 3 and fst["registrations"] == prev:
        break
    prev = fst["registrations"]
    time.sleep(0.3)
regs = fst["registrations"]

step("---")
# --- a rotated key: the old one stops working at once ---
st, b = api(port, "POST", "/api/sessions/support/key", headers={"X-API-Key": keys["support"]})
check(st == 200 and b["data"]["key"] != keys["support"], "rotate support's key: %s %s" % (st, b))
old, keys["support"] = keys["support"], b["data"]["key"]
step("rotated")
st, _ = api(port, "GET", "/api/sessions/support/qr", headers={"X-API-Key": old})
check(st == 401, "the old key still works: %s" % st)
st, _ = api(port, "GET", "/api/sessions/support/qr", headers={"X-API-Key": keys["support"]})
check(st == 409, "the new key (linked: no QR): %s" % st)
step("closing")
every.close()
sales_ev.close()
step("closed")

step("---")
# --- restart together: every session back without a QR ---
gw.send_signal(signal.SIGTERM)
check(gw.wait(20) == 0, "gateway exit status")
gw, port, gport, log = start_gateway(fw, "sessions", args)
every = SSE(port, "/api/events", A)
every.wait(lambda ev: all(latest(ev).get(n, {}).get("state") == "CONNECTED" for n in NAMES), 30,
           "the three sessions back after the restart")
check(not any(e["state"] == "QR_READY" or e["hasQR"] for e in every.snapshot()), "a QR after the restart")
st, b = control(fw, "GET", "/control/state")
check(b["registrations"] == regs and b["live"] == 3 and b["doubleLive"] == 0,
      "restart registered anew or doubled a connection: %s" % b)
st, b = api(port, "GET", "/api/sessions/support/status", headers={"X-API-Key": keys["support"]})
check(st == 200 and b["data"]["account"]["jid"] == jids["support"], "support's key after the restart")

step("---")
# --- delete sales: its device removed on the fake server, the others unaffected ---
sales_ev = SSE(port, "/api/sessions/sales/events", {"X-API-Key": keys["sales"]})
sales_ev.wait(lambda ev: ev and ev[-1]["state"] == "CONNECTED", 5, "sales' stream after the restart")
st, b = control(fw, "GET", "/control/state")
logouts = b["logouts"]
n_events = len(every.snapshot())
st, b = api(port, "DELETE", "/api/sessions/sales", headers={"X-API-Key": keys["sales"]})
check(st == 403, "a session key deleted its session: %s %s" % (st, b))  # admin only
st, b = api(port, "DELETE", "/api/sessions/sales")
check(st == 200 and b["success"], "DELETE /api/sessions/sales: %s %s" % (st, b))
t0 = time.time()
while time.time() - t0 < 5 and not sales_ev.ended:
    time.sleep(0.05)
check(sales_ev.ended, "sales' stream did not end")
st, b = control(fw, "GET", "/control/state")
check(b["logouts"] == logouts + 1 and jids["sales"] not in b["devices"] and len(b["devices"]) == 2
      and b["live"] == 2, "the fake server did not see sales removed: %s" % b)
st, b = api(port, "GET", "/api/sessions/sales")
check(st == 404, "a deleted session is still there: %s" % st)
st, b = api(port, "GET", "/api/sessions/sales/status", headers={"X-API-Key": keys["sales"]})
check(st == 404, "status of a deleted session with its old key: %s" % st)
st, b = api(port, "GET", "/api/sessions/default/qr", headers={"X-API-Key": keys["sales"]})
check(st == 401, "a deleted session's key: %s" % st)
for name in ("default", "support"):
    h = {"X-API-Key": ADMIN if name == "default" else keys[name]}
    st, b = api(port, "GET", "/api/sessions/%s/status" % name, headers=h)
    check(st == 200 and b["data"]["state"] == "CONNECTED" and b["data"]["account"]["jid"] == jids[name],
          "%s after deleting sales: %s" % (name, b))
time.sleep(0.3)
after = every.snapshot()[n_events:]
check(all(e["session"] == "sales" for e in after), "other sessions changed when sales was deleted: %s" % after)
st, b = api(port, "GET", "/api/sessions")
check(sorted(s["session"] for s in b["data"]) == ["default", "support"], "the list after the delete: %s" % b)
st, b = api(port, "DELETE", "/api/sessions/default")
check(st == 409, "deleting default: %s %s" % (st, b))
every.close()
sales_ev.close()
gw.send_signal(signal.SIGTERM)
check(gw.wait(20) == 0, "gateway exit status")
fw["proc"].terminate()
print("ok")

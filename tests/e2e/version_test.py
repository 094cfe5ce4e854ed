#!/usr/bin/python3
"""End-to-end tests of the WhatsApp Web version discovery: wa-gateway against
the fake WhatsApp server serving sw.js and refusing older versions with 405,
with the state sequence watched from the WebSocket event stream.

(a) a server that only accepts a newer version than the built-in one,
    advertised in its sw.js: linked and logged in with no WA_VERSION; later
    it retires that version too (405 on the next login) and publishes a newer
    one: one retry with it logs in again; a restart with sw.js failing logs
    in with the stored version, with one warning;
(b) a 405 with nothing newer published: DISCONNECTED/client_outdated and no
    retry loop (connections counted at the server over seconds);
(c) sw.js unreachable (connection refused, or never answering): start-up
    not blocked, one warning, the built-in version announced;
(d) WA_VERSION set: used as is, sw.js never fetched."""
import json, os, re, signal, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import TMP, GW, procs, fail, check, free_port, req, start_fakewa, gateway_env
from wsclient import WS

# the built-in version, as --help states it
_help = subprocess.run([GW, "--help"], capture_output=True, text=True).stdout
BUILTIN = re.search(r"built-in (2\.3000\.[0-9]+)", _help).group(1)
BUILTIN_REV = int(BUILTIN.split(".")[2])


def fw_state(fw):
    return json.loads(req(fw["cport"], "GET", "/control/state")[2])


def fw_version(fw, body):
    st, _, b = req(fw["cport"], "POST", "/control/version", body=body)
    check(st == 200, "control/version %s: %s %s" % (body, st, b))


class Gateway:
    def __init__(self, fw, name, extra_env=None, data=None):
        self.port = free_port()
        self.data = data or os.path.join(TMP, "data-" + name)
        self.logpath = os.path.join(TMP, "gw-%s-%d.log" % (name, self.port))
        env = gateway_env(fw)
        env.pop("WA_VERSION", None)
        env.pop("WA_VERSION_URL", None)
        env.update(extra_env or {})
        self.t0 = time.time()
        self.p = subprocess.Popen([GW, "--port", str(self.port), "--grpc-port", str(free_port()),
                                   "--data-dir", self.data, "--qr-first-ms", "20000"],
                                  env=env, stderr=open(self.logpath, "w"))
        procs.append(self.p)
        for _ in range(200):
            try:
                if req(self.port, "GET", "/healthz", timeout=1)[0] == 200:
                    break
            except OSError:
                time.sleep(0.02)
        else:
            fail("gateway %s did not start" % name)
        self.healthz_after = time.time() - self.t0
        self.events = []
        self.ws = WS("127.0.0.1", self.port, "/api/whatsapp/events", timeout=30)
        check(self.ws.status == 101, "WebSocket upgrade %s" % self.ws.status)
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self):
        try:
            while True:
                ev = self.ws.recv()
                self.events.append((time.time(), ev["state"], ev["detail"]))
        except Exception:
            pass

    def status(self):
        return json.loads(req(self.port, "GET", "/api/whatsapp/status")[2])["data"]

    def wait_state(self, state, detail=None, secs=15):
        end = time.time() + secs
        last = None
        while time.time() < end:
            last = self.status()
            if last["state"] == state and (detail is None or last["detail"] == detail):
                return last
            time.sleep(0.05)
        fail("state %s/%s not reached (last %s); log:\n%s" % (state, detail, last, self.log()))

    def metrics_version(self):
        text = req(self.port, "GET", "/metrics")[2].decode()
        m = re.search(r'wagw_wa_version_info\{version="([^"]+)",source="([^"]+)"\} 1', text)
        check(m, "no wagw_wa_version_info in /metrics")
        return m.group(1), m.group(2)

    def log(self):
        with open(self.logpath) as f:
            return f.read()

    def warnings(self, needle):
        return [l for l in self.log().splitlines() if " WARN " in l and needle in l]

    def states_since(self, t):
        return [(s, d) for (ts, s, d) in self.events if ts >= t]

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(10)
        except subprocess.TimeoutExpired:
            fail("gateway did not stop")
        check(rc == 0, "gateway exit status %d; log:\n%s" % (rc, self.log()))
        check("AddressSanitizer" not in self.log() and "runtime error" not in self.log(),
              "sanitizer report:\n" + self.log())


def scan(gw, fw):
    raw = req(gw.port, "GET", "/api/whatsapp/qr?format=raw")[2]
    st, _, b = req(fw["cport"], "POST", "/control/scan", body=raw)
    check(st == 200, "scan refused: %s" % b)


# --- (a) only a newer version is accepted; it is discovered, then retired ---
R1 = BUILTIN_REV + 1000
fw = start_fakewa("--client-revision", str(R1), "--min-version", "2.3000.%d" % R1)
gw = Gateway(fw, "a")
gw.wait_state("QR_READY")
s = fw_state(fw)
check(s["refused405"] == 0 and s["lastVersion"] == "2.3000.%d" % R1,
      "(a) the first connection did not announce the discovered version: %s" % s)
check(s["swFetches"] == 1, "(a) sw.js fetched %d times" % s["swFetches"])
check(gw.metrics_version() == ("2.3000.%d" % R1, "discovered"), "(a) metrics %s" % (gw.metrics_version(),))
scan(gw, fw)
gw.wait_state("CONNECTED")
check(fw_state(fw)["loginsOk"] == 1, "(a) login not accepted")
print("(a) linked with the discovered version 2.3000.%d" % R1)

# WhatsApp retires it and publishes a newer one; the next login gets 405
R2 = R1 + 7
fw_version(fw, "revision=%d min=2.3000.%d" % (R2, R2))
t = time.time()
req(fw["cport"], "POST", "/control/fault", body="drop")
end = time.time() + 20
while time.time() < end and fw_state(fw)["loginsOk"] < 2:
    time.sleep(0.05)
gw.wait_state("CONNECTED")
time.sleep(0.3)  # the watcher thread's last event
s = fw_state(fw)
check(s["refused405"] == 1 and s["loginsOk"] == 2 and s["lastVersion"] == "2.3000.%d" % R2,
      "(a) no single retry with the newer version: %s" % s)
seq = gw.states_since(t)
check(("CONNECTING", "checking_version") in seq, "(a) no checking_version state: %s" % seq)
i = seq.index(("CONNECTING", "checking_version"))
check(("DISCONNECTED", "client_outdated") not in seq and seq[-1] == ("CONNECTED", "")
      and ("CONNECTING", "logging_in") in seq[i:], "(a) state sequence %s" % seq)
check(gw.metrics_version() == ("2.3000.%d" % R2, "discovered"), "(a) metrics after 405 %s" % (gw.metrics_version(),))
check(len(gw.warnings("version")) == 0, "(a) unexpected warnings:\n" + gw.log())
print("(a) 405 then one retry with 2.3000.%d: %s" % (R2, seq))
gw.stop()

# restart with sw.js failing: the stored version logs in, one warning
fw_version(fw, "sw=500")
gw = Gateway(fw, "a2", data=gw.data)
gw.wait_state("CONNECTED")
check(gw.metrics_version() == ("2.3000.%d" % R2, "stored"), "(a) metrics with sw.js down %s" % (gw.metrics_version(),))
s = fw_state(fw)
check(s["refused405"] == 1 and s["lastVersion"] == "2.3000.%d" % R2, "(a) restart %s" % s)
time.sleep(0.5)
w = gw.warnings("cannot discover the WhatsApp Web version")
check(len(w) == 1 and len(gw.warnings("")) == 1, "(a) warnings with sw.js down:\n" + gw.log())
print("(a) restart with sw.js failing: stored version, one warning")
gw.stop()

# --- (b) 405 with nothing newer: client_outdated, no retry loop ---
fw = start_fakewa("--min-version", "2.3000.%d" % (BUILTIN_REV + 1000))
gw = Gateway(fw, "b")
gw.wait_state("DISCONNECTED", "client_outdated")
c0 = fw_state(fw)["connections"]
time.sleep(4)
s = fw_state(fw)
check(s["connections"] == c0 == 1 and s["refused405"] == 1,
      "(b) the gateway kept connecting: %d then %d (%s)" % (c0, s["connections"], s))
check(s["swFetches"] == 2, "(b) sw.js fetched %d times (start + after the 405)" % s["swFetches"])
st = gw.status()
check(st["state"] == "DISCONNECTED" and st["detail"] == "client_outdated", "(b) state %s" % st)
seq = gw.states_since(0)  # (starts with the state when the stream was opened)
first_out = seq.index(("DISCONNECTED", "client_outdated")) if ("DISCONNECTED", "client_outdated") in seq else -1
check(first_out >= 0 and all(x == ("DISCONNECTED", "client_outdated") for x in seq[first_out:])
      and seq.count(("CONNECTING", "registering")) <= 1, "(b) state sequence %s" % seq)
check(gw.metrics_version() == (BUILTIN, "discovered"), "(b) metrics %s" % (gw.metrics_version(),))
print("(b) client_outdated, one connection in 4 s: %s" % seq)
gw.stop()

# --- (c) sw.js unreachable: not blocked, one warning, built-in version ---
fw = start_fakewa()
closed = free_port()
gw = Gateway(fw, "c1", {"WA_VERSION_URL": "http://127.0.0.1:%d/sw.js" % closed})
gw.wait_state("QR_READY", secs=5)
check(time.time() - gw.t0 < 4, "(c) QR took %.1f s with sw.js refused" % (time.time() - gw.t0))
s = fw_state(fw)
check(s["swFetches"] == 0 and s["lastVersion"] == BUILTIN, "(c) %s" % s)
check(gw.metrics_version() == (BUILTIN, "builtin"), "(c) metrics %s" % (gw.metrics_version(),))
time.sleep(0.5)
w = gw.warnings("cannot discover the WhatsApp Web version")
check(len(w) == 1 and len(gw.warnings("")) == 1, "(c) warnings:\n" + gw.log())
print("(c) sw.js refused: built-in version, one warning")
gw.stop()

fw_version(fw, "sw=hang")
gw = Gateway(fw, "c2")
check(gw.healthz_after < 2, "(c) HTTP took %.1f s to answer" % gw.healthz_after)
gw.wait_state("QR_READY", secs=8)
waited = time.time() - gw.t0
check(waited < 6.5, "(c) start-up blocked %.1f s by a hanging sw.js" % waited)
check(fw_state(fw)["lastVersion"] == BUILTIN, "(c) hanging: %s" % fw_state(fw))
check(gw.metrics_version() == (BUILTIN, "builtin"), "(c) metrics %s" % (gw.metrics_version(),))
print("(c) sw.js hanging: QR after %.1f s with the built-in version" % waited)
gw.stop()

# --- (d) WA_VERSION set: no fetch at all ---
fw = start_fakewa("--client-revision", str(BUILTIN_REV + 5))
gw = Gateway(fw, "d", {"WA_VERSION": "2.3000.%d" % (BUILTIN_REV + 3)})
gw.wait_state("QR_READY")
time.sleep(1)
s = fw_state(fw)
check(s["swFetches"] == 0 and s["lastVersion"] == "2.3000.%d" % (BUILTIN_REV + 3),
      "(d) configured version not used as is: %s" % s)
check(gw.metrics_version() == ("2.3000.%d" % (BUILTIN_REV + 3), "configured"),
      "(d) metrics %s" % (gw.metrics_version(),))
check(len(gw.warnings("")) == 0, "(d) warnings:\n" + gw.log())
print("(d) WA_VERSION used as is, sw.js never fetched")
gw.stop()

for p in procs:
    if p.poll() is None:
        p.terminate()
print("PASS")

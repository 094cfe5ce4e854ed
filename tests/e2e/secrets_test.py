#!/usr/bin/python3
"""Issue 13 point 5, secrets at rest, with the real gateway: a DATA_DIR
others may write to, or a store file that is a symbolic link, stops the
service at start with a one-line error (exit 2) and the files untouched (it
started); --qr-terminal never puts the QR (it carries the adv secret) in
the log: with no terminal the log says so, with one the QR goes to the
terminal only (it went to stderr, the log stream); core dumps are off
(RLIMIT_CORE 0; they were on) unless ALLOW_CORE_DUMPS; the API key is
blanked in /proc/PID/environ (it stayed readable there)."""
import fcntl, os, pty, select, shutil, subprocess, sys, termios, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import TMP, GW, procs, fail, check, free_port, start_fakewa, gateway_env, start_gateway

KEY = "secrets-test-key-0123456789abcdef"
fw = start_fakewa("--refs", "5", "--qr-first-ms", "60000", "--qr-next-ms", "20000")


def run_refused(data_dir, what):
    p = subprocess.Popen([GW, "--port", str(free_port()), "--grpc-port", str(free_port()), "--data-dir", data_dir],
                         env=gateway_env(fw), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
        check(False, "%s: the gateway started" % what)
        return
    err = err.strip()
    check(p.returncode == 2 and "refusing" in err and "\n" not in err,
          "%s: exit %d, %r" % (what, p.returncode, err[:300]))


# --- DATA_DIR writable by others; a symlinked store file ---
d = os.path.join(TMP, "open-dir")
os.makedirs(d)
os.chmod(d, 0o777)
run_refused(d, "DATA_DIR 0777")
check(os.listdir(d) == [], "files created in a refused DATA_DIR: %s" % os.listdir(d))
for f in os.listdir(d):
    os.unlink(os.path.join(d, f))
os.chmod(d, 0o700)
target = os.path.join(TMP, "elsewhere.db")
os.symlink(target, os.path.join(d, "wa-gateway.db"))
run_refused(d, "symlinked store file")
check(not os.path.exists(target), "the store was created through a symbolic link")

# --- --qr-terminal without a terminal: never in the log ---
gw, port, gport, log = start_gateway(fw, "qr-notty", ["--qr-terminal", "--api-key", KEY],
                                     start_new_session=True, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL)
for _ in range(100):  # a QR is published
    if open(log).read().count("QR") and b'"hasQR":true' in subprocess.run(
            ["curl", "-s", "http://127.0.0.1:%d/api/whatsapp/status" % port], capture_output=True).stdout:
        break
    time.sleep(0.05)
time.sleep(0.3)
text = open(log, encoding="utf-8", errors="replace").read()
check("\u2580" not in text and "\u2584" not in text and "\u2588" not in text, "the QR was written to the log")
check("no terminal" in text, "no warning that the QR cannot be shown")
# core dumps off, the key out of the environment
limits = open("/proc/%d/limits" % gw.pid).read()
core = [l for l in limits.splitlines() if l.startswith("Max core file size")][0].split()
check(core[4] == "0" and core[5] == "0", "core dumps not disabled: %s" % core)
gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")

gw, port, gport, log = start_gateway(fw, "envkey", [], env=dict(gateway_env(fw), API_KEY=KEY))
environ = open("/proc/%d/environ" % gw.pid, "rb").read()
check(KEY.encode() not in environ, "the API key is readable in /proc/PID/environ")
gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")

gw, port, gport, log = start_gateway(fw, "cores", ["--allow-core-dumps"],
                                     preexec_fn=lambda: __import__("resource").setrlimit(
                                         __import__("resource").RLIMIT_CORE, (1 << 20, 1 << 20)))
core = [l for l in open("/proc/%d/limits" % gw.pid).read().splitlines() if l.startswith("Max core file size")][0]
check(core.split()[5] != "0", "ALLOW_CORE_DUMPS did not keep core dumps: %s" % core)  # the hard limit
# (AddressSanitizer lowers the soft one itself)
gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")

# --- --qr-terminal with a controlling terminal: the QR there, not in the log ---
master, slave = pty.openpty()


def controlling_tty():
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)


gw, port, gport, log = start_gateway(fw, "qr-tty", ["--qr-terminal"], stdin=slave, stdout=slave,
                                     preexec_fn=controlling_tty)
os.close(slave)
seen, end = b"", time.time() + 10
while time.time() < end and "\u2588".encode() not in seen and "\u2580".encode() not in seen:
    r, _, _ = select.select([master], [], [], 0.2)
    if r:
        try:
            seen += os.read(master, 65536)
        except OSError:
            break
check("\u2580".encode() in seen or "\u2588".encode() in seen, "no QR on the terminal: %r" % seen[:200])
time.sleep(0.2)
text = open(log, encoding="utf-8", errors="replace").read()
check("\u2580" not in text and "\u2588" not in text, "the QR was written to the log as well")
check("on the terminal" in text, "no log line about the QR on the terminal")
gw.terminate()
check(gw.wait(10) == 0, "gateway exit status")
os.close(master)
fw["proc"].terminate()
print("PASS")

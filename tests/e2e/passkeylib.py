"""Helpers of the passkey end-to-end tests: a P-256 passkey made with the
openssl command (Debian's openssl), its public key for the fake server and
its PKCS#8 private key for Chromium's virtual authenticator, assertions
signed in software as an authenticator signs them, and a reader of the
gateway's event stream that keeps every event."""
import base64, hashlib, http.client, json, os, subprocess, threading

from e2elib import TMP


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Passkey:
    """A P-256 key pair and a credential id."""

    def __init__(self, name="passkey"):
        self.pem = os.path.join(TMP, name + ".pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", self.pem], check=True,
                       capture_output=True)
        spki = subprocess.run(["openssl", "pkey", "-in", self.pem, "-pubout", "-outform", "DER"],
                              check=True, capture_output=True).stdout
        pkcs8 = subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", self.pem,
                                "-outform", "DER"], check=True, capture_output=True).stdout
        self.spki_b64 = base64.b64encode(spki).decode()
        self.pkcs8_b64 = base64.b64encode(pkcs8).decode()
        self.cred_id = os.urandom(16)

    def register(self, control_req, rp_id, origin):
        body = json.dumps({"credentialId": b64u(self.cred_id), "publicKey": self.spki_b64,
                           "rpId": rp_id, "origin": origin}).encode()
        return control_req("POST", "/control/passkey/credential", body)

    def sign(self, data):
        path = os.path.join(TMP, "tosign.bin")
        open(path, "wb").write(data)
        return subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.pem, path],
                              check=True, capture_output=True).stdout

    def assertion(self, challenge, rp_id, origin, flags=0x05, tamper=False):
        """navigator.credentials.get() for `challenge` (base64url), as
        PublicKeyCredential.toJSON() shows it."""
        cdj = json.dumps({"type": "webauthn.get", "challenge": challenge, "origin": origin,
                          "crossOrigin": False}, separators=(",", ":")).encode()
        ad = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + b"\x00\x00\x00\x01"
        sig = bytearray(self.sign(ad + hashlib.sha256(cdj).digest()))
        if tamper:
            sig[-2] ^= 0x01
        return json.dumps({"id": b64u(self.cred_id), "rawId": b64u(self.cred_id),
                           "type": "public-key", "authenticatorAttachment": "platform",
                           "clientExtensionResults": {},
                           "response": {"clientDataJSON": b64u(cdj),
                                        "authenticatorData": b64u(ad),
                                        "signature": b64u(bytes(sig)), "userHandle": None}})


class Events:
    """Reads GET /api/whatsapp/events (SSE) in a thread; `events` holds every
    status object in order."""

    def __init__(self, port, key=None):
        self.events = []
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.conn.request("GET", "/api/whatsapp/events", headers={"X-API-Key": key} if key else {})
        self.resp = self.conn.getresponse()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    return
                if line.startswith(b"data: "):
                    self.events.append(json.loads(line[6:]))
        except (OSError, ValueError):
            return

    def find(self, pred):
        return [e for e in list(self.events) if pred(e)]

    def close(self):
        try:
            self.conn.sock.shutdown(2)
        except OSError:
            pass

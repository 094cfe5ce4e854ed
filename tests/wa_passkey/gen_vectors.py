#!/usr/bin/python3
"""Writes testdata/vectors.txt: the passkey step's derivations computed
independently of the C code (Python's hashlib/hmac, python3-cryptography for
X25519, HKDF and AES-GCM, protobuf encoded by hand from WhatsApp's field
numbers). Run once; the output is committed and passkey_test.c checks the C
code against it. Inputs are fixed, so the file is reproducible."""
import base64, hashlib, hmac, os, sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import serialization


def h(b):
    return b.hex()


def hkdf(ikm, salt, info, n=32):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(ikm)


def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field_bytes(num, b):
    return varint(num << 3 | 2) + varint(len(b)) + b


def field_varint(num, v):
    return varint(num << 3 | 0) + varint(v)


def x25519_pub(priv):
    k = X25519PrivateKey.from_private_bytes(priv)
    return k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def x25519(priv, pub):
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    return X25519PrivateKey.from_private_bytes(priv).exchange(X25519PublicKey.from_public_bytes(pub))


def seq(start, n=32):
    return bytes((start + i) & 0xFF for i in range(n))


def clamp(k):
    k = bytearray(k)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    return bytes(k)


ALPHA = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"


def base32(b):
    v = int.from_bytes(b, "big")
    n = len(b) * 8 // 5
    return "".join(ALPHA[(v >> (5 * (n - 1 - i))) & 31] for i in range(n))


lines = []
adv = seq(0x10)
hk = hkdf(adv, None, b"shortcake-passkey-handoff-v1")
lines += ["adv_secret " + h(adv), "handoff_key " + h(hk)]

eph_priv = clamp(seq(0x40))
eph_pub = x25519_pub(eph_priv)
nonce = seq(0x80)
ref = "2@Ab+/cD=ef,gh"
platform = 1
ident = field_bytes(1, eph_pub) + field_varint(2, platform) + field_bytes(3, ref.encode())
commit = hashlib.sha256(ident + nonce).digest()
payload = field_bytes(1, ident) + field_bytes(2, field_bytes(1, commit))
proof = hmac.new(hk, payload, hashlib.sha256).digest()
lines += ["eph_priv " + h(eph_priv), "eph_pub " + h(eph_pub), "companion_nonce " + h(nonce),
          "ref " + h(ref.encode()), "platform %d" % platform, "identity " + h(ident),
          "commitment " + h(commit), "prologue_payload " + h(payload), "handoff_proof " + h(proof)]

prim_priv = clamp(seq(0xA0))
prim_pub = x25519_pub(prim_priv)
prim_nonce = seq(0xC0)
d = hashlib.sha256(nonce + prim_pub).digest()
code = base32(bytes(prim_nonce[i] ^ d[i] for i in range(5)))
lines += ["primary_priv " + h(prim_priv), "primary_pub " + h(prim_pub),
          "primary_nonce " + h(prim_nonce), "primary_identity " +
          h(field_bytes(1, prim_pub) + field_bytes(2, prim_nonce)),
          "code " + h((code[:4] + "-" + code[4:]).encode())]

shared = x25519(eph_priv, prim_pub)
assert shared == x25519(prim_priv, eph_pub)
salt = ("Companion Pairing %d with ref %s" % (platform, ref)).encode()
key = hkdf(shared, salt, b"Pairing Information Encryption Key")
lines += ["shared " + h(shared), "enc_key " + h(key)]

iv = seq(0xE0, 12)
noise_pub = seq(0x01)
ident_pub = seq(0x21)
new_adv = seq(0x61)
pr = field_bytes(1, noise_pub) + field_bytes(2, ident_pub) + field_bytes(3, new_adv)
ct = AESGCM(key).encrypt(iv, pr, None)
epr = field_bytes(1, ct) + field_bytes(2, iv)
lines += ["iv " + h(iv), "noise_pub " + h(noise_pub), "ident_pub " + h(ident_pub),
          "new_adv_secret " + h(new_adv), "pairing_request " + h(pr),
          "encrypted_pairing_request " + h(epr)]

# base64url (RFC 4648 section 5, no padding)
for i, data in enumerate([b"", b"\xfb", b"\xfb\xff", b"\xfb\xff\xbf", seq(0xF0, 7)]):
    enc = base64.urlsafe_b64encode(data).rstrip(b"=")
    lines.append("b64url_%d %s %s" % (i, h(data) or "-", enc.decode() or "-"))

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata", "vectors.txt")
with open(out, "w") as f:
    f.write("# passkey step vectors, made by gen_vectors.py (Python + python3-cryptography)\n")
    f.write("\n".join(lines) + "\n")
print("wrote", out)

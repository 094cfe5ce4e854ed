// Regenerates the cross-check vectors of tests/wa_noise from the reference
// client, Baileys 7.0.0-rc14 (pinned in package.json / package-lock.json):
//
//  testdata/baileys_curve.txt   key pairs, X25519 secrets and XEdDSA signatures
//                               made by Baileys' Curve (lib/Utils/crypto.js).
//                               One line each: priv pub msg sig peer_pub shared
//  testdata/baileys_noise.txt   a complete Noise XX handshake + transport frames
//                               whose client side is Baileys' own makeNoiseHandler
//                               (lib/Utils/noise-handler.js) driven as
//                               lib/Socket/socket.js drives it. The server side
//                               is written here on Baileys' primitives. One
//                               "name hex" pair per line.
//  testdata/ours_sigs.baileys   when testdata/ours_sigs.txt (signatures made by
//                               OUR C code, see tests/wa_noise/ours_sigs.c) is
//                               present: every one is checked with Baileys'
//                               verifier (libsignal's verifySignature, which its
//                               Curve.verify wraps) and this file records the SHA-256
//                               of the file that passed, which the C test checks.
//
// Usage: cd tools/baileys-crypto && npm ci && node gen-vectors.mjs
// (first, optionally: bazel run //tests/wa_noise:ours_sigs > tests/wa_noise/testdata/ours_sigs.txt)
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import * as libsignalCurve from 'libsignal/src/curve.js'
import { Curve, aesDecryptGCM, aesEncryptGCM, generateSignalPubKey, hkdf, sha256 } from '@whiskeysockets/baileys/lib/Utils/crypto.js'
import { makeNoiseHandler } from '@whiskeysockets/baileys/lib/Utils/noise-handler.js'
import { generateLoginNode } from '@whiskeysockets/baileys/lib/Utils/validate-connection.js'
import { NOISE_MODE, NOISE_WA_HEADER, WA_CERT_DETAILS } from '@whiskeysockets/baileys/lib/Defaults/index.js'
import { proto } from '@whiskeysockets/baileys/WAProto/index.js'

const out = (name) => new URL(`../../tests/wa_noise/testdata/${name}`, import.meta.url)
const hex = (b) => Buffer.from(b).toString('hex') || '-'
const check = (cond, what) => {
    if (!cond) throw new Error(`self-check failed: ${what}`)
}
// NOTE: Baileys 7.0.0-rc14's Curve.verify returns true for ANY 64-byte
// signature: it only catches exceptions of libsignal's verifySignature and
// ignores its boolean result. So signatures are checked here with the
// function Curve.verify wraps, looking at its result.
const verify = (pub, msg, sig) => libsignalCurve.verifySignature(generateSignalPubKey(pub), msg, sig) === true
check(Curve.verify(Curve.generateKeyPair().public, Buffer.from('x'), Buffer.alloc(64)), 'Curve.verify is still vacuous; update this note')

// --- 1. Curve vectors (random keys and messages) ---
{
    const lines = []
    for (let i = 0; i < 16; i++) {
        const kp = Curve.generateKeyPair()
        const peer = Curve.generateKeyPair()
        const msg = randomBytes(i === 0 ? 0 : 1 + i * 13)
        const sig = Buffer.from(Curve.sign(kp.private, msg))
        check(verify(kp.public, msg, sig), 'curve sign/verify')
        check(!verify(peer.public, msg, sig), 'curve verify with another key')
        const shared = Curve.sharedKey(kp.private, peer.public)
        lines.push([kp.private, kp.public, msg, sig, peer.public, shared].map(hex).join(' '))
    }
    writeFileSync(out('baileys_curve.txt'), lines.join('\n') + '\n')
    console.log(`baileys_curve.txt: ${lines.length} vectors`)
}

// --- 2. Noise handshake vector ---
{
    // Fixed, reproducible key pairs: priv = clamp(SHA-256(label)).
    const keyPair = (label) => {
        const priv = createHash('sha256').update(`wa-gateway noise vector: ${label}`).digest()
        priv[0] &= 248
        priv[31] &= 127
        priv[31] |= 64
        const pub = Buffer.from(libsignalCurve.getPublicFromPrivateKey(priv)).subarray(1)
        return { private: priv, public: pub }
    }
    const ce = keyPair('client ephemeral')
    const cs = keyPair('client static')
    const se = keyPair('server ephemeral')
    const ss = keyPair('server static')
    const root = keyPair('root')
    const inter = keyPair('intermediate')

    // The certificate chain, signed with Baileys' Curve.sign (randomised).
    const cert = (signer, details) => {
        const d = proto.CertChain.NoiseCertificate.Details.encode(details).finish()
        const signature = Buffer.from(Curve.sign(signer.private, d))
        check(verify(signer.public, d, signature), 'certificate signature')
        return { details: d, signature }
    }
    const chain = proto.CertChain.encode({
        leaf: cert(inter, { serial: 2, issuerSerial: 1, key: ss.public, notBefore: 1700000000, notAfter: 1900000000 }),
        intermediate: cert(root, { serial: 1, issuerSerial: 0, key: inter.public, notBefore: 1600000000, notAfter: 2000000000 })
    }).finish()
    // Baileys checks the intermediate against this (exported, mutable) root.
    WA_CERT_DETAILS.PUBLIC_KEY = root.public

    // Our server side of the symmetric state (protocol doc 2.2), on Baileys' primitives.
    const st = { h: Buffer.from(NOISE_MODE), n: 0 }
    st.ck = st.h
    st.k = st.h
    const iv = (n) => {
        const b = Buffer.alloc(12)
        b.writeUInt32BE(n, 8)
        return b
    }
    const mixHash = (d) => { st.h = sha256(Buffer.concat([st.h, d])) }
    const mixKey = (ikm) => {
        const o = Buffer.from(hkdf(Buffer.from(ikm), 64, { salt: st.ck, info: '' }))
        st.ck = o.subarray(0, 32)
        st.k = o.subarray(32)
        st.n = 0
    }
    const encryptAndHash = (pt) => {
        const ct = aesEncryptGCM(pt, st.k, iv(st.n++), st.h)
        mixHash(ct)
        return ct
    }
    const decryptAndHash = (ct) => {
        const pt = aesDecryptGCM(ct, st.k, iv(st.n++), st.h)
        mixHash(ct)
        return pt
    }

    const logger = { level: 'silent', child() { return this }, trace() {}, debug() {}, info() {}, warn() {}, error() {} }
    const noise = makeNoiseHandler({ keyPair: ce, NOISE_HEADER: NOISE_WA_HEADER, logger })

    // client -> server: hello (socket.js validateConnection)
    const hello = proto.HandshakeMessage.encode(proto.HandshakeMessage.fromObject({ clientHello: { ephemeral: ce.public } })).finish()
    const helloFrame = noise.encodeFrame(hello)
    mixHash(NOISE_WA_HEADER)
    const gotHello = proto.HandshakeMessage.decode(hello)
    mixHash(gotHello.clientHello.ephemeral)

    // server -> client: hello
    mixHash(se.public)
    mixKey(Curve.sharedKey(se.private, gotHello.clientHello.ephemeral))
    const encStatic = encryptAndHash(ss.public)
    mixKey(Curve.sharedKey(ss.private, gotHello.clientHello.ephemeral))
    const encCert = encryptAndHash(chain)
    const serverHello = proto.HandshakeMessage.encode({ serverHello: { ephemeral: se.public, static: encStatic, payload: encCert } }).finish()

    // client: Baileys processes the server hello and answers
    const keyEnc = noise.processHandshake(proto.HandshakeMessage.decode(serverHello), cs)
    const payload = proto.ClientPayload.encode(generateLoginNode('15551234567:12@s.whatsapp.net', {
        version: [2, 3000, 1043857760], browser: ['Mac OS', 'Chrome', '14.4.1'], countryCode: 'US', syncFullHistory: false
    })).finish()
    const payloadEnc = noise.encrypt(payload)
    const finish = proto.HandshakeMessage.encode({ clientFinish: { static: keyEnc, payload: payloadEnc } }).finish()
    const finishFrame = noise.encodeFrame(finish)
    await noise.finishInit()

    // server: client finish
    const gotFinish = proto.HandshakeMessage.decode(finish).clientFinish
    const clientStatic = decryptAndHash(gotFinish.static)
    check(clientStatic.equals(cs.public), 'client static')
    mixKey(Curve.sharedKey(se.private, clientStatic))
    check(decryptAndHash(gotFinish.payload).equals(Buffer.from(payload)), 'payload')
    const split = Buffer.from(hkdf(Buffer.alloc(0), 64, { salt: st.ck, info: '' }))
    const c2sKey = split.subarray(0, 32)
    const s2cKey = split.subarray(32)

    const lines = [
        ['client_ephemeral_priv', ce.private], ['client_static_priv', cs.private],
        ['server_ephemeral_priv', se.private], ['server_static_priv', ss.private],
        ['root_pub', root.public], ['now', Buffer.from('1800000000')], ['chain', chain],
        ['client_hello', hello], ['client_hello_frame', helloFrame], ['server_hello', serverHello],
        ['client_payload', payload], ['client_finish', finish], ['client_finish_frame', finishFrame]
    ]
    // transport: three frames each way
    for (let i = 0; i < 3; i++) {
        const pt = Buffer.from(`client frame ${i} `.repeat(i + 1))
        const frame = noise.encodeFrame(pt)
        check(frame.readUIntBE(0, 3) === frame.length - 3, 'frame length')
        const ct = frame.subarray(3)
        check(aesDecryptGCM(ct, c2sKey, iv(i), Buffer.alloc(0)).equals(pt), 'c2s decrypt')
        lines.push([`c2s_pt_${i}`, pt], [`c2s_ct_${i}`, ct])
    }
    for (let i = 0; i < 3; i++) {
        const pt = Buffer.from(`server frame ${i} `.repeat(2 * i + 1))
        const ct = aesEncryptGCM(pt, s2cKey, iv(i), Buffer.alloc(0))
        check(Buffer.from(noise.decrypt(ct)).equals(pt), 's2c decrypt by Baileys')
        lines.push([`s2c_pt_${i}`, pt], [`s2c_ct_${i}`, ct])
    }
    const text = lines.map(([k, v]) => `${k} ${k === 'now' ? v.toString() : hex(v)}`).join('\n') + '\n'
    writeFileSync(out('baileys_noise.txt'), text)
    console.log(`baileys_noise.txt: ${lines.length} entries`)
}

// --- 3. Our signatures, verified by Baileys ---
if (existsSync(out('ours_sigs.txt'))) {
    const data = readFileSync(out('ours_sigs.txt'))
    let n = 0
    for (const line of data.toString().split('\n')) {
        const f = line.trim().split(/\s+/)
        if (f.length !== 3) continue
        const [pub, msg, sig] = f.map((h) => Buffer.from(h === '-' ? '' : h, 'hex'))
        check(verify(pub, msg, sig), `our signature #${n}`)
        const bad = Buffer.from(sig)
        bad[5] ^= 1
        check(!verify(pub, msg, bad), `tampered signature #${n}`)
        n++
    }
    check(n > 0, 'ours_sigs.txt has signatures')
    writeFileSync(out('ours_sigs.baileys'), `${createHash('sha256').update(data).digest('hex')} ${n}\n`)
    console.log(`ours_sigs.txt: ${n} signatures made by our C code verified by Baileys`)
} else {
    console.log('no testdata/ours_sigs.txt; skipped verifying our signatures')
}

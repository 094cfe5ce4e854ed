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
//  tests/wa_paircode/testdata/baileys_paircode.txt
//                               linking by pairing code: codes from 5 bytes
//                               (bytesToCrockford), the PBKDF2 key
//                               (derivePairingCodeKey), both wrapped
//                               ephemeral keys, the key bundle and the adv
//                               secret exactly as lib/Socket/socket.js and
//                               lib/Socket/messages-recv.js compute them, on
//                               Baileys' exported helpers with fixed inputs,
//                               and the nodes of the exchange encoded by
//                               encodeBinaryNode. Deterministic.
//
// Usage: cd tools/baileys-crypto && npm ci && node gen-vectors.mjs [SECTION...]
// (SECTION: curve, noise, ours, paircode; none = all. curve and noise draw
// random keys and signatures, so they change on every run.)
// (first, optionally: bazel run //tests/wa_noise:ours_sigs > tests/wa_noise/testdata/ours_sigs.txt)
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import * as libsignalCurve from 'libsignal/src/curve.js'
import { Curve, aesDecryptGCM, aesEncryptGCM, generateSignalPubKey, hkdf, sha256 } from '@whiskeysockets/baileys/lib/Utils/crypto.js'
import { makeNoiseHandler } from '@whiskeysockets/baileys/lib/Utils/noise-handler.js'
import { generateLoginNode } from '@whiskeysockets/baileys/lib/Utils/validate-connection.js'
import { NOISE_MODE, NOISE_WA_HEADER, WA_CERT_DETAILS } from '@whiskeysockets/baileys/lib/Defaults/index.js'
import { proto } from '@whiskeysockets/baileys/WAProto/index.js'
import { aesDecryptCTR, aesEncryptCTR, derivePairingCodeKey } from '@whiskeysockets/baileys/lib/Utils/crypto.js'
import { bytesToCrockford } from '@whiskeysockets/baileys/lib/Utils/generics.js'
import { getCompanionPlatformId } from '@whiskeysockets/baileys/lib/Utils/companion-reg-client-utils.js'
import { encodeBinaryNode } from '@whiskeysockets/baileys/lib/WABinary/encode.js'
import { decodeBinaryNode } from '@whiskeysockets/baileys/lib/WABinary/decode.js'
import { getBinaryNodeChild, getBinaryNodeChildBuffer } from '@whiskeysockets/baileys/lib/WABinary/generic-utils.js'

const sections = process.argv.slice(2)
const want = (name) => sections.length === 0 || sections.includes(name)

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
if (want('curve')) {
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
if (want('noise')) {
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
if (!want('ours')) {
    // skipped
} else if (existsSync(out('ours_sigs.txt'))) {
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

// --- 4. Linking by pairing code (deterministic: fixed inputs only) ---
if (want('paircode')) {
    const label = (l) => createHash('sha256').update(`wa-gateway pairing-code vector: ${l}`).digest()
    const keyPair = (l) => {
        const priv = label(l)
        priv[0] &= 248
        priv[31] &= 127
        priv[31] |= 64
        return { private: priv, public: Buffer.from(libsignalCurve.getPublicFromPrivateKey(priv)).subarray(1) }
    }
    const bytes = (l, n) => label(l).subarray(0, n)
    const lines = ['# Pairing-code vectors made by Baileys 7.0.0-rc14 (tools/baileys-crypto/gen-vectors.mjs).',
        '# "code RND CODE": bytesToCrockford(RND); "NAME HEX": one value of the flow below;',
        '# "NAME text:STRING" for texts. Read by tests/wa_paircode/paircode_test.c.']
    // codes from 5 bytes: edges and fixed values
    const rnds = ['0000000000', 'ffffffffff', '0000000001', '8000000000', '0123456789', 'fedcba9876',
        'a5a5a5a5a5', '5a5a5a5a5a', bytes('code 1', 5).toString('hex'), bytes('code 2', 5).toString('hex')]
    for (const r of rnds) {
        const code = bytesToCrockford(Buffer.from(r, 'hex'))
        check(code.length === 8, 'code length')
        lines.push(`code ${r} ${code}`)
    }
    const put = (name, v) => lines.push(`${name} ${typeof v === 'string' ? 'text:' + v : hex(v)}`)
    const phone = '15551234567'
    const code = bytesToCrockford(bytes('pairing code', 5))
    const wrongCode = bytesToCrockford(bytes('wrong code', 5))
    const compEph = keyPair('companion ephemeral')
    const compIdent = keyPair('companion identity')
    const noise = keyPair('companion noise')
    const primEph = keyPair('primary ephemeral')
    const primIdent = keyPair('primary identity')
    const ref = Buffer.from('2@' + bytes('ref', 24).toString('base64'))
    put('phone', phone)
    put('pair_code', code)
    put('wrong_code', wrongCode)
    for (const [n, kp] of [['companion_eph', compEph], ['companion_ident', compIdent], ['noise', noise],
        ['primary_eph', primEph], ['primary_ident', primIdent]]) {
        put(n + '_priv', kp.private)
        put(n + '_pub', kp.public)
    }
    put('ref', ref)

    // companion_hello: socket.js generatePairingKey() with fixed salt and iv
    const salt = bytes('companion salt', 32)
    const iv = bytes('companion iv', 16)
    const key = await derivePairingCodeKey(code, salt)
    const compWrapped = Buffer.concat([salt, iv, aesEncryptCTR(compEph.public, key, iv)])
    put('companion_salt', salt)
    put('companion_iv', iv)
    put('companion_key', key)
    put('companion_wrapped', compWrapped)

    // the phone's primary_hello, wrapped the same way with its own salt and iv
    const pSalt = bytes('primary salt', 32)
    const pIv = bytes('primary iv', 16)
    const pKey = await derivePairingCodeKey(code, pSalt)
    const primWrapped = Buffer.concat([pSalt, pIv, aesEncryptCTR(primEph.public, pKey, pIv)])
    put('primary_key', pKey)
    put('primary_wrapped', primWrapped)
    // messages-recv.js decipherLinkPublicKey(): the right code gives the key back
    const decipher = async (c, data) => aesDecryptCTR(data.slice(48, 80), await derivePairingCodeKey(c, data.slice(0, 32)), data.slice(32, 48))
    check((await decipher(code, primWrapped)).equals(primEph.public), 'unwrap with the right code')
    // a phone that wrapped with another code: the companion unwraps garbage
    const wrongKey = await derivePairingCodeKey(wrongCode, pSalt)
    const primWrappedWrong = Buffer.concat([pSalt, pIv, aesEncryptCTR(primEph.public, wrongKey, pIv)])
    const garbage = await decipher(code, primWrappedWrong)
    check(!garbage.equals(primEph.public), 'wrong code unwraps to garbage')
    put('primary_wrapped_wrong', primWrappedWrong)
    put('primary_unwrapped_wrong', garbage)

    // companion_finish: messages-recv.js link_code_companion_reg with fixed randoms
    const companionSharedKey = Curve.sharedKey(compEph.private, primEph.public)
    const random = bytes('bundle random', 32)
    const linkCodeSalt = bytes('bundle salt', 32)
    const encryptIv = bytes('bundle nonce', 12)
    const bundleKey = hkdf(companionSharedKey, 32, { salt: linkCodeSalt, info: 'link_code_pairing_key_bundle_encryption_key' })
    const payload = Buffer.concat([Buffer.from(compIdent.public), primIdent.public, random])
    const encrypted = aesEncryptGCM(payload, bundleKey, encryptIv, Buffer.alloc(0))
    const bundle = Buffer.concat([linkCodeSalt, encryptIv, encrypted])
    const identitySharedKey = Curve.sharedKey(compIdent.private, primIdent.public)
    const advSecret = Buffer.from(hkdf(Buffer.concat([companionSharedKey, identitySharedKey, random]), 32, { info: 'adv_secret' }))
    check(bundle.length === 156, 'bundle length')
    // the phone's side: its agreements are the same, the bundle opens
    check(Curve.sharedKey(primEph.private, compEph.public).equals(companionSharedKey), 'ephemeral agreement')
    check(Curve.sharedKey(primIdent.private, compIdent.public).equals(identitySharedKey), 'identity agreement')
    check(aesDecryptGCM(bundle.subarray(44), bundleKey, encryptIv, Buffer.alloc(0)).equals(payload), 'bundle opens')
    put('eph_shared', companionSharedKey)
    put('ident_shared', identitySharedKey)
    put('bundle_random', random)
    put('bundle_salt', linkCodeSalt)
    put('bundle_nonce', encryptIv)
    put('bundle_key', bundleKey)
    put('bundle', bundle)
    put('adv_secret', advSecret)

    // the nodes, encoded by Baileys (flags byte first)
    const browser = ['Linux', 'Chrome', '']
    const hello = {
        tag: 'link_code_companion_reg',
        attrs: { jid: `${phone}@s.whatsapp.net`, stage: 'companion_hello', should_show_push_notification: 'true' },
        content: [
            { tag: 'link_code_pairing_wrapped_companion_ephemeral_pub', attrs: {}, content: compWrapped },
            { tag: 'companion_server_auth_key_pub', attrs: {}, content: noise.public },
            { tag: 'companion_platform_id', attrs: {}, content: getCompanionPlatformId(browser) },
            { tag: 'companion_platform_display', attrs: {}, content: `${browser[1]} (${browser[0]})` },
            // socket.js sends the string '0'; WhatsApp Web, whatsmeow and
            // whatsapp-rust send one 0x00 byte, as we do
            { tag: 'link_code_pairing_nonce', attrs: {}, content: Buffer.from([0]) }
        ]
    }
    put('hello_node', encodeBinaryNode(hello))
    const finish = {
        tag: 'link_code_companion_reg',
        attrs: { jid: `${phone}@s.whatsapp.net`, stage: 'companion_finish' },
        content: [
            { tag: 'link_code_pairing_wrapped_key_bundle', attrs: {}, content: bundle },
            { tag: 'companion_identity_public', attrs: {}, content: compIdent.public },
            { tag: 'link_code_pairing_ref', attrs: {}, content: ref }
        ]
    }
    put('finish_node', encodeBinaryNode(finish))
    const result = {
        tag: 'iq', attrs: { from: 's.whatsapp.net', type: 'result', id: '1.2-3' },
        content: [{ tag: 'link_code_companion_reg', attrs: {}, content: [{ tag: 'link_code_pairing_ref', attrs: {}, content: ref }] }]
    }
    put('result_node', encodeBinaryNode(result))
    const notification = {
        tag: 'notification', attrs: { from: 's.whatsapp.net', type: 'link_code_companion_reg', id: '1234', t: '1800000000' },
        content: [{
            tag: 'link_code_companion_reg', attrs: { stage: 'primary_hello' },
            content: [
                { tag: 'link_code_pairing_ref', attrs: {}, content: ref },
                { tag: 'link_code_pairing_wrapped_primary_ephemeral_pub', attrs: {}, content: primWrapped },
                { tag: 'primary_identity_pub', attrs: {}, content: primIdent.public }
            ]
        }]
    }
    const notifBytes = encodeBinaryNode(notification)
    // Baileys reads it back the way messages-recv.js does
    const back = getBinaryNodeChild(await decodeBinaryNode(notifBytes), 'link_code_companion_reg')
    check(Buffer.from(getBinaryNodeChildBuffer(back, 'link_code_pairing_ref')).equals(ref), 'notification ref')
    check(Buffer.from(getBinaryNodeChildBuffer(back, 'link_code_pairing_wrapped_primary_ephemeral_pub')).equals(primWrapped), 'notification wrapped')
    put('notification_node', notifBytes)

    const dir = new URL('../../tests/wa_paircode/testdata/', import.meta.url)
    mkdirSync(dir, { recursive: true })
    writeFileSync(new URL('baileys_paircode.txt', dir), lines.join('\n') + '\n')
    console.log(`baileys_paircode.txt: ${lines.length - 3} entries`)
}

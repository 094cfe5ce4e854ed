// Writes tests/wa_noise/testdata/baileys_curve.txt: Curve25519 key pairs,
// X25519 shared secrets and XEdDSA signatures made by the reference client's
// crypto (Baileys 7.0.0-rc14 Curve, i.e. libsignal's curve), so that our
// OpenSSL + libsignal-protocol-c implementation is checked against it.
// Format per line: priv pub msg sig peer_pub shared   (all hex)
// Usage: cd tools/baileys && npm install && node gen-curve-vectors.mjs
import { writeFileSync, mkdirSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { Curve } from '@whiskeysockets/baileys/lib/Utils/crypto.js'

const lines = []
for (let i = 0; i < 16; i++) {
    const kp = Curve.generateKeyPair()
    const peer = Curve.generateKeyPair()
    const msg = randomBytes(i === 0 ? 0 : 1 + i * 13)
    const sig = Buffer.from(Curve.sign(kp.private, msg))
    if (!Curve.verify(kp.public, msg, sig)) throw new Error('self-check failed')
    const shared = Curve.sharedKey(kp.private, peer.public)
    lines.push([kp.private, kp.public, msg, sig, peer.public, shared].map(b => Buffer.from(b).toString('hex') || '-').join(' '))
}
mkdirSync(new URL('../../tests/wa_noise/testdata/', import.meta.url), { recursive: true })
writeFileSync(new URL('../../tests/wa_noise/testdata/baileys_curve.txt', import.meta.url), lines.join('\n') + '\n')
console.log(`wrote ${lines.length} curve vectors`)

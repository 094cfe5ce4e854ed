// The usual Node stack for comparison: one Express process serving status,
// qr (a data URL made once with the qrcode package and cached) and reconnect,
// plus an SSE endpoint broadcasting state changes. Benchmarks only.
import express from 'express'
import QRCode from 'qrcode'

const port = Number(process.env.PORT || 3100)
const qrText = 'https://wa.me/settings/linked_devices#2@' + 'x'.repeat(40) +
    ',lQxJ34K+R0Hz9rqbyaHBdAt/zqJjYbcGyQat/w4G+XI=,exclGTrr1gII2upxvTQ5UeGL1YYSzgK1XWE08A3F9W8=,UbjYIJ0TcoCIYakHRBj7M+VW21LlkD+8GtbkZiPtnMw=,1'
const qrDataUrl = await QRCode.toDataURL(qrText)
let state = { state: 'QR_READY', seq: 1, changedMs: Date.now() }
const subscribers = new Set()
const app = express()
for (const prefix of ['/api/whatsapp', '/whatsapp']) {
    app.get(prefix + '/status', (req, res) =>
        res.json({ success: true, data: { connected: state.state === 'CONNECTED', state: state.state, hasQR: state.state === 'QR_READY' } }))
    app.get(prefix + '/qr', (req, res) =>
        res.json({ success: true, data: { qrCode: qrDataUrl, expiresIn: 60 } }))
    app.post(prefix + '/reconnect', (req, res) =>
        res.json({ success: true, message: 'WhatsApp reconnection initiated', data: { qrCode: qrDataUrl, expiresIn: 60 } }))
    app.get(prefix + '/events', (req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' })
        res.write('id: ' + state.seq + '\nevent: status\ndata: ' + JSON.stringify(state) + '\n\n')
        subscribers.add(res)
        req.on('close', () => subscribers.delete(res))
    })
}
// the benchmark drives changes: POST /bench/change publishes one
app.post('/bench/change', (req, res) => {
    state = { state: state.state === 'QR_READY' ? 'CONNECTING' : 'QR_READY', seq: state.seq + 1, changedMs: Date.now() }
    const msg = 'id: ' + state.seq + '\nevent: status\ndata: ' + JSON.stringify(state) + '\n\n'
    for (const s of subscribers) s.write(msg)
    res.json({ ok: true, subscribers: subscribers.size })
})
app.get('/healthz', (req, res) => res.json({ status: 'ok' }))
app.listen(port, '127.0.0.1')

// uWebSockets.js broadcast server for bench/run: TLS, an HS256 bearer token checked before
// the upgrade (401 otherwise), and `{"type":"publish","signal":{...}}` from a publisher token
// broadcast to every subscriber with uWS's own pub/sub (corked, shared frames).
// Usage: node uws.js PORT CERT KEY SECRET_FILE
const uWS = require('@trufflesuite/uws-js-unofficial');
const [port, cert, key, secretFile] = process.argv.slice(2);
const verify = require('./jwt')(secretFile);

const app = uWS.SSLApp({ cert_file_name: cert, key_file_name: key });
app.ws('/*', {
  maxPayloadLength: 4096,
  idleTimeout: 120,
  maxBackpressure: 4 * 1024 * 1024,
  upgrade: (res, req, context) => {
    const claims = verify(req.getHeader('authorization'));
    if (!claims) {
      res.writeStatus('401 Unauthorized').end('invalid token\n');
      return;
    }
    res.upgrade({ publisher: claims.role === 'publisher' },
      req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'), context);
  },
  open: (ws) => {
    const data = ws.getUserData ? ws.getUserData() : ws;
    if (!data.publisher) ws.subscribe('signals');
  },
  message: (ws, message) => {
    const data = ws.getUserData ? ws.getUserData() : ws;
    if (!data.publisher) return;
    let m;
    try { m = JSON.parse(Buffer.from(message).toString()); } catch { return; }
    if (m.type === 'publish') app.publish('signals', JSON.stringify(m.signal), false);
  },
});
app.listen('127.0.0.1', Number(port), (token) => {
  if (!token) { console.error('uws: cannot listen on', port); process.exit(1); }
  console.error(`listen=127.0.0.1:${port}`);
});

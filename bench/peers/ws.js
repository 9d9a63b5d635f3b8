// node `ws` broadcast server for bench/run: TLS, an HS256 bearer token checked before the
// upgrade (401 otherwise), and `{"type":"publish","signal":{...}}` from a publisher token
// sent to every other client.
// Usage: node ws.js PORT CERT KEY SECRET_FILE
const fs = require('fs');
const https = require('https');
const { WebSocketServer } = require('ws');
const [port, cert, key, secretFile] = process.argv.slice(2);
const verify = require('./jwt')(secretFile);

const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
const wss = new WebSocketServer({ noServer: true, maxPayload: 4096, perMessageDeflate: false });
const clients = new Set();
server.on('upgrade', (req, socket, head) => {
  const claims = verify(req.headers.authorization);
  if (!claims) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    if (claims.role === 'publisher') {
      ws.on('message', (data) => {
        let m;
        try { m = JSON.parse(data); } catch { return; }
        if (m.type !== 'publish') return;
        const text = JSON.stringify(m.signal);
        for (const c of clients) c.send(text);
      });
    } else {
      clients.add(ws);
      ws.on('close', () => clients.delete(ws));
    }
  });
});
server.listen(Number(port), '127.0.0.1', () => console.error(`listen=127.0.0.1:${port}`));

// HS256 bearer-token check shared by the Node peers: signature and expiry, as sigcast checks
// them (sigcast also pins iss and aud; the peers skip that, which only makes them cheaper).
const crypto = require('crypto');
const fs = require('fs');

module.exports = function verifier(secretFile) {
  const secret = fs.readFileSync(secretFile, 'utf8').trim();
  return function verify(authorization) {
    if (!authorization || !authorization.startsWith('Bearer ')) return null;
    const [h, p, s] = authorization.slice(7).split('.');
    if (!h || !p || !s) return null;
    const want = Buffer.from(crypto.createHmac('sha256', secret).update(h + '.' + p).digest('base64url'));
    const got = Buffer.from(s);
    if (want.length !== got.length || !crypto.timingSafeEqual(want, got)) return null;
    let claims;
    try { claims = JSON.parse(Buffer.from(p, 'base64url').toString()); } catch { return null; }
    if (!(claims.exp > Date.now() / 1000)) return null;
    return claims;
  };
};

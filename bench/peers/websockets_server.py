"""Python `websockets` broadcast server for bench/run: TLS, an HS256 bearer token checked
before the upgrade (401 otherwise), and {"type":"publish","signal":{...}} from a publisher
token sent to every other client with websockets.broadcast.

Usage: python websockets_server.py PORT CERT KEY SECRET_FILE
"""
import asyncio
import base64
import hashlib
import hmac
import json
import ssl
import sys
import time

from websockets.asyncio.server import broadcast, serve

port, cert, key, secret_file = sys.argv[1:5]
secret = open(secret_file, "rb").read().strip()
clients = set()


def b64(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify(authorization):
    if not authorization or not authorization.startswith("Bearer "):
        return None
    try:
        h, p, s = authorization[7:].split(".")
        want = hmac.new(secret, f"{h}.{p}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(want, b64(s)):
            return None
        claims = json.loads(b64(p))
    except ValueError:
        return None
    return claims if claims.get("exp", 0) > time.time() else None


def check(connection, request):
    claims = verify(request.headers.get("Authorization"))
    if claims is None:
        return connection.respond(401, "invalid token\n")
    connection.claims = claims
    return None


async def handler(ws):
    if ws.claims.get("role") == "publisher":
        async for message in ws:
            try:
                m = json.loads(message)
            except ValueError:
                continue
            if m.get("type") == "publish":
                broadcast(clients, json.dumps(m["signal"]))
        return
    clients.add(ws)
    try:
        await ws.wait_closed()
    finally:
        clients.discard(ws)


async def main():
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    async with serve(handler, "127.0.0.1", int(port), ssl=tls, process_request=check,
                     max_size=4096, compression=None, ping_interval=None):
        print(f"listen=127.0.0.1:{port}", file=sys.stderr, flush=True)
        await asyncio.Future()


asyncio.run(main())

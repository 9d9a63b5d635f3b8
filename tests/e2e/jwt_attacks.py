"""Mints the JWT attack matrix with PyJWT, an implementation independent of sigcast's.

tests/jwt_attacks.rs runs this and presents every token to a live sigcast: each case must
get HTTP 401 before any upgrade, except the two marked "accept" (valid HS256 and EdDSA).

Usage: jwt_attacks.py SECRET_FILE ED_PRIVATE_PEM ED_PUBLIC_PEM TRAP_URL
Prints one JSON object a line: {"case", "server": "hs256"|"eddsa", "expect", "token"}.
"""

import base64
import hashlib
import hmac
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

secret_file, ed_private_file, ed_public_file, trap_url = sys.argv[1:5]
secret = open(secret_file, "rb").read().strip()
ed_private = open(ed_private_file, "rb").read()
ed_public = open(ed_public_file, "rb").read()

now = int(time.time())
VALID = {
    "sub": "mallory",
    "exp": now + 600,
    "iat": now,
    "jti": "attack-1",
    "iss": "sigcast",
    "aud": "sigcast-clients",
}


def claims(**changes):
    c = dict(VALID)
    for key, value in changes.items():
        if value is None:
            c.pop(key, None)
        else:
            c[key] = value
    return c


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def out(case, token, server="hs256", expect="refuse"):
    print(json.dumps({"case": case, "server": server, "expect": expect, "token": token}))


def hs256_raw(c, key: bytes, header=None):
    h = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    p = b64(json.dumps(c).encode())
    sig = hmac.new(key, f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64(sig)}"


def hs(c, key=secret, headers=None):
    if len(key) < 32:
        # PyJWT refuses to sign with a weak HMAC key (an attacker would not).
        return hs256_raw(c, key, {"alg": "HS256", "typ": "JWT", **(headers or {})})
    return jwt.encode(c, key, algorithm="HS256", headers=headers)


# Keys an attacker holds: another Ed25519 key, an RSA key and another HMAC secret.
attacker_ed = ed25519.Ed25519PrivateKey.generate()
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
rsa_public = rsa_key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)

# The two that must pass: PyJWT's tokens are as good as sigcast's own.
out("valid HS256", hs(VALID), expect="accept")
out("valid EdDSA", jwt.encode(VALID, ed_private, algorithm="EdDSA"), "eddsa", "accept")

# alg none, in the spellings libraries have tripped on.
out("alg none", jwt.encode(VALID, None, algorithm="none"))
for alg in ["None", "NONE", "nOnE"]:
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    out(f"alg {alg}", f"{header}.{b64(json.dumps(VALID).encode())}.")

# Algorithm confusion: the public key used as an HMAC secret.
out("HS256 signed with the EdDSA public key", hs256_raw(VALID, ed_public), "eddsa")
out("HS256 signed with an RSA public key", hs256_raw(VALID, rsa_public))
out("HS256 signed with an RSA public key", hs256_raw(VALID, rsa_public), "eddsa")
out("RS256 with the attacker's key", jwt.encode(VALID, rsa_key, algorithm="RS256"))
out("EdDSA with the attacker's key", jwt.encode(VALID, attacker_ed, algorithm="EdDSA"), "eddsa")
out("EdDSA token to the HS256 server", jwt.encode(VALID, ed_private, algorithm="EdDSA"))

# kid injection: paths to files whose content an attacker knows, and SQL.
for kid in ["../../../../../../dev/null", "/dev/null", "../../../../etc/hostname"]:
    out(f"kid path {kid}", hs(VALID, b"", {"kid": kid}))
    out(f"kid path {kid} (EdDSA)", hs(VALID, b"", {"kid": kid}), "eddsa")
for kid in ["' OR '1'='1", "x' UNION SELECT 'secret' --", "1; DROP TABLE tokens"]:
    out(f"kid SQL {kid}", hs(VALID, b"secret", {"kid": kid}))
    out(f"kid SQL {kid} with the real secret", hs(VALID, secret, {"kid": kid}))

# Tampering and wrong keys.
good = hs(VALID)
h, p, s = good.split(".")
tampered = b64(json.dumps(claims(sub="admin", role="publisher")).encode())
out("tampered payload", f"{h}.{tampered}.{s}")
out("signature stripped", f"{h}.{p}.")
out("signature of another token", f"{h}.{p}.{hs(claims(sub='x')).split('.')[2]}")
out("wrong HMAC secret", hs(VALID, b"not-the-secret-not-the-secret-not-it!"))
out("empty HMAC secret", hs(VALID, b""))

# Time: the server's leeway is 5 s.
out("expired beyond leeway", hs(claims(exp=now - 60)))
out("nbf in the future", hs(claims(nbf=now + 120)))
# A token dated ahead would outlive a revocation of its subject, which covers by iat.
out("iat an hour ahead", hs(claims(iat=now + 3600)))
out("iat a day ahead", hs(claims(iat=now + 86400)))
out("iat beyond leeway", hs(claims(iat=now + 60)))
out("iat and exp in the past", hs(claims(iat=now - 7200, exp=now - 3600)))

# Claims.
out("wrong aud", hs(claims(aud="someone-else")))
out("missing aud", hs(claims(aud=None)))
out("aud list without ours", hs(claims(aud=["a", "b"])))
out("wrong iss", hs(claims(iss="evil")))
out("missing iss", hs(claims(iss=None)))
out("missing sub", hs(claims(sub=None)))
out("empty sub", hs(claims(sub="")))
out("missing exp", hs(claims(exp=None)))
out("exp as a string", hs(claims(exp=str(now + 600))))
out("exp as a float string", hs(claims(exp=f"{now + 600}.0")))
out("nbf as a string", hs(claims(nbf="0")))

# Key URLs: sigcast must not fetch them (the test's trap listener counts connections).
jwks_header = {"jku": f"{trap_url}/jwks.json", "kid": "attacker"}
out("jku pointing elsewhere", hs(VALID, b"attacker-secret-attacker-secret!!", jwks_header))
x5u_header = {"x5u": f"{trap_url}/cert.pem"}
out("x5u pointing elsewhere", jwt.encode(VALID, rsa_key, algorithm="RS256", headers=x5u_header))
out("x5u on an HS256 token", hs(VALID, b"attacker", x5u_header))
out("jku on an EdDSA token", jwt.encode(VALID, attacker_ed, algorithm="EdDSA", headers={"jku": f"{trap_url}/k"}), "eddsa")
embedded = {"jwk": {"kty": "oct", "k": b64(b"attacker")}}
out("embedded jwk", hs(VALID, b"attacker", embedded))

# Garbage.
out("oversized token (over 8 KiB)", hs(claims(pad="A" * 7000)))
out("non-base64 garbage", "%%%.@@@.!!!")
out("two segments", f"{h}.{p}")
out("four segments", f"{good}.{s}")
out("header is not JSON", f"{b64(b'not json')}.{p}.{s}")
out("payload is not JSON", f"{h}.{b64(b'[1,2')}.{s}")
out("bad base64 in signature", f"{h}.{p}.{s[:-2]}*~")

#!/usr/bin/env python3
"""Checks signed sigcast signals with nothing but Python and the `cryptography` package.

    python3 verify.py KEYS.json FRAMES [--scoped]

KEYS.json is the answer of GET /v1/journal/key (or `sigcast journal key`); FRAMES holds one
frame a line exactly as received (a `sigcast listen` output, a `sigcast journal export`, a
client's log). Exits 1 and names the seq of every signal that fails. docs/verify.md
explains each step.
"""
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def verify(keys_path, frames_path, scoped=False):
    with open(keys_path, encoding="utf-8") as f:
        keys = {
            k["kid"]: Ed25519PublicKey.from_public_bytes(base64.b64decode(k["public_key"]))
            for k in json.load(f)["keys"]
        }
    problems, verified, last = [], 0, None  # last: (seq, hash) of the last good signal
    with open(frames_path, encoding="utf-8", newline="") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            try:
                frame = json.loads(line)
            except ValueError:
                continue
            if not isinstance(frame, dict) or frame.get("is_test") or "seq" not in frame:
                continue  # not a journaled signal
            seq, proof = frame["seq"], frame.get("proof")
            if not isinstance(proof, dict):
                problems.append(f"line {n}: seq {seq}: carries no proof")
                last = None
                continue
            # The canonical bytes: the frame as received, without its last member "proof".
            canonical = (line[: line.rindex(',"proof":')] + "}").encode("utf-8")
            prev = bytes.fromhex(proof["prev"])
            digest = hashlib.sha256(prev + canonical).digest()
            try:
                keys[proof["kid"]].verify(base64.b64decode(proof["sig"]), digest)
            except (KeyError, InvalidSignature):
                problems.append(f"line {n}: seq {seq}: the signature does not hold")
                last = None
                continue
            verified += 1
            if last is not None:
                last_seq, last_hash = last
                if seq <= last_seq:
                    problems.append(f"line {n}: seq {seq}: comes after seq {last_seq}")
                    continue
                if seq == last_seq + 1 and prev != last_hash:
                    problems.append(f"line {n}: seq {seq}: does not follow seq {last_seq}")
                if seq > last_seq + 1 and not scoped:
                    problems.append(f"line {n}: seq {seq}: seq {last_seq + 1}..{seq - 1} missing")
            last = (seq, digest)
    for p in problems:
        print("FAILED", p)
    print(f"{verified} signals verified, {len(problems)} problems")
    return not problems and verified > 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--scoped"]
    if len(args) != 2:
        sys.exit(__doc__)
    sys.exit(0 if verify(args[0], args[1], scoped="--scoped" in sys.argv) else 1)

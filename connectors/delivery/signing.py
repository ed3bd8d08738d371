"""Signatures on agency deliveries: HMAC-SHA256 over the timestamp and the body, with a key id.

The hub sends three headers with every delivery::

    X-Hub-Key-Id:     the id of the shared key used (agencies keep old and new keys during
                      a rotation and look the secret up by this id)
    X-Hub-Timestamp:  Unix time in seconds when the hub signed the request
    X-Hub-Signature:  "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + raw body))

An agency verifies with :func:`verify` (or the same few lines in its own language): find the
secret by key id, reject a timestamp more than five minutes from its clock (a replayed old
delivery), compute the HMAC over the raw bytes it received, compare in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

KEY_ID = "X-Hub-Key-Id"
TIMESTAMP = "X-Hub-Timestamp"
SIGNATURE = "X-Hub-Signature"
TOLERANCE_S = 300


class VerificationError(ValueError):
    """A delivery whose signature must not be trusted; the message says why."""


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, key_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The signature headers for ``body`` signed at ``timestamp`` (Unix seconds)."""
    return {
        KEY_ID: key_id,
        TIMESTAMP: str(timestamp),
        SIGNATURE: "sha256=" + _digest(secret, timestamp, body),
    }


def verify(
    secrets: Mapping[str, bytes],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance_s: int = TOLERANCE_S,
) -> str:
    """Check a delivery as an agency would; return the key id, or raise VerificationError."""
    key_id = headers.get(KEY_ID)
    if not key_id or key_id not in secrets:
        raise VerificationError(f"unknown key id {key_id!r}")
    raw_ts = headers.get(TIMESTAMP, "")
    if not raw_ts.isdigit():
        raise VerificationError("missing or malformed timestamp")
    timestamp = int(raw_ts)
    if abs(now - timestamp) > tolerance_s:
        raise VerificationError(f"timestamp {timestamp} is outside ±{tolerance_s} s of now")
    given = headers.get(SIGNATURE, "")
    if not given.startswith("sha256="):
        raise VerificationError("missing or malformed signature")
    expected = _digest(secrets[key_id], timestamp, body)
    if not hmac.compare_digest(given.removeprefix("sha256="), expected):
        raise VerificationError("signature does not match the body")
    return key_id

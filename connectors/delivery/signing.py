"""Signatures on agency deliveries: Standard Webhooks (https://www.standardwebhooks.com).

Why this standard (and not RFC 9421 HTTP Message Signatures): an agency verifies a delivery
with the standard's own library in its language (Python, Java, C#, Go, PHP, Ruby, Rust,
JavaScript, …) in three lines, with no choice of covered components to get wrong; the message
id it signs is the task id, which is also what the agency deduplicates on, so the deduplication
key cannot be altered without breaking the signature (the old home-made scheme signed only the
timestamp and body).

Every delivery carries::

    webhook-id:         the task id (agencies deduplicate on it; ``Idempotency-Key`` repeats it)
    webhook-timestamp:  Unix seconds when the hub signed
    webhook-signature:  "v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>" — during a key
                        rotation one per secret, space-separated; any one that verifies counts

Secrets are ``whsec_`` + base64 of at least 32 random bytes (``hub deliver --new-secret``).
The standard's verifier rejects timestamps more than five minutes from its clock (replays).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

ID = "webhook-id"
TIMESTAMP = "webhook-timestamp"
SIGNATURE = "webhook-signature"
PREFIX = "whsec_"
# HMAC-SHA256's key is as strong as its block allows up to 64 bytes; fewer than 32 random bytes
# is below the hash's own strength, and a typed password is far below it.
MIN_SECRET_BYTES = 32


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` may not sign deliveries, or None."""
    if not secret.startswith(PREFIX):
        return f"a signing secret starts with {PREFIX!r} (hub deliver --new-secret makes one)"
    try:
        raw = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        return "a signing secret is whsec_ followed by base64"
    if len(raw) < MIN_SECRET_BYTES:
        return f"a signing secret holds at least {MIN_SECRET_BYTES} bytes; this one {len(raw)}"
    return None


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(MIN_SECRET_BYTES)).decode()


def sign(
    signing_secrets: Sequence[str], msg_id: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """The Standard Webhooks headers for ``body`` as message ``msg_id`` at ``timestamp``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    text = body.decode()
    signatures = " ".join(Webhook(s).sign(msg_id, moment, text) for s in signing_secrets)
    return {ID: msg_id, TIMESTAMP: str(timestamp), SIGNATURE: signatures}

"""Tokens in mailed links: derived from a row id and the app's secret, stored only as a hash.

``token_for(token_id)`` is an HMAC of a random id under ``NEXUS_SECRET_KEY``:
the sending job can rebuild the link on every retry without the token ever
being stored or passed in clear, and the database holds only
``token_hash(token)``, useless without the secret. Checking a token is a
look-up of its hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

_CONTEXT = b"nexus.mail.token:"


def token_for(token_id: uuid.UUID, secret: str) -> str:
    digest = hmac.new(secret.encode(), _CONTEXT + token_id.bytes, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()

"""API tokens: random, shown once, stored as SHA-256 digests.

Tokens carry 256 bits of randomness, so a fast hash is enough (no password stretching
needed): a leaked database does not reveal usable tokens, and a look-up is one indexed query.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

TOKEN_PREFIX = "ls_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The authenticated user of a request (a detached snapshot, safe to cache)."""

    id: int
    name: str
    is_admin: bool = False

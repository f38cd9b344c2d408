"""Password hashing with argon2id (argon2-cffi), off the event loop.

argon2 is deliberately slow and memory-hard; the C code releases the GIL, so hashing in
a worker thread keeps the event loop serving other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import secrets
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; a cap keeps a huge body from costing CPU

hasher = PasswordHasher()  # argon2id with the library's current RFC 9106 defaults


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Verified against when the user is unknown, so that costs as much as a wrong password.
    return hasher.hash(secrets.token_urlsafe(24))


async def warm_up() -> None:
    """Make the dummy hash now, so the first unknown-user login is not slower than the rest."""
    await asyncio.to_thread(_dummy_hash)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(hasher.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches; with no hash (unknown user) spends the same time and says False."""
    if password_hash is None:
        await asyncio.to_thread(_verify, _dummy_hash(), password)
        return False
    return await asyncio.to_thread(_verify, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other argon2 parameters than the current ones."""
    try:
        return hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def generate_password() -> str:
    """A strong random password (about 190 bits), for bootstrap admins."""
    return secrets.token_urlsafe(24)

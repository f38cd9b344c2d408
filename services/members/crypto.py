"""Personal data at rest: AES-256-GCM envelopes and HMAC-SHA256 blind indexes.

A stored value is `version(1) || key_id(4) || nonce(12) || ciphertext+tag`. The key id is
the first four bytes of SHA-256 of the key, so a key can be rotated by putting the new
key first in `QUNYUN_ENCRYPTION_KEY` (comma-separated base64 keys, newest first): new
values use the first key, old values still decrypt with the key their id names.
The associated data binds a ciphertext to its field and member, so a value copied into
another row or column does not decrypt.

Lookups use a blind index: HMAC-SHA256 (separate key) over the normalized value, which
finds exact matches without the database ever holding the plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import uuid
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.common.settings import Settings

FORMAT_VERSION = 1
NONCE_BYTES = 12
KEY_ID_BYTES = 4
HEADER_BYTES = 1 + KEY_ID_BYTES + NONCE_BYTES


class VaultError(Exception):
    """A stored value could not be decrypted (unknown key, tampered or wrong row)."""


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:KEY_ID_BYTES]


def parse_keys(configured: str) -> list[bytes]:
    """`base64key[,base64key...]` -> raw 32-byte keys, newest first."""
    keys = []
    for part in configured.split(","):
        if not part.strip():
            continue
        try:
            key = base64.b64decode(part.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("QUNYUN_ENCRYPTION_KEY must hold base64-encoded 32-byte keys") from exc
        if len(key) != 32:
            raise ValueError("QUNYUN_ENCRYPTION_KEY must hold base64-encoded 32-byte keys")
        keys.append(key)
    if not keys:
        raise ValueError("QUNYUN_ENCRYPTION_KEY is empty")
    return keys


class PersonalDataVault:
    """Encrypts and decrypts personal fields, and computes their blind indexes."""

    def __init__(self, keys: Sequence[bytes], index_key: bytes) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._current_id = key_id(keys[0])
        self._ciphers = {key_id(k): AESGCM(k) for k in keys}
        self._index_key = index_key

    @classmethod
    def from_settings(cls, settings: Settings) -> PersonalDataVault:
        keys = parse_keys(settings.encryption_key.get_secret_value())
        return cls(keys, settings.blind_index_key.get_secret_value().encode())

    @property
    def current_key_id(self) -> bytes:
        return self._current_id

    @staticmethod
    def _aad(field: str, member_id: uuid.UUID) -> bytes:
        return f"qunyun.members.{field}:{member_id}".encode()

    def encrypt(self, plaintext: str, *, field: str, member_id: uuid.UUID) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._current_id].encrypt(nonce, plaintext.encode(), self._aad(field, member_id))
        return bytes([FORMAT_VERSION]) + self._current_id + nonce + sealed

    def decrypt(self, blob: bytes, *, field: str, member_id: uuid.UUID) -> str:
        if len(blob) <= HEADER_BYTES or blob[0] != FORMAT_VERSION:
            raise VaultError("unknown envelope format")
        cipher = self._ciphers.get(bytes(blob[1 : 1 + KEY_ID_BYTES]))
        if cipher is None:
            raise VaultError("encrypted with a key that is no longer configured")
        nonce = bytes(blob[1 + KEY_ID_BYTES : HEADER_BYTES])
        try:
            return cipher.decrypt(nonce, bytes(blob[HEADER_BYTES:]), self._aad(field, member_id)).decode()
        except InvalidTag as exc:
            raise VaultError("the value does not authenticate") from exc

    def needs_rotation(self, blob: bytes) -> bool:
        return bytes(blob[1 : 1 + KEY_ID_BYTES]) != self._current_id

    def blind_index(self, field: str, normalized: str) -> str:
        message = f"{field}:{normalized}".encode()
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()

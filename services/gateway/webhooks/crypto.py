"""Endpoint secrets: generated as `whsec_<base64>`, stored encrypted with AES-GCM.

Signing needs the secret itself, so it cannot be hashed; it is encrypted with the
deployment's `QUNYUN_ENCRYPTION_KEY` and bound to its endpoint (associated data), so a
ciphertext copied onto another endpoint row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.common.settings import Settings

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
_VERSION = "v1:"
_NONCE_BYTES = 12


class SecretBox:
    """Encrypts and decrypts endpoint secrets with the deployment's encryption key."""

    def __init__(self, settings: Settings) -> None:
        try:
            key = base64.b64decode(settings.encryption_key.get_secret_value(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("QUNYUN_ENCRYPTION_KEY must be base64") from exc
        if len(key) not in (16, 24, 32):
            raise ValueError("QUNYUN_ENCRYPTION_KEY must decode to 16, 24 or 32 bytes")
        self._aead = AESGCM(key)

    def encrypt(self, secret: str, endpoint_id: uuid.UUID) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), endpoint_id.bytes)
        return _VERSION + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, ciphertext: str, endpoint_id: uuid.UUID) -> str:
        if not ciphertext.startswith(_VERSION):
            raise ValueError("unknown secret ciphertext version")
        raw = base64.b64decode(ciphertext[len(_VERSION) :])
        try:
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], endpoint_id.bytes)
        except InvalidTag as exc:
            raise ValueError("the secret does not decrypt with this key and endpoint") from exc
        return plain.decode()


def generate_secret() -> str:
    """A fresh Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()

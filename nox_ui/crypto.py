"""Secrets at rest: values such as the SMTP password, webhook secrets and apprise URLs are stored
encrypted with a key kept outside the database.

The key is derived (HKDF-SHA256, its own context label) from the panel's secret key
(`NOX_SECRET_KEY` or `DATA_DIR/secret.key`, mode 0600), so a copy of the database alone reveals no
secret. Encryption is `cryptography`'s Fernet (AES-128-CBC with an HMAC-SHA256 tag): a tampered or
foreign value fails to decrypt instead of yielding garbage. Stored values carry a version prefix,
`enc:v1:`, so a value written before encryption existed (plain text) is recognised and encrypted
at the next write or by `nox-ui secrets rotate`.

`SecretBox` is built once by the composition root. During a key rotation it also holds the previous
key, so values written under either key stay readable until every one is re-encrypted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.fernet import Fernet, MultiFernet

PREFIX = "enc:v1:"
_CONTEXT = b"nox-ui secrets at rest v1"


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with the keys at hand (another panel's key, or tampered)."""


def derive_key(secret_key: str, context: bytes) -> bytes:
    """32 bytes for one purpose (`context`) from the panel's secret key; purposes never share a key.

    HKDF-SHA256 (RFC 5869) with an empty salt, written with the standard library's HMAC so that
    signing (the audit head after every event, CSRF tokens) does not load `cryptography` (~7.7 MiB
    resident) into a panel that stores no secret; tests/test_crypto.py checks it against
    `cryptography`'s HKDF and the RFC's test vector."""
    prk = hmac.new(
        b"\x00" * hashlib.sha256().digest_size, secret_key.encode("utf-8"), hashlib.sha256
    ).digest()
    return hmac.new(prk, context + b"\x01", hashlib.sha256).digest()  # one block: 32 bytes


def sign(secret_key: str, context: bytes, message: bytes) -> str:
    """HMAC-SHA256 of `message` under the key derived for `context`, as hex."""
    return hmac.new(derive_key(secret_key, context), message, hashlib.sha256).hexdigest()


def _fernet(secret_key: str) -> Fernet:
    from cryptography.fernet import Fernet

    return Fernet(base64.urlsafe_b64encode(derive_key(secret_key, _CONTEXT)))


class SecretBox:
    """Encrypts and decrypts secret values. `secret_key` encrypts; `previous_keys` still decrypt.
    `cryptography` is loaded at the first secret encrypted or read, not at start."""

    def __init__(self, secret_key: str, previous_keys: Sequence[str] = ()) -> None:
        if not secret_key:
            raise ValueError("a secret key is required")
        self.secret_key = secret_key
        self.previous_keys = tuple(key for key in previous_keys if key and key != secret_key)
        self._ciphers: tuple[Fernet, MultiFernet] | None = None
        self._lock = threading.Lock()

    def _ready(self) -> tuple[Fernet, MultiFernet]:
        with self._lock:
            if self._ciphers is None:
                from cryptography.fernet import MultiFernet

                primary = _fernet(self.secret_key)
                self._ciphers = (primary, MultiFernet([primary, *map(_fernet, self.previous_keys)]))
            return self._ciphers

    @staticmethod
    def is_encrypted(stored: str) -> bool:
        return stored.startswith(PREFIX)

    def encrypt(self, plaintext: str) -> str:
        """The stored form of `plaintext`; an empty value (unset) stays empty."""
        if not plaintext:
            return ""
        return PREFIX + self._ready()[0].encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, stored: str) -> str:
        """The plain value. A value stored before encryption existed is returned as it is."""
        if not stored or not self.is_encrypted(stored):
            return stored
        from cryptography.fernet import InvalidToken

        try:
            return self._ready()[1].decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, ValueError) as exc:
            raise SecretUnreadable(
                "a stored secret cannot be decrypted with this panel's secret key "
                "(was the database copied from another installation, or the key replaced?)"
            ) from exc

    def reencrypt(self, stored: str) -> str:
        """The value encrypted under the current key (plain values get encrypted; empty stays empty)."""
        return self.encrypt(self.decrypt(stored))

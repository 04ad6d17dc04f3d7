"""The key derivation and SecretBox: the standard construction, checked against the library and the RFC."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from nox_ui.crypto import SecretBox, SecretUnreadable, derive_key


@settings(max_examples=200, derandomize=True)
@given(st.text(min_size=1, max_size=200), st.binary(max_size=64))
def test_derive_key_is_hkdf_sha256_as_the_library_computes_it(secret_key: str, context: bytes) -> None:
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=context).derive(
        secret_key.encode("utf-8")
    )
    assert derive_key(secret_key, context) == expected


def test_purposes_never_share_a_key() -> None:
    assert derive_key("k", b"nox-ui audit head v1") != derive_key("k", b"nox-ui secrets at rest v1")


def test_a_value_round_trips_and_a_previous_key_still_opens_it() -> None:
    old = SecretBox("old key")
    stored = old.encrypt("hunter2 but longer")
    assert stored.startswith("enc:v1:") and "hunter2" not in stored
    rotated = SecretBox("new key", ["old key"])
    assert rotated.decrypt(stored) == "hunter2 but longer"
    moved = rotated.reencrypt(stored)
    assert SecretBox("new key").decrypt(moved) == "hunter2 but longer"
    with pytest.raises(SecretUnreadable):
        SecretBox("old key").decrypt(moved)


def test_empty_and_legacy_plain_values() -> None:
    box = SecretBox("k")
    assert box.encrypt("") == ""
    assert box.decrypt("a value stored before encryption") == "a value stored before encryption"
    assert box.reencrypt("plain").startswith("enc:v1:")


def test_a_tampered_value_is_refused_not_garbled() -> None:
    box = SecretBox("k")
    stored = box.encrypt("secret")
    tampered = stored[:-6] + ("A" if stored[-6] != "A" else "B") + stored[-5:]
    with pytest.raises(SecretUnreadable):
        box.decrypt(tampered)
    with pytest.raises(SecretUnreadable):
        box.decrypt("enc:v1:not base64 at all")


def test_rfc_5869_test_case_3() -> None:
    """SHA-256, no salt, no info: the first 32 bytes of the RFC's output keying material."""
    okm = "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
    assert derive_key("\x0b" * 22, b"").hex() == okm

"""Argon2id hashing and the password policy."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from nox_ui.errors import Invalid

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_LENGTH = 12
MAX_LENGTH = 256


@cache
def _hasher() -> PasswordHasher:
    """argon2id with the library's RFC 9106 "low memory" profile; made at the first sign-in, so a
    running panel that nobody signs in to does not carry argon2 (nor a start-up hash)."""
    from argon2 import PasswordHasher

    return PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified against when a username does not exist, so unknown users cost as much time as wrong
    passwords."""
    return _hasher().hash("nox-ui timing equaliser")


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    try:
        return _hasher().verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)


@cache
def common_passwords() -> frozenset[str]:
    """The bundled list of common passwords (lower-cased), read once on first use."""
    text = resources.files("nox_ui").joinpath("data/common-passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def is_common_password(password: str) -> bool:
    common = common_passwords()
    return password.lower() in common or password.casefold() in common


def check_password_policy(password: str, username: str = "") -> None:
    if len(password) < MIN_LENGTH:
        raise Invalid(f"password too short: use at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise Invalid(f"password too long: use at most {MAX_LENGTH} characters")
    if username and password.casefold() == username.casefold():
        raise Invalid("password must not be the username")
    if is_common_password(password):
        raise Invalid("password is too common: choose another")

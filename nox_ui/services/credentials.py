"""What sessions and API tokens are made of, below both the user accounts and sign-in: how a secret
is stored (its SHA-256), the reserved name of password-grant tokens, and ending a user's credentials
inside a caller's transaction. `users` and `auth` both import it; it imports neither."""

from __future__ import annotations

import hashlib

from sqlmodel import Session, select

from nox_ui.models import ApiToken, LoginSession, utcnow

SESSION_COOKIE = "nox_session"
TOKEN_PREFIX = "nox_"
# POST /auth/token names its tokens so; the name is reserved, which is how the two kinds are told apart.
PASSWORD_GRANT_NAME = "password grant"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case), else None:
    the one parser of the API and /metrics."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def end_credentials(
    session: Session,
    user_id: int | None,
    *,
    keep_session_id: int | None = None,
    keep_personal_tokens: bool = False,
) -> tuple[int, int]:
    """End the sessions and revoke the tokens of a user; returns how many of each.

    Everything, unless told to keep one session (`keep_session_id`) or the personal access tokens
    (then only the password-grant tokens of POST /auth/token are revoked)."""
    login_query = select(LoginSession).where(LoginSession.user_id == user_id)
    if keep_session_id is not None:
        login_query = login_query.where(LoginSession.id != keep_session_id)
    logins = session.exec(login_query).all()
    for login in logins:
        session.delete(login)
    token_query = select(ApiToken).where(
        ApiToken.user_id == user_id,
        ApiToken.revoked_at.is_(None),  # type: ignore[union-attr]
    )
    if keep_personal_tokens:
        token_query = token_query.where(ApiToken.name == PASSWORD_GRANT_NAME)
    tokens = session.exec(token_query).all()
    for token in tokens:
        token.revoked_at = utcnow()
    return len(logins), len(tokens)

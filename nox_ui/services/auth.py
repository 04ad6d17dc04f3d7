"""Sign-in: password checks with throttling, server-side browser sessions, API bearer tokens (the
one-hour password-grant tokens of POST /auth/token and the personal access tokens of /profile)."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from loguru import logger
from sqlmodel import func, select

from nox_ui.crypto import sign
from nox_ui.db import Database
from nox_ui.errors import Conflict, Invalid, NotFound, RateLimited, Unauthenticated
from nox_ui.models import ApiToken, LoginSession, User, utcnow
from nox_ui.passwords import hash_password, needs_rehash, verify_password
from nox_ui.rates import Limiter, Rate
from nox_ui.roles import ALL_SCOPES, PANEL, ROLE_SCOPES, Need, Principal, Role, Target, check, scope_covers
from nox_ui.services.audit import AuditService, actor_of
from nox_ui.services.credentials import PASSWORD_GRANT_NAME, SESSION_COOKIE, TOKEN_PREFIX, hash_secret
from nox_ui.services.users import UserService, username_key

# Re-exported: the scope rules live in roles.py, the credential basics in credentials.py.
__all__ = [
    "ALL_SCOPES",
    "PASSWORD_GRANT_NAME",
    "ROLE_SCOPES",
    "SESSION_COOKIE",
    "TOKEN_PREFIX",
    "AuthService",
    "hash_secret",
    "scope_covers",
]

LOGIN_FAILED = "Invalid username or password."
TOKEN_CACHE_SECONDS = 5.0
SIGN_OUT_CONTEXT = b"nox-ui sign-out form v1"
MAX_TOKEN_NAME = 128
# "One year" from a calendar may be 366 days; a personal token lives at most that long, or forever.
MAX_TOKEN_LIFETIME = timedelta(days=366)
MAX_PERSONAL_TOKENS = 100
# Argon2 verifications running at once (each ~64 MiB), and how long an attempt waits for a turn.
VERIFY_CONCURRENCY = 2
VERIFY_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=480)
    absolute: timedelta = timedelta(hours=168)
    # last_seen is written at most this often, so page loads do not each cost a write
    touch_every: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int = 10
    lockout_seconds: int = 900


@dataclass(frozen=True)
class IssuedToken:
    token: str
    record: ApiToken


@dataclass(frozen=True)
class TokenInfo:
    """What a token's owner may see of it: everything but the hash."""

    id: int
    name: str
    kind: str  # "personal" or "password grant"
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    status: str  # "active", "expired" or "revoked"

    @classmethod
    def of(cls, record: ApiToken, now: datetime) -> TokenInfo:
        assert record.id is not None
        if record.revoked_at is not None:
            status = "revoked"
        elif record.expires_at is not None and record.expires_at <= now:
            status = "expired"
        else:
            status = "active"
        return cls(
            id=record.id,
            name=record.name,
            kind="password grant" if record.name == PASSWORD_GRANT_NAME else "personal",
            scopes=tuple(sorted(record.scopes.split())),
            created_at=record.created_at,
            expires_at=record.expires_at,
            last_used_at=record.last_used_at,
            revoked_at=record.revoked_at,
            status=status,
        )


def clean_token_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise Invalid("token name is required")
    if len(name) > MAX_TOKEN_NAME:
        raise Invalid(f"token name too long: use at most {MAX_TOKEN_NAME} characters")
    if not name.isprintable():
        raise Invalid("token name must be one line of text")
    if name.casefold() == PASSWORD_GRANT_NAME:
        raise Invalid(f"the name {PASSWORD_GRANT_NAME!r} is reserved for POST /auth/token; choose another")
    return name


def clean_scopes(scopes: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(scope.strip() for scope in scopes)
    if not wanted:
        raise Invalid("choose at least one scope")
    unknown = sorted(wanted - ALL_SCOPES)
    if unknown:
        known = ", ".join(sorted(ALL_SCOPES))
        raise Invalid(f"unknown scope {', '.join(map(repr, unknown))} (choose from: {known})")
    return wanted


def clean_expiry(expires_at: datetime | None, now: datetime) -> datetime | None:
    """None (never expires) or a moment in the future, at most MAX_TOKEN_LIFETIME away (naive means UTC)."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    if expires_at <= now:
        raise Invalid("expiry must be in the future")
    if expires_at - now > MAX_TOKEN_LIFETIME:
        raise Invalid(
            f"expiry too far: a token lives at most {MAX_TOKEN_LIFETIME.days} days (or never expires)"
        )
    return expires_at.astimezone(UTC)


class AuthService:
    def __init__(
        self,
        db: Database,
        users: UserService,
        audit: AuditService,
        *,
        secret_key: str,
        sessions: SessionPolicy | None = None,
        login: LoginPolicy | None = None,
    ) -> None:
        self.db = db
        self.secret_key = secret_key
        self.audit = audit
        self.users = users
        self.session_policy = sessions or SessionPolicy()
        self.login_policy = login or LoginPolicy()
        self._limiter = Limiter("moving-window")
        self._verifying = threading.BoundedSemaphore(VERIFY_CONCURRENCY)
        self._tickets: dict[str, tuple[int, float, str]] = {}
        self._tickets_lock = threading.Lock()
        # token hash -> (valid until, monotonic; principal): API clients polling every second would
        # otherwise cost a database read per request. Emptied whenever credentials end.
        self._token_cache: dict[str, tuple[float, Principal]] = {}
        users.on_sessions_ended(lambda _ids: self._token_cache.clear())

    # -- passwords ---------------------------------------------------------------------------------

    def check_password(self, username: str, password: str, ip: str = "") -> User:
        """Return the user if the credentials are right; one message for every kind of failure.

        The attempt is counted *before* the password is verified (an atomic hit: a burst sent at once
        cannot all pass a check made before any of them is counted), and a success resets the
        account's count. Per account and address, so a remote guesser cannot lock the real user out
        from elsewhere; per address, wider (every attempt counts), for one source guessing many
        accounts."""
        policy = self.login_policy
        checks = (
            (
                Rate(policy.max_failures, policy.lockout_seconds),
                f"login:user:{username_key(username)}@{ip or '-'}",
            ),
            (Rate(policy.max_failures * 5, policy.lockout_seconds), f"login:ip:{ip or '-'}"),
        )
        self._count_attempt(checks, "sign-ins", lambda: self._login_failed(username, ip, "throttled"))
        user = self.users.find(username) if username.strip() else None
        ok = self._verify(user.password_hash if user else None, password)
        if not ok or user is None or user.disabled:
            reason = "unknown user" if user is None else ("disabled" if user.disabled else "wrong password")
            logger.info("sign-in refused for {!r} from {}: {}", username[:64], ip or "-", reason)
            self._login_failed(username, ip, reason)
            raise Unauthenticated(LOGIN_FAILED)
        self._limiter.clear(*checks[0])
        assert user.id is not None
        new_hash = hash_password(password) if needs_rehash(user.password_hash) else None
        self.users.record_sign_in(user.id, new_hash, ip=ip)
        return user

    def _count_attempt(
        self, checks: Iterable[tuple[Rate, str]], what: str, on_throttled: Callable[[], None]
    ) -> None:
        """Count one attempt against every (rate, key); past any of them, RateLimited (429)."""
        for limit, key in checks:
            if not self._limiter.hit(limit, key):
                retry_after = self._limiter.retry_after(limit, key)
                logger.warning("password attempts throttled for {} (retry in {} s)", key, retry_after)
                on_throttled()
                raise RateLimited(f"Too many failed {what}. Try again in {retry_after} s.", retry_after)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        """Argon2 verification, at most VERIFY_CONCURRENCY at a time: each costs ~64 MiB, so a burst
        of attempts waits here (or gets 429) instead of exhausting memory."""
        if not self._verifying.acquire(timeout=VERIFY_WAIT_SECONDS):
            raise RateLimited("The server is busy checking other sign-ins. Try again in a moment.", 1)
        try:
            return verify_password(password_hash, password)
        finally:
            self._verifying.release()

    def _login_failed(self, username: str, ip: str, reason: str) -> None:
        """Audit a refused sign-in: the attempted name as the target, never the password."""
        self.audit.record_now(
            actor=None,
            action="auth.login.failure",
            outcome="failure",
            target_type="user",
            target_label=username[:64],
            details={"reason": reason},
            ip=ip,
        )

    def verify_current_password(self, principal: Principal, password: str, *, ip: str = "") -> None:
        """A signed-in user confirms a sensitive change with their password. Throttled per account like
        sign-in (a stolen session cannot guess the password) and every failure is audited; raises
        Unauthenticated when wrong, RateLimited past `login_max_failures`."""
        policy = self.login_policy
        limit = (Rate(policy.max_failures, policy.lockout_seconds), f"reauth:user:{principal.user_id}")

        def refused(reason: str) -> None:
            self.audit.record_now(
                actor=principal,
                action="auth.reauth.failure",
                outcome="failure",
                target_type="user",
                target_id=principal.user_id,
                target_label=principal.username,
                details={"reason": reason},
                ip=ip,
            )

        self._count_attempt([limit], "password checks", lambda: refused("throttled"))
        with self.db.session() as session:
            user = session.get(User, principal.user_id)
        if user is None or not self._verify(user.password_hash, password):
            refused("wrong password")
            raise Unauthenticated("The current password is not right.")
        self._limiter.clear(*limit)

    # -- browser sessions --------------------------------------------------------------------------

    def issue_ticket(self, user: User, browser: str) -> str:
        """A single-use, 60-second ticket that the browser trades for a session cookie over HTTP.

        `browser` identifies the browser that signed in (the id in its signed NiceGUI session cookie):
        only that browser may redeem the ticket, so nobody can send a victim a link that signs them in
        to the sender's account (login CSRF)."""
        assert user.id is not None
        if not browser:
            raise Unauthenticated("this browser sent no session; enable cookies and sign in again")
        ticket = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._tickets_lock:
            self._tickets = {k: v for k, v in self._tickets.items() if v[1] > now}
            self._tickets[hash_secret(ticket)] = (user.id, now + 60, hash_secret(browser))
        return ticket

    def redeem_ticket(self, ticket: str, browser: str, ip: str = "", user_agent: str = "") -> str:
        with self._tickets_lock:
            entry = self._tickets.pop(hash_secret(ticket), None)
        if entry is None or entry[1] < time.monotonic():
            raise Unauthenticated("sign-in link expired; please sign in again")
        if not hmac.compare_digest(entry[2], hash_secret(browser)):
            logger.warning("a sign-in ticket was brought by another browser than the one that signed in")
            raise Unauthenticated("this sign-in link belongs to another browser; please sign in here")
        return self.start_session(entry[0], ip=ip, user_agent=user_agent)

    def sign_out_token(self, session_cookie: str) -> str:
        """The CSRF token of the sign-out form: an HMAC of the session under the panel's key, so only a
        page of this session can produce it (nothing is stored)."""
        return sign(self.secret_key, SIGN_OUT_CONTEXT, hash_secret(session_cookie).encode())

    def check_sign_out_token(self, session_cookie: str, token: str) -> bool:
        return bool(session_cookie) and hmac.compare_digest(self.sign_out_token(session_cookie), token)

    def start_session(self, user_id: int, *, ip: str = "", user_agent: str = "") -> str:
        """Create a new session (a fresh identifier at every sign-in) and return its cookie value."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        with self.db.session() as session:
            user = session.get(User, user_id)
            if user is None or user.disabled:
                raise Unauthenticated(LOGIN_FAILED)
            session.add(
                LoginSession(
                    token_hash=hash_secret(token),
                    user_id=user_id,
                    created_at=now,
                    last_seen_at=now,
                    ip=ip[:64],
                    user_agent=user_agent[:256],
                )
            )
            session.commit()
        logger.info("user {!r} signed in from {}", user.username, ip or "-")
        return token

    def resolve_session(self, token: str | None) -> Principal | None:
        """The principal behind a session cookie, or None when it is unknown, expired or its user disabled."""
        if not token:
            return None
        now = utcnow()
        policy = self.session_policy
        with self.db.session() as session:
            login = session.exec(
                select(LoginSession).where(LoginSession.token_hash == hash_secret(token))
            ).first()
            if login is None:
                return None
            user = session.get(User, login.user_id)
            expired = now - login.last_seen_at > policy.idle or now - login.created_at > policy.absolute
            if user is None or user.disabled or expired:
                session.delete(login)
                if expired:
                    self.audit.record(
                        session,
                        actor=PANEL,
                        action="auth.session.end",
                        outcome="success",
                        target_type="session",
                        target_id=login.id or "",
                        target_label=user.username if user else "",
                        details={"reason": "expired"},
                    )
                session.commit()
                return None
            if now - login.last_seen_at > policy.touch_every:
                login.last_seen_at = now
                session.commit()
            return _principal(user, via="session", credential_id=login.id, scopes=ALL_SCOPES)

    def end_session(self, token: str | None, *, ip: str = "") -> None:
        if not token:
            return
        with self.db.session() as session:
            login = session.exec(
                select(LoginSession).where(LoginSession.token_hash == hash_secret(token))
            ).first()
            if login is None:
                return
            user_id = login.user_id
            session.delete(login)
            user = session.get(User, user_id)
            if user is not None:
                self.audit.record(
                    session,
                    actor=actor_of(user),
                    action="auth.logout",
                    outcome="success",
                    target_type="session",
                    target_id=login.id or "",
                    target_label=user.username,
                    ip=ip,
                )
            session.commit()
        logger.info("session of user id {} ended by sign-out", user_id)

    def list_sessions(self, user_id: int) -> list[LoginSession]:
        """A user's live sessions, newest first (expired ones are left out; they go at their next use)."""
        now = utcnow()
        policy = self.session_policy
        with self.db.session() as session:
            query = select(LoginSession).where(LoginSession.user_id == user_id)
            rows = session.exec(query.order_by(LoginSession.created_at.desc())).all()  # type: ignore[attr-defined]
        return [
            login
            for login in rows
            if now - login.last_seen_at <= policy.idle and now - login.created_at <= policy.absolute
        ]

    def live_session_ids(self, session_ids: set[int]) -> set[int]:
        """Which of these sessions still exist: the page guard asks it to close exactly the pages whose
        session just ended."""
        if not session_ids:
            return set()
        with self.db.session() as session:
            rows = session.exec(
                select(LoginSession.id).where(LoginSession.id.in_(session_ids))  # type: ignore[union-attr]
            ).all()
        return {row for row in rows if row is not None}

    def end_own_session(self, principal: Principal, session_id: int, *, ip: str = "") -> None:
        """End one of the caller's sessions (another browser); someone else's is "not found"."""
        with self.db.session() as session:
            login = session.get(LoginSession, session_id)
            if login is None or login.user_id != principal.user_id:
                raise NotFound(f"no session with id {session_id}")
            session.delete(login)
            self.audit.record(
                session,
                actor=principal,
                action="auth.session.end",
                outcome="success",
                target_type="session",
                target_id=session_id,
                target_label=principal.username,
                details={"reason": "ended by user"},
                ip=ip,
            )
            session.commit()
        logger.info("session {} of {!r} ended by its user", session_id, principal.username)
        self.users.notify_sessions_ended({principal.user_id})

    def end_other_sessions(self, principal: Principal, keep_session_id: int | None, *, ip: str = "") -> int:
        """End every session of the caller but `keep_session_id` (their own browser); returns how many."""
        with self.db.session() as session:
            query = select(LoginSession).where(LoginSession.user_id == principal.user_id)
            if keep_session_id is not None:
                query = query.where(LoginSession.id != keep_session_id)
            logins = session.exec(query).all()
            for login in logins:
                session.delete(login)
            if logins:
                self.audit.record(
                    session,
                    actor=principal,
                    action="auth.session.end",
                    outcome="success",
                    target_type="user",
                    target_id=principal.user_id,
                    target_label=principal.username,
                    details={"reason": "ended by user", "sessions": len(logins)},
                    ip=ip,
                )
            session.commit()
        if logins:
            self.users.notify_sessions_ended({principal.user_id})
        return len(logins)

    # -- API tokens --------------------------------------------------------------------------------

    def issue_token(
        self,
        user: User,
        *,
        name: str = "api",
        scopes: frozenset[str] = ALL_SCOPES,
        ttl: timedelta | None = timedelta(hours=1),
        ip: str = "",
    ) -> IssuedToken:
        """A token for `user` as is (no checks): the password grant of POST /auth/token, and tests."""
        return self._insert_token(
            user,
            name=name,
            scopes=scopes,
            expires_at=utcnow() + ttl if ttl else None,
            actor=actor_of(user, via="token"),
            ip=ip,
        )

    def create_personal_token(
        self,
        principal: Principal,
        name: str,
        scopes: Iterable[str],
        *,
        expires_at: datetime | None = None,
        ip: str = "",
    ) -> IssuedToken:
        """A personal access token for the caller; the secret is in the result and nowhere else.

        The name is one line of 1-128 characters, the scopes a non-empty subset of ALL_SCOPES, the
        expiry None (never) or within MAX_TOKEN_LIFETIME (Invalid otherwise). Nobody grants a scope
        above their role, and a request made with a token grants only scopes that token holds
        (Forbidden, audited), so a read-only token cannot mint an admin one."""
        now = utcnow()
        name = clean_token_name(name)
        wanted = clean_scopes(scopes)
        expires_at = clean_expiry(expires_at, now)
        check(
            principal,
            Need(Role.VIEWER, grant=wanted),
            Target("api_token", label=name),
            audit=self.audit,
            attempted="auth.token.create",
            ip=ip,
        )
        with self.db.session() as session:
            user = session.get(User, principal.user_id)
        if user is None or user.disabled:
            raise Unauthenticated("sign-in required")
        return self._insert_token(
            user,
            name=name,
            scopes=wanted,
            expires_at=expires_at,
            actor=principal,
            ip=ip,
            cap=MAX_PERSONAL_TOKENS,
        )

    def _insert_token(
        self,
        user: User,
        *,
        name: str,
        scopes: frozenset[str],
        expires_at: datetime | None,
        actor: Principal,
        ip: str,
        cap: int | None = None,
    ) -> IssuedToken:
        """Store a new token. With `cap`, refuse (Conflict) when the user already holds that many active
        personal tokens, counted after the insert has taken the database's write lock, so two creations
        at once cannot both pass the count."""
        assert user.id is not None
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = ApiToken(
            token_hash=hash_secret(token),
            user_id=user.id,
            name=name,
            scopes=" ".join(sorted(scopes)),
            created_at=utcnow(),
            expires_at=expires_at,
        )
        with self.db.session() as session:
            session.add(record)
            session.flush()
            if cap is not None:
                held = session.exec(
                    select(func.count())
                    .select_from(ApiToken)
                    .where(
                        ApiToken.user_id == user.id,
                        ApiToken.name != PASSWORD_GRANT_NAME,
                        ApiToken.revoked_at.is_(None),  # type: ignore[union-attr]
                        ApiToken.id != record.id,
                    )
                ).one()
                if held >= cap:
                    session.rollback()
                    raise Conflict(f"you have {held} tokens, the most allowed; revoke one you no longer use")
            self.audit.record(
                session,
                actor=actor,
                action="auth.token.create",
                outcome="success",
                target_type="api_token",
                target_id=record.id or "",
                target_label=name,
                details={
                    "kind": "password grant" if name == PASSWORD_GRANT_NAME else "personal",
                    "scopes": sorted(scopes),
                    "expires_at": record.expires_at.isoformat() if record.expires_at else None,
                },
                ip=ip,
            )
            session.commit()
            session.refresh(record)
        return IssuedToken(token=token, record=record)

    def list_tokens(self, user_id: int) -> list[TokenInfo]:
        """A user's tokens, newest first, without their hashes. Revoked ones are left out (the audit log
        keeps them); expired personal tokens stay, marked, until revoked; expired password grants go."""
        now = utcnow()
        with self.db.session() as session:
            rows = session.exec(
                select(ApiToken)
                .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))  # type: ignore[union-attr]
                .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())  # type: ignore[attr-defined,union-attr]
            ).all()
        infos = [TokenInfo.of(record, now) for record in rows]
        return [t for t in infos if not (t.kind == "password grant" and t.status == "expired")]

    def revoke_own_token(self, principal: Principal, token_id: int, *, ip: str = "") -> None:
        """Revoke one of the caller's tokens; someone else's, or one already revoked, is "not found"."""
        with self.db.session() as session:
            record = session.get(ApiToken, token_id)
            mine = record is not None and record.user_id == principal.user_id and record.revoked_at is None
        if not mine:
            raise NotFound(f"no token with id {token_id}")
        self.revoke_token(principal, token_id, ip=ip)

    def cached_token(self, token: str | None) -> Principal | None:
        """The principal of a token checked in the last few seconds, without touching the database."""
        if not token:
            return None
        cached = self._token_cache.get(hash_secret(token))
        return cached[1] if cached is not None and cached[0] > time.monotonic() else None

    def resolve_token(self, token: str | None) -> Principal | None:
        if not token or not token.startswith(TOKEN_PREFIX):
            return None
        token_hash = hash_secret(token)
        now = time.monotonic()
        cached = self._token_cache.get(token_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = self._resolve_token_from_db(token_hash)
        if found is None:
            return None
        principal, seconds_left = found
        if len(self._token_cache) > 10_000:
            self._token_cache.clear()
        # never cached beyond the token's own expiry
        self._token_cache[token_hash] = (now + min(TOKEN_CACHE_SECONDS, seconds_left), principal)
        return principal

    def _resolve_token_from_db(self, token_hash: str) -> tuple[Principal, float] | None:
        now = utcnow()
        with self.db.session() as session:
            record = session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash)).first()
            if record is None or record.revoked_at is not None:
                return None
            if record.expires_at is not None and record.expires_at <= now:
                return None
            user = session.get(User, record.user_id)
            if user is None or user.disabled:
                return None
            if record.last_used_at is None or now - record.last_used_at > self.session_policy.touch_every:
                record.last_used_at = now
                session.commit()
            seconds_left = (record.expires_at - now).total_seconds() if record.expires_at else float("inf")
            scopes = frozenset(record.scopes.split())
            return _principal(user, via="token", credential_id=record.id, scopes=scopes), seconds_left

    def revoke_token(self, actor: Principal, token_id: int, *, ip: str = "") -> None:
        """Revoke any token (no role check here: the CLI, an admin route, or `revoke_own_token`)."""
        with self.db.session() as session:
            record = session.get(ApiToken, token_id)
            if record is not None and record.revoked_at is None:
                record.revoked_at = utcnow()
                owner = session.get(User, record.user_id)
                self.audit.record(
                    session,
                    actor=actor,
                    action="auth.token.revoke",
                    outcome="success",
                    target_type="api_token",
                    target_id=token_id,
                    target_label=record.name,
                    details={"owner": owner.username if owner else None},
                    ip=ip,
                )
                session.commit()
        self._token_cache.clear()


def _principal(user: User, *, via: str, credential_id: int | None, scopes: frozenset[str]) -> Principal:
    assert user.id is not None
    return Principal(
        user_id=user.id,
        username=user.username,
        role=Role(user.role),
        display_name=user.display_name,
        via=via,
        credential_id=credential_id,
        scopes=scopes,
    )

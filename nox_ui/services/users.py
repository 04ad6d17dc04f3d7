"""User accounts: create, list, update, change password, disable, delete. UI-free; the CLI, API and pages
call these. Guards: the last enabled admin cannot be demoted, disabled or deleted, and nobody disables
or deletes their own account."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import update as sa_update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from nox_ui.db import Database
from nox_ui.errors import Conflict, Invalid, NotFound
from nox_ui.models import ApiToken, LoginSession, User, utcnow
from nox_ui.parsing import check_email
from nox_ui.passwords import check_password_policy, hash_password
from nox_ui.roles import Principal, Role
from nox_ui.services.audit import AuditService, actor_of
from nox_ui.services.credentials import end_credentials

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MAX_DISPLAY_NAME = 128
# Names that read as the panel or the host acting, not a person: the audit log shows "system" for
# the panel's own actions, so an account of that name could pass its acts off as the panel's.
RESERVED_USERNAMES = frozenset(
    {
        "system",
        "root",
        "nox",
        "nox-ui",
        "nox_ui",
        "nox.ui",
        "noxui",
        "anonymous",
        "unknown",
        "setup",
        "cli",
        "daemon",
        "nobody",
    }
)

# Called with the ids of users whose sessions were just ended, so open pages can be closed at once.
SessionsEndedListener = Callable[[set[int]], None]


def username_key(username: str) -> str:
    return username.strip().casefold()


def clean_username(username: str) -> str:
    """The one check of a new account's name: its shape, and not a name reserved for system actors."""
    username = username.strip()
    if not USERNAME_RE.match(username):
        raise Invalid(
            "invalid username: use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    if username_key(username) in RESERVED_USERNAMES:
        raise Invalid(
            f"the username {username!r} is reserved: it would read as the system, not a person, "
            "in the audit log; choose another"
        )
    return username


def clean_email(email: str) -> str:
    """Empty (no address), or one address by the panel's one email rule (`parsing.check_email`)."""
    email = email.strip()
    return check_email(email) if email else email


def clean_display_name(display_name: str) -> str:
    display_name = display_name.strip()
    if len(display_name) > MAX_DISPLAY_NAME:
        raise Invalid(f"display name too long: use at most {MAX_DISPLAY_NAME} characters")
    if any(ch in display_name for ch in "\r\n\t\x00"):
        raise Invalid("display name must be one line of text")
    return display_name


class UserService:
    def __init__(self, db: Database, audit: AuditService) -> None:
        self.db = db
        self.audit = audit
        self._sessions_ended: list[SessionsEndedListener] = []

    def _authorize(self, actor: Principal, minimum: Role, action: str, target: str, ip: str) -> None:
        self.audit.authorize(actor, minimum, attempted=action, target_type="user", target_label=target, ip=ip)

    def _audit_sessions_ended(
        self,
        session: Session,
        actor: Principal,
        user: User,
        ended: tuple[int, int],
        reason: str,
        ip: str,
    ) -> None:
        if any(ended):
            self.audit.record(
                session,
                actor=actor,
                action="auth.session.end",
                outcome="success",
                target_type="user",
                target_id=user.id or "",
                target_label=user.username,
                details={"reason": reason, "sessions": ended[0], "api_keys_revoked": ended[1]},
                ip=ip,
            )

    def on_sessions_ended(self, listener: SessionsEndedListener) -> None:
        self._sessions_ended.append(listener)

    def notify_sessions_ended(self, user_ids: set[int]) -> None:
        for listener in list(self._sessions_ended):
            listener(user_ids)

    def count(self) -> int:
        with self.db.session() as session:
            return session.exec(select(func.count()).select_from(User)).one()

    def list(self) -> list[User]:
        with self.db.session() as session:
            return list(session.exec(select(User).order_by(User.username_key)).all())

    def get(self, user_id: int) -> User:
        with self.db.session() as session:
            user = session.get(User, user_id)
        if user is None:
            raise NotFound(f"no user with id {user_id}")
        return user

    def find(self, username: str) -> User | None:
        with self.db.session() as session:
            return session.exec(select(User).where(User.username_key == username_key(username))).first()

    def get_by_username(self, username: str) -> User:
        user = self.find(username)
        if user is None:
            raise NotFound(f"no user named {username!r}")
        return user

    def create(
        self,
        actor: Principal,
        username: str,
        password: str,
        role: Role | str,
        *,
        display_name: str = "",
        email: str = "",
        ip: str = "",
    ) -> User:
        """Create an account (admin only; the CLI and first-run setup act as `roles.CLI`/`roles.SETUP`)."""
        self._authorize(actor, Role.ADMIN, "user.create", username.strip(), ip)
        username = clean_username(username)
        role = Role.parse(role) if isinstance(role, str) else role
        display_name = clean_display_name(display_name)
        email = clean_email(email)
        check_password_policy(password, username)
        user = User(
            username=username,
            username_key=username_key(username),
            display_name=display_name,
            email=email,
            password_hash=hash_password(password),
            role=role.value,
        )
        with self.db.session() as session:
            if session.exec(select(User.id).where(User.username_key == user.username_key)).first():
                raise Conflict(f"user {username!r} already exists")
            session.add(user)
            try:
                session.flush()
                self.audit.record(
                    session,
                    actor=actor,
                    action="user.create",
                    outcome="success",
                    target_type="user",
                    target_id=user.id or "",
                    target_label=username,
                    details={"role": role.value, "display_name": user.display_name, "email": user.email},
                    ip=ip,
                )
                session.commit()
            except IntegrityError:
                session.rollback()
                raise Conflict(f"user {username!r} already exists") from None
            session.refresh(user)
        return user

    def set_password(
        self,
        actor: Principal,
        username: str,
        password: str,
        *,
        ip: str = "",
        keep_session_id: int | None = None,
    ) -> User:
        """Change a password.

        Someone else's (an admin's reset, the CLI): every session and token of that user ends. One's own
        (`actor` is that user): the session `keep_session_id` (the browser making the change) and the
        personal access tokens stay, as on GitHub or GitLab; every other session and every password-grant
        token (a sign-in from a script) ends."""
        user = self.get_by_username(username)
        own = actor.user_id == user.id
        if not own:
            self._authorize(actor, Role.ADMIN, "user.password", user.username, ip)
        check_password_policy(password, user.username)
        with self.db.session() as session:
            stored = session.get(User, user.id)
            assert stored is not None
            stored.password_hash = hash_password(password)
            stored.updated_at = utcnow()
            if own:
                ended = end_credentials(
                    session, stored.id, keep_session_id=keep_session_id, keep_personal_tokens=True
                )
            else:
                ended = end_credentials(session, stored.id)
            self.audit.record(
                session,
                actor=actor,
                action="user.password",
                outcome="success",
                target_type="user",
                target_id=stored.id or "",
                target_label=stored.username,
                details={"own": own},
                ip=ip,
            )
            self._audit_sessions_ended(session, actor, stored, ended, "password changed", ip)
            session.commit()
            session.refresh(stored)
        # The page guard closes the pages whose session is gone; a kept session's pages stay open.
        self.notify_sessions_ended({stored.id or 0})
        return stored

    def set_disabled(self, actor: Principal, username: str, disabled: bool = True, *, ip: str = "") -> User:
        """Disable (or enable) an account; disabling ends its sessions and tokens at once."""
        self._authorize(actor, Role.ADMIN, "user.disable" if disabled else "user.update", username, ip)
        user = self.get_by_username(username)
        with self.db.session() as session:
            stored = session.get(User, user.id)
            assert stored is not None
            if disabled:
                _refuse_self(actor, stored, "disable")
                _refuse_last_admin(session, stored, "disable")
            stored.disabled = disabled
            stored.updated_at = utcnow()
            ended = end_credentials(session, stored.id) if disabled else (0, 0)
            self.audit.record(
                session,
                actor=actor,
                action="user.disable" if disabled else "user.update",
                outcome="success",
                target_type="user",
                target_id=stored.id or "",
                target_label=stored.username,
                details={"disabled": disabled},
                ip=ip,
            )
            self._audit_sessions_ended(session, actor, stored, ended, "account disabled", ip)
            session.commit()
            session.refresh(stored)
        if disabled:
            self.notify_sessions_ended({stored.id or 0})
        return stored

    def update(
        self,
        actor: Principal,
        user_id: int,
        *,
        role: Role | str | None = None,
        disabled: bool | None = None,
        display_name: str | None = None,
        email: str | None = None,
        password: str | None = None,
        ip: str = "",
    ) -> User:
        """Change any of role, disabled, display name, email and password in one transaction (admin only).

        Changing the role, disabling or setting a password ends that user's sessions and tokens at once.
        Everything is checked before anything is written, so a refused update changes nothing."""
        self._authorize(actor, Role.ADMIN, "user.update", f"id {user_id}", ip)
        new_role = Role.parse(role) if isinstance(role, str) else role
        new_display_name = clean_display_name(display_name) if display_name is not None else None
        new_email = clean_email(email) if email is not None else None
        with self.db.session() as session:
            stored = session.get(User, user_id)
            if stored is None:
                raise NotFound(f"no user with id {user_id}")
            if password is not None:
                check_password_policy(password, stored.username)
            old_role = Role(stored.role)
            demoted = new_role is not None and new_role != old_role and old_role is Role.ADMIN
            disabling = disabled is True and not stored.disabled
            if disabling:
                _refuse_self(actor, stored, "disable")
            if demoted or disabling:
                _refuse_last_admin(session, stored, "demote" if demoted else "disable")

            changes: dict[str, dict[str, Any]] = {}
            if new_role is not None and new_role != old_role:
                changes["role"] = {"old": old_role.value, "new": new_role.value}
                stored.role = new_role.value
            if new_display_name is not None and new_display_name != stored.display_name:
                changes["display_name"] = {"old": stored.display_name, "new": new_display_name}
                stored.display_name = new_display_name
            if new_email is not None and new_email != stored.email:
                changes["email"] = {"old": stored.email, "new": new_email}
                stored.email = new_email
            enabling = disabled is False and stored.disabled
            if enabling:
                changes["disabled"] = {"old": True, "new": False}
            if disabled is not None:
                stored.disabled = disabled
            if password is not None:
                stored.password_hash = hash_password(password)
            if not changes and not disabling and password is None:
                return stored
            stored.updated_at = utcnow()

            ended = (0, 0)
            if "role" in changes or disabling or password is not None:
                ended = end_credentials(session, stored.id)
            target: dict[str, Any] = {
                "target_type": "user",
                "target_id": stored.id or "",
                "target_label": stored.username,
            }
            if changes:
                self.audit.record(
                    session,
                    actor=actor,
                    action="user.update",
                    outcome="success",
                    details=changes,
                    ip=ip,
                    **target,
                )
            if disabling:
                self.audit.record(
                    session,
                    actor=actor,
                    action="user.disable",
                    outcome="success",
                    details={"disabled": {"old": False, "new": True}},
                    ip=ip,
                    **target,
                )
            if password is not None:
                self.audit.record(
                    session,
                    actor=actor,
                    action="user.password",
                    outcome="success",
                    details={"own": actor.user_id == stored.id},
                    ip=ip,
                    **target,
                )
            reason = (
                "account disabled"
                if disabling
                else "role changed"
                if "role" in changes
                else "password changed"
            )
            self._audit_sessions_ended(session, actor, stored, ended, reason, ip)
            session.commit()
            session.refresh(stored)
        if any(ended) or disabling or "role" in changes or password is not None:
            self.notify_sessions_ended({stored.id or 0})
        return stored

    def delete(self, actor: Principal, user_id: int, *, ip: str = "") -> None:
        """Delete an account with its sessions and tokens (admin only; never one's own, never the last admin)."""
        self._authorize(actor, Role.ADMIN, "user.delete", f"id {user_id}", ip)
        with self.db.session() as session:
            stored = session.get(User, user_id)
            if stored is None:
                raise NotFound(f"no user with id {user_id}")
            _refuse_self(actor, stored, "delete")
            _refuse_last_admin(session, stored, "delete")
            logins = session.exec(select(LoginSession).where(LoginSession.user_id == user_id)).all()
            tokens = session.exec(select(ApiToken).where(ApiToken.user_id == user_id)).all()
            for row in (*logins, *tokens):
                session.delete(row)
            self.audit.record(
                session,
                actor=actor,
                action="user.delete",
                outcome="success",
                target_type="user",
                target_id=user_id,
                target_label=stored.username,
                details={
                    "role": stored.role,
                    "display_name": stored.display_name,
                    "email": stored.email,
                    "sessions": len(logins),
                    "api_keys": len(tokens),
                },
                ip=ip,
            )
            session.flush()
            session.delete(stored)
            session.commit()
        self.notify_sessions_ended({user_id})

    def active_session_counts(self) -> dict[int, int]:
        """user id -> number of browser sessions currently stored (expired ones go at their next use)."""
        with self.db.session() as session:
            rows = session.exec(
                select(LoginSession.user_id, func.count()).group_by(LoginSession.user_id)  # type: ignore[arg-type]
            ).all()
        return {user_id: count for user_id, count in rows}

    def end_sessions(self, actor: Principal, user_id: int, *, ip: str = "") -> tuple[int, int]:
        """End every session and revoke every token of a user (admin only); returns how many of each."""
        self._authorize(actor, Role.ADMIN, "auth.session.end", f"id {user_id}", ip)
        with self.db.session() as session:
            stored = session.get(User, user_id)
            if stored is None:
                raise NotFound(f"no user with id {user_id}")
            ended = end_credentials(session, stored.id)
            self._audit_sessions_ended(session, actor, stored, ended, "ended by an admin", ip)
            session.commit()
        self.notify_sessions_ended({user_id})
        return ended

    def record_sign_in(self, user_id: int, new_password_hash: str | None = None, *, ip: str = "") -> None:
        """Note a successful password check; upgrade the hash when Argon2's parameters changed."""
        with self.db.session() as session:
            stored = session.get(User, user_id)
            if stored is not None:
                stored.last_login_at = utcnow()
                if new_password_hash:
                    stored.password_hash = new_password_hash
                self.audit.record(
                    session,
                    actor=actor_of(stored),
                    action="auth.login.success",
                    outcome="success",
                    target_type="user",
                    target_id=stored.id or "",
                    target_label=stored.username,
                    ip=ip,
                )
                session.commit()


def _refuse_self(actor: Principal, user: User, verb: str) -> None:
    if actor.user_id == user.id:
        raise Conflict(f"you cannot {verb} your own account")


def _refuse_last_admin(session: Session, user: User, verb: str) -> None:
    """Refuse to take away the last enabled admin (demote, disable or delete).

    Atomic: a no-op UPDATE of the target row first takes SQLite's write lock (held to the caller's
    commit), then the target and the other admins are read as they are now. Two admins taking each
    other away at the same moment are serialised here: the second sees the first's change and is
    refused, so at least one enabled admin always remains."""
    table = User.__table__  # type: ignore[attr-defined]
    session.execute(sa_update(table).where(table.c.id == user.id).values(id=table.c.id))
    session.refresh(user)
    if user.role != Role.ADMIN.value or user.disabled:
        return
    others = session.exec(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.ADMIN.value, User.disabled == False, User.id != user.id)  # noqa: E712
    ).one()
    if others == 0:
        raise Conflict(
            f"cannot {verb} {user.username!r}: it is the last enabled admin; make another admin first"
        )

"""First run: with no user in the database, a one-time token lets /setup create the first admin."""

from __future__ import annotations

import hmac
import secrets
import threading

from nox_ui.errors import Forbidden, NotFound
from nox_ui.models import User
from nox_ui.roles import SETUP, Role
from nox_ui.services.users import UserService


class SetupService:
    def __init__(self, users: UserService) -> None:
        self.users = users
        self._token: str | None = None
        self._lock = threading.Lock()

    def needed(self) -> bool:
        return self.users.count() == 0

    def token(self) -> str | None:
        """The current setup token, created on first call while no user exists; None once set up."""
        with self._lock:
            if not self.needed():
                self._token = None
                return None
            if self._token is None:
                self._token = secrets.token_urlsafe(24)
            return self._token

    def check(self, token: str | None) -> None:
        """NotFound once setup is done (the page disappears); Forbidden for a wrong token."""
        expected = self.token()
        if expected is None:
            raise NotFound("setup is already complete")
        if not token or not hmac.compare_digest(token.encode(), expected.encode()):
            raise Forbidden("this setup link is not valid; use the one printed on the server console")

    def create_admin(self, token: str | None, username: str, password: str) -> User:
        with self._lock:
            expected = self._token
            if expected is None or not self.needed():
                raise NotFound("setup is already complete")
            if not token or not hmac.compare_digest(token.encode(), expected.encode()):
                raise Forbidden("this setup link is not valid; use the one printed on the server console")
            user = self.users.create(SETUP, username, password, Role.ADMIN)
            self._token = None
            return user

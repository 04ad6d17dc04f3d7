"""The composition root: builds every service once and hands them to the API, the pages and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from nox_ui.config import Settings
from nox_ui.db import Database
from nox_ui.services.auth import AuthService
from nox_ui.services.setup import SetupService
from nox_ui.services.users import UserService


@dataclass
class Services:
    settings: Settings
    db: Database
    users: UserService
    auth: AuthService
    setup: SetupService

    def close(self) -> None:
        self.db.dispose()


def build_services(settings: Settings) -> Services:
    db = Database(settings.resolved_database_url)
    users = UserService(db)
    auth = AuthService(db, users)
    return Services(settings=settings, db=db, users=users, auth=auth, setup=SetupService(users))

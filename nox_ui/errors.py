"""Typed domain errors: services raise these, the API maps them to status codes, the UI to a notification."""

import errno


class NoxError(Exception):
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(NoxError):
    status_code = 422


class Unauthenticated(NoxError):
    status_code = 401


class Forbidden(NoxError):
    status_code = 403


class NotFound(NoxError):
    status_code = 404


class Conflict(NoxError):
    status_code = 409


class RateLimited(NoxError):
    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageFull(NoxError):
    """A write failed because the disk (or the database's size limit) is full: nothing was saved."""

    status_code = 507

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message or "the disk is full, so nothing was saved; free some space on the server and try again"
        )


def _chain(error: BaseException) -> list[BaseException]:
    """The error and the ones it was raised from (a driver error wrapped by SQLAlchemy, say)."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def disk_full(error: BaseException) -> bool:
    """Whether `error` says the disk is full: ENOSPC, EDQUOT, or SQLite's "database or disk is full"."""
    for item in _chain(error):
        if isinstance(item, StorageFull):
            return True
        if isinstance(item, OSError) and item.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if type(item).__name__ == "OperationalError" and "database or disk is full" in str(item):
            return True
    return False


def database_busy(error: BaseException) -> bool:
    """Whether `error` is SQLite saying another connection holds the lock ("database is locked"/"busy")."""
    for item in _chain(error):
        if type(item).__name__ == "OperationalError":
            text = str(item).lower()
            if any(words in text for words in ("database is locked", "database is busy", "table is locked")):
                return True
    return False

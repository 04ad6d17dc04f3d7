"""Typed domain errors: services raise these, the API maps them to status codes, the UI to a notification."""


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

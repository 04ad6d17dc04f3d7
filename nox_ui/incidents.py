"""Incidents: an unexpected exception met by a person (a page, an API call, a button) gets a short id,
logged once with its traceback, and shown to the person instead of the exception itself.

The id links what the person quotes ("incident 3f9c0a2b71") to the one log line that has the traceback.
The exception's type and message may name paths or values, so only admins see them; nobody sees the
traceback outside the log. Expected failures (`NoxError`: invalid input, a conflict, not found,
forbidden) are not incidents: their message is written for the person and shown as it is.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass

from loguru import logger

from nox_ui.roles import Principal, Role
from nox_ui.supervisor import error_text

_ATTRIBUTE = "_nox_incident"
_VIEWER = "_nox_viewer"


@dataclass(frozen=True)
class Incident:
    id: str
    where: str  # "page /history", "API GET /api/v1/me", "action on /admin/users"
    summary: str  # "Type: message": for admins only


def record(error: BaseException, where: str) -> Incident:
    """The incident of `error`: on first sight a new id and one log line with the traceback; the same
    incident when it is met again (NiceGUI hands one exception to several handlers)."""
    known = of(error)
    if known is not None:
        return known
    incident = Incident(id=secrets.token_hex(5), where=where, summary=error_text(error))
    with contextlib.suppress(AttributeError, TypeError):  # an exception type without a __dict__
        setattr(error, _ATTRIBUTE, incident)
    logger.bind(incident=incident.id).opt(exception=error).error(
        "incident {}: unexpected error in {}", incident.id, where
    )
    return incident


def of(error: BaseException) -> Incident | None:
    incident = getattr(error, _ATTRIBUTE, None)
    return incident if isinstance(incident, Incident) else None


def public_message(incident: Incident) -> str:
    """What anybody may read about it."""
    return f"Something went wrong on the server (incident {incident.id}). It is logged; quote the id to report it."


def seen_by(error: BaseException, principal: Principal) -> None:
    """Note who met `error` (the page guard does, for the page that raised it)."""
    with contextlib.suppress(AttributeError, TypeError):
        setattr(error, _VIEWER, principal)


def shows_details_to(error: BaseException, principal: Principal | None = None) -> bool:
    """Whether the person who met `error` may read its type and message: an admin."""
    viewer = principal or getattr(error, _VIEWER, None)
    return isinstance(viewer, Principal) and viewer.role.allows(Role.ADMIN)

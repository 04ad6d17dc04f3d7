"""The caller's own credentials: personal access tokens (shown once, stored hashed) and browser sessions.

Any signed-in user manages their own; the routes need the `read` scope like every viewer route, and a
token may only create tokens whose scopes it holds itself (see `AuthService.create_personal_token`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from nox_ui.api.deps import client_ip, get_services, require_role
from nox_ui.app import Services
from nox_ui.errors import Invalid
from nox_ui.models import LoginSession, utcnow
from nox_ui.roles import Principal, Role
from nox_ui.services.auth import MAX_TOKEN_LIFETIME, MAX_TOKEN_NAME, TokenInfo

router = APIRouter()

TokenId = Path(ge=1, le=2**63 - 1, description="the token's id")
SessionId = Path(ge=1, le=2**63 - 1, description="the session's id")


class TokenOut(BaseModel):
    id: int
    name: str
    kind: str = Field(description="`personal`, or `password grant` for a token from POST /auth/token")
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None = Field(description="null: never expires")
    last_used_at: datetime | None
    revoked: bool
    status: str = Field(description="`active` or `expired`")

    @classmethod
    def of(cls, info: TokenInfo) -> TokenOut:
        return cls(
            id=info.id,
            name=info.name,
            kind=info.kind,
            scopes=list(info.scopes),
            created_at=info.created_at,
            expires_at=info.expires_at,
            last_used_at=info.last_used_at,
            revoked=info.revoked_at is not None,
            status=info.status,
        )


class TokenCreated(TokenOut):
    token: str = Field(description="the secret: shown this once, never again")


class TokenCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=4 * MAX_TOKEN_NAME, examples=["backup script"], description="one line")
    scopes: list[str] = Field(
        max_length=16, examples=[["read"]], description="any of read, write, admin, metrics:read"
    )
    expires_at: datetime | None = Field(
        default=None, description="when it stops working (UTC when no offset is given)"
    )
    expires_in_days: int | None = Field(
        default=None, ge=1, le=MAX_TOKEN_LIFETIME.days, description="instead of expires_at"
    )


class SessionOut(BaseModel):
    id: int
    created_at: datetime
    last_seen_at: datetime
    ip: str
    user_agent: str

    @classmethod
    def of(cls, login: LoginSession) -> SessionOut:
        assert login.id is not None
        return cls(
            id=login.id,
            created_at=login.created_at,
            last_seen_at=login.last_seen_at,
            ip=login.ip,
            user_agent=login.user_agent,
        )


@router.get("/tokens", response_model=list[TokenOut], tags=["tokens"], summary="Your API tokens")
def list_tokens(
    principal: Principal = Depends(require_role(Role.VIEWER)), services: Services = Depends(get_services)
) -> list[TokenOut]:
    """Newest first, never with the secret. Revoked tokens and expired password grants are left out."""
    return [TokenOut.of(info) for info in services.auth.list_tokens(principal.user_id)]


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=201,
    tags=["tokens"],
    summary="Create a personal access token",
)
def create_token(
    body: TokenCreateIn,
    request: Request,
    principal: Principal = Depends(require_role(Role.VIEWER)),
    services: Services = Depends(get_services),
) -> TokenCreated:
    """No expiry given: it never expires. Bad name, unknown scope, an expiry in the past or more than a
    year away: 422. A scope above your role, or one the token of this request lacks: 403."""
    if body.expires_at is not None and body.expires_in_days is not None:
        raise Invalid("give expires_at or expires_in_days, not both")
    expires_at = body.expires_at
    if body.expires_in_days is not None:
        expires_at = utcnow() + timedelta(days=body.expires_in_days)
    issued = services.auth.create_personal_token(
        principal, body.name, body.scopes, expires_at=expires_at, ip=client_ip(request)
    )
    info = TokenOut.of(TokenInfo.of(issued.record, utcnow()))
    return TokenCreated(**info.model_dump(), token=issued.token)


@router.delete("/tokens/{token_id}", status_code=204, tags=["tokens"], summary="Revoke one of your tokens")
def revoke_token(
    request: Request,
    token_id: int = TokenId,
    principal: Principal = Depends(require_role(Role.VIEWER)),
    services: Services = Depends(get_services),
) -> Response:
    """It stops working at once. Someone else's token, or one already revoked: 404."""
    services.auth.revoke_own_token(principal, token_id, ip=client_ip(request))
    return Response(status_code=204)


@router.get("/sessions", response_model=list[SessionOut], tags=["sessions"], summary="Your browser sessions")
def list_sessions(
    principal: Principal = Depends(require_role(Role.VIEWER)), services: Services = Depends(get_services)
) -> list[SessionOut]:
    return [SessionOut.of(login) for login in services.auth.list_sessions(principal.user_id)]


@router.delete(
    "/sessions/{session_id}", status_code=204, tags=["sessions"], summary="End one of your browser sessions"
)
def end_session(
    request: Request,
    session_id: int = SessionId,
    principal: Principal = Depends(require_role(Role.VIEWER)),
    services: Services = Depends(get_services),
) -> Response:
    """That browser is signed out at once. Someone else's session: 404."""
    services.auth.end_own_session(principal, session_id, ip=client_ip(request))
    return Response(status_code=204)

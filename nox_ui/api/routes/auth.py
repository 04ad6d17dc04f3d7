from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from nox_ui.api.deps import client_ip, current_principal, get_services
from nox_ui.app import Services
from nox_ui.roles import Principal

router = APIRouter(tags=["auth"])

TOKEN_TTL_SECONDS = 3600


class TokenRequest(BaseModel):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=16, description="one-time code, when 2FA is on")


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class Me(BaseModel):
    id: int
    username: str
    display_name: str
    email: str
    role: str
    last_login_at: datetime | None
    auth: str
    scopes: list[str]


@router.post("/auth/token", response_model=TokenResponse, summary="Trade a username and password for a token")
def create_token(
    body: TokenRequest, request: Request, services: Services = Depends(get_services)
) -> TokenResponse:
    ip = client_ip(request)
    user = services.auth.check_password(body.username, body.password, ip=ip)
    issued = services.auth.issue_token(
        user, name="password grant", ttl=timedelta(seconds=TOKEN_TTL_SECONDS), ip=ip
    )
    return TokenResponse(access_token=issued.token, expires_in=TOKEN_TTL_SECONDS)


@router.get("/me", response_model=Me, summary="The signed-in user")
def me(principal: Principal = Depends(current_principal), services: Services = Depends(get_services)) -> Me:
    user = services.users.get(principal.user_id)
    return Me(
        id=principal.user_id,
        username=user.username,
        display_name=user.display_name,
        email=user.email,
        role=user.role,
        last_login_at=user.last_login_at,
        auth=principal.via,
        scopes=sorted(principal.scopes),
    )

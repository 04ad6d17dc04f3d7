from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from nox_ui.api.deps import client_ip, get_services, require_role
from nox_ui.app import Services
from nox_ui.models import User
from nox_ui.roles import Principal, Role

router = APIRouter(tags=["users"])


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    email: str
    role: str
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        assert user.id is not None
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            email=user.email,
            role=user.role,
            disabled=user.disabled,
            created_at=user.created_at,
            last_login_at=user.last_login_at,
        )


UserId = Path(ge=1, le=2**63 - 1, description="the account's id")


class UserCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64, examples=["olga"])
    password: str = Field(min_length=1, max_length=1024, description="12 to 256 characters, not a common one")
    role: str = Field(
        min_length=1, max_length=16, examples=["operator"], description="viewer, operator or admin"
    )
    display_name: str = Field(default="", max_length=256)
    email: str = Field(default="", max_length=512)


class UserPatchIn(BaseModel):
    """Only the fields given change; changing `role`, disabling or setting `password` ends the user's
    sessions and tokens at once."""

    model_config = ConfigDict(extra="forbid")

    role: str | None = Field(default=None, max_length=16, description="viewer, operator or admin")
    disabled: StrictBool | None = None
    display_name: str | None = Field(default=None, max_length=256)
    email: str | None = Field(default=None, max_length=512)
    password: str | None = Field(default=None, max_length=1024)


@router.get("/users", response_model=list[UserOut], summary="All accounts (admin)")
def list_users(
    _admin: Principal = Depends(require_role(Role.ADMIN)), services: Services = Depends(get_services)
) -> list[UserOut]:
    return [UserOut.of(user) for user in services.users.list()]


@router.post("/users", response_model=UserOut, status_code=201, summary="Create an account (admin)")
def create_user(
    body: UserCreateIn,
    request: Request,
    admin: Principal = Depends(require_role(Role.ADMIN)),
    services: Services = Depends(get_services),
) -> UserOut:
    """Duplicate username: 409. Invalid username, role, email or password (policy): 422."""
    user = services.users.create(
        admin,
        body.username,
        body.password,
        body.role,
        display_name=body.display_name,
        email=body.email,
        ip=client_ip(request),
    )
    return UserOut.of(user)


@router.get("/users/{user_id}", response_model=UserOut, summary="One account (admin)")
def get_user(
    user_id: int = UserId,
    _admin: Principal = Depends(require_role(Role.ADMIN)),
    services: Services = Depends(get_services),
) -> UserOut:
    return UserOut.of(services.users.get(user_id))


@router.patch("/users/{user_id}", response_model=UserOut, summary="Change an account (admin)")
def update_user(
    body: UserPatchIn,
    request: Request,
    user_id: int = UserId,
    admin: Principal = Depends(require_role(Role.ADMIN)),
    services: Services = Depends(get_services),
) -> UserOut:
    """Unknown fields or invalid values: 422 and nothing changes. Demoting or disabling the last enabled
    admin, or disabling yourself: 409."""
    user = services.users.update(
        admin,
        user_id,
        role=body.role,
        disabled=body.disabled,
        display_name=body.display_name,
        email=body.email,
        password=body.password,
        ip=client_ip(request),
    )
    return UserOut.of(user)


@router.delete("/users/{user_id}", status_code=204, summary="Delete an account (admin)")
def delete_user(
    request: Request,
    user_id: int = UserId,
    admin: Principal = Depends(require_role(Role.ADMIN)),
    services: Services = Depends(get_services),
) -> Response:
    """Its sessions and tokens go with it. Deleting yourself or the last enabled admin: 409."""
    services.users.delete(admin, user_id, ip=client_ip(request))
    return Response(status_code=204)

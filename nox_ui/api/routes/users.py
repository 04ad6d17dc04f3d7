from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from nox_ui.api.deps import get_services, require_role
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


@router.get("/users", response_model=list[UserOut], summary="All accounts (admin)")
def list_users(
    _admin: Principal = Depends(require_role(Role.ADMIN)), services: Services = Depends(get_services)
) -> list[UserOut]:
    return [UserOut.of(user) for user in services.users.list()]

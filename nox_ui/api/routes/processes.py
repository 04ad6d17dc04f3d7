from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from nox_ui.api.deps import client_ip, get_services, require_role
from nox_ui.app import Services
from nox_ui.roles import Principal, Role
from nox_ui.services.processes import ProcessInfo

router = APIRouter(tags=["processes"])


class ProcessOut(BaseModel):
    pid: int
    name: str
    username: str
    cpu_percent: float | None = Field(description="since the previous listing; 0.0 on the first")
    memory_percent: float | None
    rss_bytes: int | None
    status: str
    num_threads: int | None
    create_time: float | None = Field(description="start time, unix seconds")
    cmdline: str = Field(
        description="the full command line for operators and admins; for viewers only the executable "
        "name (unless the process_cmdline_for_viewers setting is on)"
    )
    cmdline_hidden: bool = Field(description="true when cmdline holds only the executable name")

    @classmethod
    def of(cls, info: ProcessInfo) -> ProcessOut:
        return cls(**asdict(info))


class ProcessListOut(BaseModel):
    total: int = Field(description="processes matching q, before limit and offset")
    items: list[ProcessOut]


class SignalIn(BaseModel):
    signal: str = Field(description='"TERM" or "KILL"', examples=["TERM"], max_length=16)
    create_time: float | None = Field(
        default=None,
        description="optional: the process's create_time as listed; refused with 404 if the pid "
        "now belongs to another process",
        allow_inf_nan=False,
    )


@router.get("/processes", response_model=ProcessListOut, summary="The host's processes (viewer)")
def list_processes(
    sort: str = "cpu",
    q: str = Query("", max_length=256),
    limit: int = 50,
    offset: int = 0,
    order: Literal["asc", "desc"] = "desc",
    viewer: Principal = Depends(require_role(Role.VIEWER)),
    services: Services = Depends(get_services),
) -> ProcessListOut:
    """Sort by pid, name, user, cpu, memory, rss, threads or start. `q` matches name, user or
    command line (case-insensitive) or an exact pid. `limit` is 1 to 1000. Viewers see (and `q`
    matches) only the executable name in place of the command line, unless an admin allowed more."""
    page = services.processes.list(
        viewer, sort=sort, q=q, limit=limit, offset=offset, descending=order == "desc"
    )
    return ProcessListOut(total=page.total, items=[ProcessOut.of(info) for info in page.items])


@router.post(
    "/processes/{pid}/signal", response_model=ProcessOut, summary="Send TERM or KILL to a process (operator)"
)
def signal_process(
    pid: Annotated[int, Path(ge=0, le=2**31 - 1, description="a process id")],
    body: SignalIn,
    request: Request,
    operator: Principal = Depends(require_role(Role.OPERATOR)),
    services: Services = Depends(get_services),
) -> ProcessOut:
    """Answers with the process as it was just before the signal. 404 when it no longer exists,
    403 when the panel's OS user may not signal it, 422 for another signal and for ids that are
    refused: pid 1, the panel, its threads, its parent, its process group, or a thread id."""
    info = services.processes.signal(
        operator, pid, body.signal, create_time=body.create_time, ip=client_ip(request)
    )
    return ProcessOut.of(info)

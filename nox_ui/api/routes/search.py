from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from nox_ui.api.deps import client_ip, get_services, require_role
from nox_ui.app import Services
from nox_ui.roles import Principal, Role
from nox_ui.search.service import MAX_PAGE, MAX_PER_PAGE, PER_PAGE, IndexStatus, SearchResults

router = APIRouter(tags=["search"])


class SearchHitOut(BaseModel):
    type: str = Field(
        description="user, audit, rule, alert, silence, notifier, setting, screen, process, or a plugin's"
    )
    id: str
    title: str = Field(description="plain text")
    snippet: str = Field(description="HTML-escaped text with <mark> around the matched words")
    url: str = Field(description="the panel path that opens the item")
    score: float = Field(
        description="relevance among the same kind of results (0 for processes, audit events)"
    )


class SearchOut(BaseModel):
    query: str = Field(description="the search as understood")
    type: str | None
    page: int
    pages: int
    total: int
    counts: dict[str, int] = Field(
        description="matches per type the caller may see; types with none are left out"
    )
    capped: list[str] = Field(description="types whose count is a lower bound (more than 2,000 audit events)")
    hits: list[SearchHitOut]
    state: str = Field(description='"ready", "rebuilding" (results may be incomplete) or "failed"')
    progress: float | None = Field(description="of a rebuild, 0 to 1")
    fuzzy: bool = Field(description="no exact match: these are close ones (a typo allowed per word)")
    message: str

    @classmethod
    def of(cls, results: SearchResults) -> SearchOut:
        return cls(
            query=results.query,
            type=results.type,
            page=results.page,
            pages=results.pages,
            total=results.total,
            counts=results.counts,
            capped=list(results.capped),
            hits=[SearchHitOut(**vars(hit)) for hit in results.hits],
            state=results.state,
            progress=results.progress,
            fuzzy=results.fuzzy,
            message=results.message,
        )


class IndexStatusOut(BaseModel):
    state: str
    documents: int
    progress: float | None
    last_error: str
    path: str
    size_bytes: int
    built_at: float | None = Field(description="Unix time of the published build")

    @classmethod
    def of(cls, status: IndexStatus) -> IndexStatusOut:
        return cls(**vars(status))


@router.get("/search", response_model=SearchOut, summary="Search everything the caller may see (viewer)")
async def search(
    q: str = Query(
        "", description='words, prefix*, "a phrase", -excluded, OR, type:user; at most 200 characters'
    ),
    type: str | None = Query(None, max_length=64, description="only this type (see `counts` for the keys)"),
    page: int = Query(1, ge=1, le=MAX_PAGE),
    per_page: int = Query(PER_PAGE, ge=1, le=MAX_PER_PAGE),
    viewer: Principal = Depends(require_role(Role.VIEWER)),
    services: Services = Depends(get_services),
) -> SearchOut:
    """Users, audit events, alert rules, alerts, silences, notifiers, settings, screens, live processes
    and plugin documents, filtered by the caller's role (a viewer never sees users, audit events or
    notifiers, nor their counts). The other types come first, by relevance; audit events after them,
    newest first. A search that cannot be run (too long, a lone `*`, an unknown `type:`) is a 422 saying
    why; while the index is rebuilt the answer is 200 with `state` "rebuilding"."""
    results = await services.search.search(viewer, q, type=type, page=page, per_page=per_page)
    return SearchOut.of(results)


@router.get("/search/status", response_model=IndexStatusOut, summary="The search index's state (admin)")
async def status(
    _admin: Principal = Depends(require_role(Role.ADMIN)), services: Services = Depends(get_services)
) -> IndexStatusOut:
    return IndexStatusOut.of(await run_in_threadpool(services.search.status))


@router.post(
    "/search/reindex",
    response_model=IndexStatusOut,
    status_code=202,
    summary="Rebuild the search index in the background (admin)",
)
async def reindex(
    request: Request,
    admin: Principal = Depends(require_role(Role.ADMIN)),
    services: Services = Depends(get_services),
) -> IndexStatusOut:
    """Audited as `search.reindex`; 409 while a rebuild runs. Searches keep answering from the current
    index (with `state` "rebuilding") until the new one is swapped in."""
    await services.search.reindex(admin, ip=client_ip(request))
    return IndexStatusOut.of(await run_in_threadpool(services.search.status))

"""/search: the full results of a search, with type facets (role-filtered counts from the service) and
paging. Everything the page shows is in its address (`/search?q=..&type=..&page=..`), so a search can
be bookmarked and shared; the form, the facets and the pager are plain links and navigations."""

from __future__ import annotations

from nicegui import run, ui

from nox_ui.app import Services
from nox_ui.components.forms import on_submit
from nox_ui.components.frame import frame
from nox_ui.components.search_box import (
    SEARCH_PATH,
    grouped,
    notices,
    run_search,
    search_url,
    snippet,
    type_icon,
    type_label,
)
from nox_ui.components.session import SessionGuard
from nox_ui.components.theme import card
from nox_ui.roles import Principal
from nox_ui.search import TYPES, SearchHit, SearchResults
from nox_ui.web import safe_next

PER_PAGE = 20
REBUILD_POLL_SECONDS = 2.0

_CSS = """
.nox-facet { padding: .25rem .7rem; border-radius: 999px; border: 1px solid rgba(148, 163, 184, .45);
  color: inherit; text-decoration: none; font-size: .85rem; display: inline-flex; gap: .4rem; }
.nox-facet:hover { background: rgba(148, 163, 184, .14); }
.nox-facet[aria-current="page"] { background: #2563eb; border-color: #2563eb; color: #fff; }
.nox-facet .nox-facet-count { opacity: .75; font-variant-numeric: tabular-nums; }
.nox-hit-title { font-weight: 500; overflow-wrap: anywhere; text-decoration: none; }
.nox-hit-title:hover, .nox-hit-title:focus-visible { text-decoration: underline; }
"""


def _page_number(page: str) -> int | None:
    """The `page` parameter as a number from 1, or None when it is not one."""
    text = page.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 6 or int(text) < 1:
        return None
    return int(text)


def register(services: Services, guard: SessionGuard) -> None:
    @guard.page(SEARCH_PATH, title="Search")
    async def search_page(principal: Principal, q: str = "", type: str = "", page: str = "1") -> None:
        chosen = type.strip() or None
        number = _page_number(page)
        words = q.strip()
        answer: SearchResults | str | None = None
        if number is None:
            answer = "Page must be a whole number, 1 or more."
        elif words:
            answer = await run_search(guard, words, type=chosen, page=number, per_page=PER_PAGE)
            if answer is None:  # the session ended meanwhile: the guard is taking the page to sign-in
                return

        with frame(guard, principal, "Search"):
            ui.add_css(_CSS)
            ui.label("Search").classes("text-h5")
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                field = (
                    ui.input("Search", value=q)
                    .props("outlined autocomplete=off spellcheck=false clearable")
                    .classes("col")
                    .mark("search-page-input")
                )
                with field.add_slot("prepend"):
                    ui.icon("search")
                button = (
                    ui.button("Search", icon="search").props("unelevated color=primary").mark("search-submit")
                )

            async def submit(values: list[str]) -> None:
                ui.navigate.to(search_url(values[0].strip(), chosen))

            on_submit(field, "keydown.enter", submit, field)
            on_submit(button, "click", submit, field)

            if isinstance(answer, str):
                ui.label(answer).classes("text-negative nox-search-error text-body2").props(
                    "role=alert"
                ).mark("search-error")
            elif answer is None:
                _help()
            else:
                _results(answer, words, chosen)
                if answer.state == "rebuilding":
                    _reload_when_rebuilt(services, search_url(words, chosen, answer.page))


def _reload_when_rebuilt(services: Services, url: str) -> None:
    """While the index is rebuilt, look every few seconds (a meta file and a folder listing, in a worker
    thread); once it is done, load the page again with the full results."""

    async def check() -> None:
        status = await run.io_bound(services.search.status)
        if status is not None and status.state != "rebuilding":
            timer.deactivate()
            ui.navigate.to(url)

    timer = ui.timer(REBUILD_POLL_SECONDS, check)


def _help() -> None:
    with card().classes("w-full q-pa-md gap-1"):
        ui.label(
            "Search users, audit events, alert rules, alerts, silences, notifiers, settings, screens "
            "and processes: you see what your role may see."
        ).classes("text-body2")
        ui.label(
            'All words must match. "a phrase" keeps words together, disk* matches a prefix, -word leaves '
            "out what matches, type:user keeps one type. Press Ctrl+K or / on any screen to search from there."
        ).classes("text-body2 nox-muted")


def _results(results: SearchResults, q: str, chosen: str | None) -> None:
    notices(results)
    everything = sum(results.counts.values())
    found = {0: "No results", 1: "1 result"}.get(results.total, f"{results.total} results")
    summary = f"{found} for “{q}”" + (f" in {type_label(chosen)}" if chosen else "")
    ui.label(summary).classes("text-body2 nox-muted").props("role=status aria-live=polite").mark(
        "search-summary"
    )
    _facets(results, q, chosen, everything)
    if results.hits:
        with card().classes("w-full q-pa-none gap-0"):
            if chosen:
                _hit_list(results.hits)
            else:
                for kind, hits in grouped(results.hits):
                    _group(kind, hits, results.counts.get(kind, len(hits)), q)
    elif results.pages and results.page > results.pages:
        ui.link("Back to the first page", search_url(q, chosen)).mark("search-first-page")
    _pager(results, q, chosen)


def _facets(results: SearchResults, q: str, chosen: str | None, everything: int) -> None:
    kinds = [kind for kind in TYPES if results.counts.get(kind)]
    kinds += [kind for kind in results.counts if kind not in TYPES and results.counts[kind]]
    if chosen and chosen not in kinds:
        kinds.append(chosen)
    with (
        ui.row()
        .classes("w-full gap-2 items-center")
        .props("role=navigation aria-label='Result types'")
        .mark("search-facets")
    ):
        _facet("All", everything, search_url(q), "all", current=chosen is None)
        for kind in kinds:
            count = results.counts.get(kind, 0)
            _facet(type_label(kind), count, search_url(q, kind), kind, current=kind == chosen)


def _facet(label: str, count: int, url: str, key: str, *, current: bool) -> None:
    link = ui.link(target=url).classes("nox-facet").mark(f"search-facet search-facet-{key}")
    if current:
        link.props('aria-current="page"')
    with link:
        ui.label(label)
        ui.label(str(count)).classes("nox-facet-count")


def _group(kind: str, hits: list[SearchHit], count: int, q: str) -> None:
    with ui.row().classes("w-full items-center q-px-md q-pt-md q-pb-xs gap-2").mark("search-group"):
        ui.icon(type_icon(kind), size="1.1rem").classes("nox-muted")
        ui.label(type_label(kind)).classes("text-subtitle2")
        ui.label(str(count)).classes("text-caption nox-muted")
        ui.space()
        if count > len(hits):
            ui.link(f"All {count} {type_label(kind).lower()}", search_url(q, kind)).classes("text-body2")
    _hit_list(hits)


def _hit_list(hits: list[SearchHit]) -> None:
    with ui.list().props("separator").classes("w-full"):
        for hit in hits:
            with ui.item().classes("q-px-md q-py-sm").mark("search-hit"):
                with ui.item_section().props("avatar"):
                    ui.icon(type_icon(hit.type)).classes("nox-muted")
                with ui.item_section():
                    ui.link(hit.title, _target(hit)).classes("nox-hit-title")
                    if hit.snippet:
                        snippet(hit)


def _target(hit: SearchHit) -> str:
    return safe_next(hit.url)  # the service gives panel paths; a plugin's mistake must not lead off-site


def _pager(results: SearchResults, q: str, chosen: str | None) -> None:
    if results.pages <= 1:
        return
    with (
        ui.row()
        .classes("w-full items-center justify-center gap-4")
        .props("role=navigation aria-label='Pages'")
        .mark("search-pager")
    ):
        if results.page > 1:
            ui.link("← Previous", search_url(q, chosen, min(results.page, results.pages + 1) - 1)).mark(
                "search-previous"
            )
        ui.label(f"Page {results.page} of {results.pages}").classes("text-body2 nox-muted")
        if results.page < results.pages:
            ui.link("Next →", search_url(q, chosen, results.page + 1)).mark("search-next")

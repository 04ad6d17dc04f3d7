"""/search and the frame's search palette through NiceGUI's simulated user, against the real search
service: its index is built by the panel's own child process in the test's data dir, and items created
through the services become findable by the index writer."""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nicegui import ElementFilter, ui
from nicegui.testing import User

from nox_ui.app import Services
from nox_ui.components.search_box import snippet_html
from nox_ui.roles import PANEL
from nox_ui.search import SearchResults
from tests.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, sign_in
from tests.test_ui_no_loop_reads import LoopRead, assert_none, loop_reads  # noqa: F401  (a fixture)

READY_DEADLINE = 120.0  # seconds: the index is built by a child process on a busy 2-core machine
FINDABLE_DEADLINE = 30.0
HOSTILE_NAME = '<script>window.noxXss=1</script><img src=x onerror="window.noxXss=2">Mallory'


async def until(check: Callable[[], Any], deadline: float, what: str) -> None:
    """Poll `check` until it is true; the deadline only catches a hang."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not check():
        assert loop.time() < end, what
        await asyncio.sleep(0.05)


async def index_ready(services: Services) -> None:
    await until(lambda: services.search.status().state == "ready", READY_DEADLINE, "the index was not built")


async def findable(services: Services, q: str, type: str, count: int = 1) -> SearchResults:
    """Wait until the writer has indexed what the test just committed (as the panel sees it)."""
    found: list[SearchResults] = []

    async def look() -> bool:
        found[:] = [await services.search.search(PANEL, q, type=type)]
        return found[0].total >= count

    loop = asyncio.get_running_loop()
    end = loop.time() + FINDABLE_DEADLINE
    while not await look():
        assert loop.time() < end, f"{q!r} never became findable as {type}"
        await asyncio.sleep(0.1)
    return found[0]


def elements(user: User, marker: str) -> list[ui.element]:
    """The page's elements with this marker, in page order (none is not an error, unlike `find`)."""
    assert user.client is not None
    with user.client:
        return sorted(ElementFilter(marker=marker, local_scope=False), key=lambda e: e.id)


def texts(user: User, marker: str) -> list[str]:
    """The texts inside each element with this marker (a hit, a facet, a group heading)."""
    out = []
    for element in elements(user, marker):
        parts = [getattr(e, "text", "") for e in [element, *element.descendants()]]
        out.append(" ".join(p for p in parts if p))
    return sorted(out)


def html_contents(user: User, marker: str) -> list[str]:
    return [
        e.content
        for element in elements(user, marker)
        for e in [element, *element.descendants()]
        if isinstance(e, ui.html)
    ]


@pytest.fixture
async def people(app_user: User, accounts: Services) -> Services:
    """Someone to find, once the index exists: the user, and the audit event of their creation."""
    await index_ready(accounts)
    accounts.users.create(
        PANEL, "zanzibar", "zanzibar passphrase 77", "viewer", display_name="Zanzibar Quill"
    )
    await findable(accounts, "zanzibar", "user")
    await findable(accounts, "zanzibar", "audit")
    return accounts


async def test_the_page_groups_hits_by_type_with_role_filtered_counts(
    app_user: User, people: Services
) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/search?q=zanzibar")
    await app_user.should_see(marker="search-summary")
    groups = texts(app_user, "search-group")
    assert any(g.startswith("Users 1") for g in groups), groups
    assert any(g.startswith("Audit events") for g in groups), groups
    facets = texts(app_user, "search-facet")
    assert "Users 1" in facets, facets
    assert any(f.startswith("All ") for f in facets) and any(f.startswith("Audit events ") for f in facets)
    hits = texts(app_user, "search-hit")
    assert hits.count("Zanzibar Quill") == 1, hits  # once, however often the row was written
    # The hit links to the user; the snippet is the service's HTML, marks included.
    links = [e for hit in elements(app_user, "search-hit") for e in hit.descendants()]
    hrefs = {e.props.get("href") for e in links if isinstance(e, ui.link)}
    user_id = people.users.get_by_username("zanzibar").id
    assert f"/admin/users?user={user_id}" in hrefs
    assert any("<mark>" in c for c in html_contents(app_user, "search-hit"))
    # A typo finds the similar word, and the page says so.
    await app_user.open("/search?q=zanzibr")
    await app_user.should_see("No exact matches: showing similar words.")
    assert any("Zanzibar Quill" in h for h in texts(app_user, "search-hit"))


async def test_a_type_facet_filters_and_the_pager_walks_the_pages(app_user: User, accounts: Services) -> None:
    await index_ready(accounts)
    for number in range(23):
        accounts.audit.record_now(
            actor=PANEL,
            action="test.event",
            outcome="success",
            target_type="thing",
            target_id=str(number),
            target_label=f"quokka {number}",
        )
    await findable(accounts, "quokka", "audit", count=23)
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/search?q=quokka")
    await app_user.should_see(marker="search-facets")
    app_user.find(marker="search-facet-audit").click()
    await app_user.should_see("23 results for “quokka” in Audit events", retries=50)
    assert app_user.back_history[-1] == "/search?q=quokka&type=audit"
    assert texts(app_user, "search-facet")[1:] == ["Audit events 23"]
    assert len(elements(app_user, "search-hit")) == 20
    await app_user.should_see("Page 1 of 2")
    app_user.find(marker="search-next").click()
    await app_user.should_see("Page 2 of 2", retries=50)
    assert app_user.back_history[-1] == "/search?q=quokka&type=audit&page=2"
    assert len(elements(app_user, "search-hit")) == 3
    app_user.find(marker="search-previous").click()
    await app_user.should_see("Page 1 of 2", retries=50)
    assert app_user.back_history[-1] == "/search?q=quokka&type=audit"


async def test_a_viewer_sees_no_users_audit_events_or_notifiers_not_even_counted(
    app_user: User, people: Services
) -> None:
    people.notifiers.create(PANEL, "zanzibar mail", "email", {"to": ["ops@example.org"]})
    await findable(people, "zanzibar", "notifier")
    await sign_in(app_user, "victor", VIEWER_PASSWORD, next_path="/search?q=zanzibar")
    await app_user.should_see("No results for “zanzibar”")
    assert texts(app_user, "search-facet") == ["All 0"]
    assert not elements(app_user, "search-hit")
    # Asking for a type the role may not see is an error, not an empty (or counted) page.
    await app_user.open("/search?q=zanzibar&type=user")
    await app_user.should_see(marker="search-error")
    assert "Unknown type" in texts(app_user, "search-error")[0]
    # The palette runs the same search as the same person.
    await app_user.open("/")
    app_user.find(marker="search-open").click()
    app_user.find(marker="search-input").type("zanzibar")
    await app_user.should_see("No results for “zanzibar”.", retries=50)
    assert not elements(app_user, "search-option")


async def test_an_invalid_search_says_why(app_user: User, accounts: Services) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/search?q=" + "x" * 201)
    await app_user.should_see(marker="search-error")
    (message,) = texts(app_user, "search-error")
    assert "200" in message and message[0].isupper(), message
    await app_user.open("/search?q=disk&page=zero")
    await app_user.should_see("Page must be a whole number, 1 or more.")
    await app_user.open("/")
    app_user.find(marker="search-open").click()
    app_user.find(marker="search-input").type("y" * 201)
    await app_user.should_see(marker="search-error", retries=50)


@pytest.fixture
def held_publish(settings: Any) -> Iterator[Callable[[], None]]:
    """Hold the lock a rebuild takes to publish its build: the panel's first build waits on it, so its
    searches answer "rebuilding" until the test calls the release function this yields."""
    root = Path(settings.data_dir) / "index"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(root / ".swap.lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield lambda: fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


async def test_while_the_index_is_rebuilt_the_page_says_so_and_shows_results_after(
    held_publish: Callable[[], None], app_user: User, accounts: Services
) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/search?q=olga")
    await app_user.should_see(marker="search-rebuilding")
    await app_user.should_see("Search index rebuilding…", retries=50)
    assert accounts.search.status().state == "rebuilding"
    app_user.find(marker="search-open").click()
    app_user.find(marker="search-input").type("olga")
    await until(lambda: len(elements(app_user, "search-rebuilding")) == 2, 10, "the palette says nothing")
    # The build is published: the page loads itself again, with the results.
    held_publish()
    await until(lambda: bool(elements(app_user, "search-hit")), READY_DEADLINE, "the page never came back")
    assert not elements(app_user, "search-rebuilding")
    assert any("olga" in t.lower() for t in texts(app_user, "search-hit"))


async def test_the_palette_shows_grouped_options_and_enter_opens_the_highlighted_one(
    app_user: User, people: Services
) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD)
    app_user.find(marker="search-open").click()
    field = app_user.find(marker="search-input")
    field.type("zanz*")
    await app_user.should_see("Zanzibar Quill", retries=50)
    kinds = [o.props.get("data-type") for o in elements(app_user, "search-option")]
    assert "user" in kinds and "audit" in kinds
    assert len(elements(app_user, "search-all")) == 1
    # Enter sends what the input shows and the index of the option highlighted in the browser.
    position = kinds.index("user")
    user_id = people.users.get_by_username("zanzibar").id
    field.trigger("keydown", {"value": "zanz*", "index": position})
    await until(lambda: app_user.back_history[-1] == f"/admin/users?user={user_id}", 10, "Enter went nowhere")


async def test_enter_before_the_results_arrive_searches_what_was_typed_and_opens_the_first(
    app_user: User, people: Services
) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD)
    app_user.find(marker="search-open").click()
    # The debounced value has not reached the server yet: only the Enter event carries the text.
    app_user.find(marker="search-input").trigger("keydown", {"value": "zanzibar quill", "index": -1})
    await until(lambda: app_user.back_history[-1].startswith("/admin/users?user="), 10, "nothing opened")


async def test_a_hostile_display_name_stays_text(app_user: User, accounts: Services) -> None:
    await index_ready(accounts)
    accounts.users.create(PANEL, "mallory", "mallory passphrase 88", "viewer", display_name=HOSTILE_NAME)
    await findable(accounts, "mallory", "user")
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/search?q=mallory")
    await app_user.should_see(marker="search-hit")
    for content in html_contents(app_user, "search-hit"):
        assert "<script" not in content and "<img" not in content, content
    # The title is a label: Vue sets it as text.
    assert any(HOSTILE_NAME in t for t in texts(app_user, "search-hit"))


def test_snippet_html_lets_only_marks_through() -> None:
    assert snippet_html("a <mark>disk</mark> &amp; more") == "a <mark>disk</mark> &amp; more"
    assert snippet_html('<img src=x onerror="alert(1)"><mark>x</mark>') == (
        '&lt;img src=x onerror="alert(1)"&gt;<mark>x</mark>'
    )
    assert snippet_html("<mark onclick=x>y</mark>") == "&lt;mark onclick=x&gt;y</mark>"
    assert "<script" not in snippet_html("<scr<mark>ipt>")


async def test_searching_reads_nothing_on_the_event_loop(
    app_user: User,
    people: Services,
    loop_reads: list[LoopRead],  # noqa: F811  (the fixture imported above)
) -> None:
    await sign_in(app_user, "admin", ADMIN_PASSWORD, next_path="/search?q=zanzibar")
    await app_user.should_see(marker="search-hit")
    app_user.find(marker="search-facet-user").click()
    await app_user.should_see("1 result for “zanzibar” in Users", retries=50)
    app_user.find(marker="search-open").click()
    app_user.find(marker="search-input").type("zanzibar")
    await app_user.should_see(marker="search-option", retries=50)
    assert_none(loop_reads)

"""Search (issue 8) through `SearchService` on a real SQLite file and the real index in tmp_path, with
the writer running as the supervisor's job and the first build made by the real child process
(`nox-ui search reindex --from-panel`): what a panel that starts does.

Findable within a second: polled for up to 3 s after the change commits (the writer batches ~150 ms).
No timings are asserted; deadlines only catch a hang."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import psutil
import pytest

from nox_ui.app import Services
from nox_ui.config import Settings
from nox_ui.errors import Invalid
from nox_ui.plugins.host import PluginStatus
from nox_ui.roles import PANEL, Principal, Role
from nox_ui.search import TYPES, SearchResults
from nox_ui.search.query import MAX_LENGTH

T = TypeVar("T")
WAIT = 60.0  # the most any test waits for a condition (a first build on a busy machine needs ~2 s)
FINDABLE = 3.0  # "findable within a second", with room for a loaded test machine

# Strings a search box receives from people and scripts: each is answered (200) or refused (422).
HOSTILE = [
    "",
    " ",
    "*",
    "**",
    "a*",
    "*admin",
    "ad*min",
    '"',
    '""',
    '"unbalanced',
    'unbalanced"',
    '"a" "b',
    "AND",
    "OR",
    "NOT",
    "-",
    "+",
    "- + AND OR NOT",
    "admin OR",
    "OR admin",
    "NOT admin",
    "-admin",
    "admin -",
    "--admin",
    "+admin",
    "type:",
    "type:user",
    "type:nonsense",
    "TYPE:USER admin",
    "x" * 5000,
    "a " * 150,
    " ".join(f"w{i}" for i in range(30)),
    "\x00",
    "admin\x00\x1b[31m\x7f",
    "\u200b\u200e\u2028admin",
    "😀 admin",
    "<script>alert(1)</script>",
    "admin' OR '1'='1",
    "../../etc/passwd",
    "(admin)",
    "[a-z]+",
    "admin~2",
    "title:admin",
    "\\",
    "%00",
    "a" * 200,
    "a" * 201,
    "é" * 50,
    "10.0.0.1",
    "10.0.*",
    "a.*",
    '"' + "word " * 12 + '"',
]


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = WAIT, what: str = "") -> T:
    """The first truthy value of `check()`, polled every 50 ms; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    pytest.fail(f"not within {timeout:g} s: {what or check} (last: {last!r})")


async def ready(services: Services) -> None:
    """Until the first build is published and the writer has compared it with the database."""

    async def done() -> bool:
        results = await services.search.search(PANEL, "admin")
        return results.state == "ready" and services.search.writer.caught_up.is_set()

    await eventually(done, what="the index is ready")


def principal(services: Services, username: str) -> Principal:
    user = services.users.get_by_username(username)
    assert user.id is not None
    return Principal(user.id, user.username, Role(user.role))


async def search(services: Services, who: Principal, q: str, **kwargs: object) -> SearchResults:
    return await services.search.search(who, q, **kwargs)  # type: ignore[arg-type]


async def found(services: Services, who: Principal, q: str, kind: str) -> list[str]:
    """The titles of `kind` hits of a search."""
    results = await search(services, who, q)
    return [hit.title for hit in results.hits if hit.type == kind]


@pytest.fixture
async def live(accounts: Services) -> AsyncIterator[Services]:
    """The accounts' services with search running (index built at start by the child process)."""
    accounts.search.start(accounts.supervisor)
    await ready(accounts)
    yield accounts
    await accounts.search.stop(accounts.supervisor)


# -- findable, changed, gone -------------------------------------------------------------------------


async def test_a_new_user_is_findable_at_once_a_changed_one_by_its_new_name_a_deleted_one_not(
    live: Services,
) -> None:
    admin = principal(live, "admin")
    user = await asyncio.to_thread(
        live.users.create,
        PANEL,
        "mallory",
        "a long enough password",
        Role.VIEWER,
        display_name="Mallory Quinn",
    )
    assert user.id is not None

    async def user_hit() -> list[str]:
        return await found(live, admin, "mallory", "user")

    assert await eventually(user_hit, FINDABLE, "the new user") == ["Mallory Quinn"]
    hit = next(h for h in (await search(live, admin, "mallory")).hits if h.type == "user")
    assert hit.url == f"/admin/users?user={user.id}" and hit.id == str(user.id)

    await asyncio.to_thread(live.users.update, PANEL, user.id, display_name="Mallory Zed")

    async def renamed() -> bool:
        return await found(live, admin, "zed", "user") == ["Mallory Zed"] and not await found(
            live, admin, "quinn", "user"
        )

    await eventually(renamed, FINDABLE, "the new display name")

    await asyncio.to_thread(live.users.delete, PANEL, user.id)

    async def gone() -> bool:
        results = await search(live, admin, "mallory")
        return not [h for h in results.hits if h.type == "user"] and "user" not in results.counts

    await eventually(gone, FINDABLE, "the deleted user gone")
    # its audit events stay findable: the log keeps them
    assert await found(live, admin, "mallory", "audit")


async def test_rules_notifiers_and_silences_are_indexed_and_a_deleted_rule_takes_its_document(
    live: Services,
) -> None:
    admin = principal(live, "admin")
    rule = await asyncio.to_thread(
        live.alerts.rules.create,
        PANEL,
        {"name": "Toaster overheating", "metric": "cpu.percent", "threshold": 95, "description": "the lab"},
    )
    await asyncio.to_thread(
        live.notifiers.create, PANEL, "pager duty", "webhook", {"url": "https://hooks.example.org/x"}
    )
    await asyncio.to_thread(
        live.alerts.silences.create,
        PANEL,
        {"alertname": "Toaster"},
        "toaster maintenance",
        duration_seconds=3600,
    )

    async def all_three() -> set[str]:
        kinds = {h.type for h in (await search(live, admin, "toaster")).hits}
        kinds |= {h.type for h in (await search(live, admin, "pager")).hits}
        return kinds if {"rule", "silence", "notifier"} <= kinds else set()

    await eventually(all_three, FINDABLE, "rule, silence and notifier")
    await asyncio.to_thread(live.alerts.rules.delete, PANEL, rule.id)

    async def rule_gone() -> bool:
        return not await found(live, admin, "overheating", "rule")

    await eventually(rule_gone, FINDABLE, "the deleted rule gone")


async def test_audit_events_archived_by_retention_leave_the_index(live: Services, tmp_path: object) -> None:
    admin = principal(live, "admin")
    await asyncio.to_thread(live.users.create, PANEL, "ephemeral", "a long enough password", Role.VIEWER)

    async def indexed() -> list[str]:
        return await found(live, admin, "ephemeral", "audit")

    await eventually(indexed, FINDABLE, "the user.create event")
    from datetime import UTC, datetime, timedelta

    archived = await asyncio.to_thread(
        live.audit.archive, PANEL, datetime.now(UTC) + timedelta(seconds=1), live.config.data_dir / "backups"
    )
    assert archived.count >= 4  # a bulk DELETE: the writer learns only that the table changed

    async def dropped() -> bool:
        return not await found(live, admin, "ephemeral", "audit")

    await eventually(dropped, FINDABLE, "the archived events gone")
    # the archive's own checkpoint event is new, and findable
    assert await eventually(lambda: found(live, admin, "audit.archive", "audit"), FINDABLE)


# -- who sees what ------------------------------------------------------------------------------------


async def test_each_role_sees_only_what_it_may_even_in_the_counts(live: Services) -> None:
    await asyncio.to_thread(
        live.notifiers.create, PANEL, "ops pager", "webhook", {"url": "https://hooks.example.org/x"}
    )
    await asyncio.to_thread(
        live.alerts.rules.create, PANEL, {"name": "ops cpu", "metric": "cpu.percent", "threshold": 99}
    )
    await asyncio.to_thread(live.users.create, PANEL, "opsbot", "a long enough password", Role.VIEWER)
    admin, olga, victor = (principal(live, name) for name in ("admin", "olga", "victor"))

    async def admin_sees_all() -> dict[str, int]:
        counts = (await search(live, admin, "ops*")).counts
        return counts if {"user", "audit", "notifier", "rule"} <= set(counts) else {}

    await eventually(admin_sees_all, FINDABLE, "admin sees every kind")
    operator = await search(live, olga, "ops*")
    assert {"notifier", "rule"} <= set(operator.counts)
    assert not {"user", "audit", "setting"} & set(operator.counts)
    assert {h.type for h in operator.hits} <= {"notifier", "rule", "screen", "process"}
    viewer = await search(live, victor, "ops*")
    assert set(viewer.counts) <= {"rule", "screen", "process", "alert", "silence"}
    assert "rule" in viewer.counts and viewer.total == sum(viewer.counts.values())
    assert {h.type for h in viewer.hits} <= {"rule", "screen", "process"}
    # the user's own name finds nothing about users for a viewer, and says nothing about them
    for q in ("opsbot", "victor", "admin", "user.create"):
        for who in (victor, olga):
            results = await search(live, who, q)
            assert not {"user", "audit"} & ({h.type for h in results.hits} | set(results.counts)), (q, who)
    # screens need their page's role: a viewer is not offered the admin screens
    screens = await search(live, victor, "audit log")
    assert "/admin/audit" not in [h.url for h in screens.hits]
    assert "/admin/audit" in [h.url for h in (await search(live, admin, "audit log")).hits]
    # asking for a type one may not see is refused like an unknown type
    for forbidden in ("type:user", "type:audit", "type:notifier", "type:setting"):
        with pytest.raises(Invalid):
            await search(live, victor, f"ops {forbidden}")
    with pytest.raises(Invalid):
        await search(live, victor, "ops", type="user")
    assert (await search(live, olga, "ops", type="notifier")).total >= 1


# -- the language -------------------------------------------------------------------------------------


async def test_words_prefixes_phrases_types_exclusions_fuzzy_and_pages(live: Services) -> None:
    admin = principal(live, "admin")
    for n in range(25):
        await asyncio.to_thread(
            live.alerts.rules.create,
            PANEL,
            {
                "name": f"Zebra crossing {n}",
                "metric": "cpu.percent",
                "threshold": 90,
                "description": "striped",
            },
        )
    await asyncio.to_thread(
        live.alerts.rules.create,
        PANEL,
        {"name": "Crossing zebra", "metric": "cpu.percent", "threshold": 91, "description": "backwards"},
    )

    async def all_rules() -> int:
        return (await search(live, admin, "zebra")).counts.get("rule", 0) == 26

    await eventually(all_rules, FINDABLE, "26 rules")
    words = await search(live, admin, "zebra crossing")
    assert words.counts["rule"] == 26 and not words.fuzzy
    phrase = await search(live, admin, '"zebra crossing"')
    assert phrase.counts["rule"] == 25 and "Crossing zebra" not in [h.title for h in phrase.hits]
    prefix = await search(live, admin, "zeb* type:rule")
    assert prefix.counts == {"rule": 26} and prefix.type == "rule"
    either = await search(live, admin, "backwards OR striped", type="rule")
    assert either.total == 26
    excluded = await search(live, admin, "zebra -striped")
    assert [h.title for h in excluded.hits if h.type == "rule"] == ["Crossing zebra"]
    # pages: 26 rules, 10 per page (plus the audit events of their creation, after them)
    first = await search(live, admin, "zebra", type="rule", per_page=10)
    third = await search(live, admin, "zebra", type="rule", per_page=10, page=3)
    assert (first.pages, len(first.hits), len(third.hits)) == (3, 10, 6)
    seen = {
        h.id
        for p in (1, 2, 3)
        for h in (await search(live, admin, "zebra", type="rule", per_page=10, page=p)).hits
    }
    assert len(seen) == 26
    assert (await search(live, admin, "zebra", type="rule", per_page=10, page=4)).hits == []
    # a typo: nothing exact, close matches said to be so
    typo = await search(live, admin, "zebar")
    assert typo.fuzzy and typo.counts.get("rule") == 26 and typo.message
    assert not (await search(live, admin, "zebra")).fuzzy
    # snippets mark what matched
    hit = next(h for h in phrase.hits if h.type == "rule")
    assert "<mark>" in hit.snippet or "<mark>" in hit.title or hit.snippet


async def test_a_display_name_with_markup_comes_back_escaped(live: Services) -> None:
    admin = principal(live, "admin")
    await asyncio.to_thread(
        live.users.create,
        PANEL,
        "scripter",
        "a long enough password",
        Role.VIEWER,
        display_name='<script>alert("x")</script> <img src=x onerror=alert(1)>',
    )

    async def hits() -> list[object]:
        results = await search(live, admin, "scripter")
        return [h for h in results.hits if h.type in {"user", "audit"}]

    for hit in await eventually(hits, FINDABLE, "the user"):
        assert "<script" not in hit.snippet and "<img" not in hit.snippet  # type: ignore[attr-defined]
        assert "&lt;script&gt;" in hit.snippet  # type: ignore[attr-defined]
        assert hit.snippet.replace("<mark>", "").replace("</mark>", "").count("<") == 0  # type: ignore[attr-defined]
    # a search for the markup itself finds it, and the match is marked inside the escaped text
    results = await search(live, admin, "script")
    user_hit = next(h for h in results.hits if h.type == "user")
    assert "&lt;<mark>script</mark>&gt;" in user_hit.snippet


async def test_settings_screens_and_processes_are_found(live: Services) -> None:
    admin = principal(live, "admin")
    setting = await search(live, admin, "retention")
    assert any(h.type == "setting" and h.url == "/admin/settings#audit_retention_days" for h in setting.hits)
    screens = await search(live, admin, "dashboard", type="screen")
    assert [h.url for h in screens.hits] == ["/"]
    me = psutil.Process().name()
    processes = await search(live, admin, me, type="process")
    assert processes.hits and processes.hits[0].title == me
    assert processes.hits[0].url.startswith("/processes?q=") and "pid" in processes.hits[0].snippet
    victor = principal(live, "victor")
    assert (await search(live, victor, me)).counts.get("process")


async def test_hostile_strings_are_answered_or_refused_never_an_error(live: Services) -> None:
    victor, admin = principal(live, "victor"), principal(live, "admin")
    answered = refused = 0
    for text in HOSTILE:
        for who in (admin, victor):
            try:
                results = await asyncio.wait_for(search(live, who, text), 30)
            except Invalid as exc:
                assert exc.message and len(exc.message) < 300, text
                refused += 1
                continue
            assert results.state in {"ready", "rebuilding", "failed"}
            assert all(h.type in live.search.types() for h in results.hits)
            answered += 1
    assert answered and refused
    with pytest.raises(Invalid, match=str(MAX_LENGTH)):
        await search(live, admin, "x" * (MAX_LENGTH + 1))
    with pytest.raises(Invalid, match="at least 2 characters"):
        await search(live, admin, "*")
    for page, per_page in ((0, 20), (51, 20), (1, 0), (1, 101)):
        with pytest.raises(Invalid):
            await search(live, admin, "admin", page=page, per_page=per_page)
    assert set(TYPES) <= set(live.search.types())


# -- plugins -------------------------------------------------------------------------------------------


async def test_plugin_documents_and_menu_entries_are_found_by_role_and_leave_with_the_plugin(
    live: Services, settings: Settings
) -> None:
    from tests.test_plugin_isolation import header, write_plugin

    source = """
        from nox_ui.plugin import NavItem, hookimpl

        @hookimpl
        def nav_items(ctx):
            return [NavItem("Battery room", "/plugins/ups-search/")]

        @hookimpl
        def search_documents(ctx):
            return [
                {"type": "ups", "id": "main", "title": "Main UPS", "text": "APC Smart-UPS in rack 2",
                 "url": "/plugins/ups-search/"},
                {"type": "ups", "id": 2, "title": "Spare UPS", "text": "the spare one in rack 2",
                 "url": "/plugins/ups-search/spare", "role": "admin"},
            ]
        """
    write_plugin(settings, "ups-search", header("ups-search") + textwrap.dedent(source))
    garbage = 'from nox_ui.plugin import hookimpl\n\n@hookimpl\ndef search_documents(ctx):\n    return [{"type": "user", "id": 1, "title": "x", "url": "/"}]\n'
    write_plugin(settings, "ups-garbage", header("ups-garbage") + garbage)
    admin, victor = principal(live, "admin"), principal(live, "victor")
    try:
        assert (await live.plugins.enable(PANEL, "ups-search")).status == PluginStatus.ENABLED

        async def viewer_sees_one() -> SearchResults | None:
            results = await search(live, victor, "rack")
            return results if results.counts.get("ups") == 1 else None

        results = await eventually(viewer_sees_one, FINDABLE, "the plugin's documents")
        assert [(h.title, h.url) for h in results.hits if h.type == "ups"] == [
            ("Main UPS", "/plugins/ups-search/")
        ]
        assert (await search(live, admin, "rack type:ups")).counts == {"ups": 2}
        assert "Battery room" in await found(live, victor, "battery", "screen")
        assert live.search.types(victor)["ups"] == "Ups"
        failed = await live.plugins.enable(PANEL, "ups-garbage")
        assert failed.status == PluginStatus.FAILED and "search_documents" in failed.reason
        await live.plugins.disable(PANEL, "ups-search")

        async def gone() -> bool:
            results = await search(live, admin, "rack")
            return "ups" not in results.counts and not await found(live, admin, "battery", "screen")

        await eventually(gone, FINDABLE, "the plugin's documents gone")
        with pytest.raises(Invalid):
            await search(live, admin, "rack type:ups")
    finally:
        await live.plugins.stop()


async def test_alerts_written_by_the_alert_store_are_found_and_follow_their_state(live: Services) -> None:
    from datetime import UTC, datetime

    from nox_ui.alerts.store import FiredEpisode, SqlAlertStore

    victor = principal(live, "victor")
    rule = await asyncio.to_thread(
        live.alerts.rules.create, PANEL, {"name": "Kettle boiling", "metric": "cpu.percent", "threshold": 80}
    )
    now = datetime.now(UTC)
    store = SqlAlertStore(live.db)  # the engine's own writes: an insert, then bulk UPDATE statements
    episode = FiredEpisode(
        rule.id, 'cpu.percent{cpu="3"}', {"cpu": "3"}, "warning", 93.0, 80.0, now, now, now
    )
    alert_id = await asyncio.to_thread(store.insert_firing, episode)

    async def titled(title: str) -> bool:
        return title in await found(live, victor, "kettle", "alert")

    await eventually(lambda: titled("Kettle boiling: firing"), FINDABLE, "the firing alert")
    hit = next(h for h in (await search(live, victor, "kettle")).hits if h.type == "alert")
    assert hit.url == f"/alerts?id={alert_id}"
    await asyncio.to_thread(store.resolve, alert_id, datetime.now(UTC), 40.0)
    await eventually(lambda: titled("Kettle boiling: resolved"), FINDABLE, "the resolved alert")

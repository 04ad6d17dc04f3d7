"""What the search index holds: one `Document` per user, audit event, alert rule, alert, silence,
notifier, setting, screen and plugin item, each built by exactly one function from the committed row
(or the in-memory registry), shared by the full rebuild and the live writer. Pure Python: no engine.

Each document belongs to a *group* that is resynced as a whole when needed (its type, or "plugin" for
every plugin's documents) and carries the least role that may see it; search filters on that role at
query time. A group's *fingerprint* is the hash of its documents' keys and digests: equal fingerprints
in the index's meta file and from the database mean the group needs nothing, decided without the engine.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, func, select

from nox_ui.models import Alert, AlertRule, AuditEvent, Notifier, Silence, User
from nox_ui.plugins import builtin
from nox_ui.plugins.spec import NavItem
from nox_ui.roles import Role
from nox_ui.runtime_settings import registry

# type key -> label, in the order the facets show them. Plugin types are added per plugin (see
# `SearchService.types`); processes are matched live, never indexed.
TYPES: dict[str, str] = {
    "screen": "Screens",
    "setting": "Settings",
    "rule": "Alert rules",
    "alert": "Alerts",
    "silence": "Silences",
    "notifier": "Notifiers",
    "process": "Processes",
    "user": "Users",
    "audit": "Audit events",
}
# The least role that sees a type at all (its facet, its `type:`); each document also carries its own.
TYPE_ROLES: dict[str, Role] = {"user": Role.ADMIN, "audit": Role.ADMIN, "setting": Role.ADMIN} | {
    "notifier": Role.OPERATOR
}
AUDIT = "audit"
PLUGIN_GROUP = "plugin"
LIVE_TYPES = frozenset({"process"})
# Groups read from the database and compared by fingerprint ("audit" is compared by its id range).
DB_GROUPS = ("user", "rule", "alert", "silence", "notifier")
MEMORY_GROUPS = ("setting", "screen", PLUGIN_GROUP)
# The table each database type is read from, and what a commit to that table makes stale.
TABLE_GROUPS: dict[str, tuple[str, ...]] = {
    "users": ("user",),
    "audit_events": (AUDIT,),
    "alert_rules": ("rule", "alert"),  # an alert's title holds its rule's name; a deleted rule cascades
    "alerts": ("alert",),
    "silences": ("silence",),
    "notifiers": ("notifier",),
}
TABLE_OF = {"user": "users", AUDIT: "audit_events", "rule": "alert_rules", "alert": "alerts"} | {
    "silence": "silences",
    "notifier": "notifiers",
}
TEXT_LIMIT = 4000  # characters of a document's text (snippets come from it)
PLUGIN_LIMIT = 10_000  # documents per plugin
_SLUG = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Document:
    type: str
    id: str
    title: str
    text: str
    url: str
    role: Role
    group: str = ""  # defaults to the type
    plugin: str = ""  # the plugin that handed it over
    seq: int = 0  # audit events: the event id

    @property
    def key(self) -> str:
        """Unique in the index: a plugin's documents are scoped by the plugin's name."""
        if self.type == AUDIT:
            return audit_key(self.seq)
        return f"{self.type}:{self.plugin}:{self.id}" if self.plugin else f"{self.type}:{self.id}"

    @property
    def group_key(self) -> str:
        return self.group or self.type

    @property
    def digest(self) -> str:
        """Changes whenever anything search shows or filters on changes."""
        fields = (self.type, self.id, self.title, self.text, self.url, self.role.value, self.plugin)
        return hashlib.sha1("\x1f".join(fields).encode(), usedforsecurity=False).hexdigest()


def audit_key(event_id: int) -> str:
    """Zero-padded, so the keys sort as the ids do and retention deletes one key range."""
    return f"{AUDIT}:{event_id:012d}"


def fingerprint(pairs: Iterable[tuple[str, str]]) -> str:
    """Of a group: its (key, digest) pairs in key order; the same for the database and the index."""
    digest = hashlib.sha256()
    for key, doc_digest in sorted(pairs):
        digest.update(f"{key}\x1f{doc_digest}\n".encode())
    return digest.hexdigest()


def fingerprint_of(documents: Iterable[Document]) -> str:
    return fingerprint((d.key, d.digest) for d in documents)


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT]


def _lines(*parts: str) -> str:
    return _clip(" · ".join(part for part in parts if part))


# -- one function per type: the committed row -> its document ----------------------------------------


def user_document(user: User) -> Document:
    status = "disabled" if user.disabled else "active"
    return Document(
        type="user",
        id=str(user.id),
        title=user.display_name or user.username,
        text=_lines(user.username, user.display_name, user.email, f"role {user.role}", status),
        url=f"/admin/users?user={user.id}",
        role=Role.ADMIN,
    )


def _details_text(details: str) -> str:
    """The values of an event's details (already redacted by the audit log), flattened to words."""
    try:
        value: Any = json.loads(details)
    except ValueError:
        return details
    words: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, Mapping):
            for key, inner in item.items():
                words.append(str(key))
                walk(inner)
        elif isinstance(item, list):
            for inner in item:
                walk(inner)
        elif item is not None:
            words.append(str(item))

    walk(value)
    return " ".join(words)


def audit_document(event: AuditEvent) -> Document:
    target = " ".join(part for part in (event.target_type, event.target_id, event.target_label) if part)
    when = event.ts.strftime("%Y-%m-%d %H:%M UTC") if event.ts else ""
    return Document(
        type=AUDIT,
        id=str(event.id),
        title=f"{event.action} by {event.actor_name}",
        text=_lines(
            when,
            f"outcome {event.outcome}",
            f"target {target}" if target else "",
            f"from {event.source_ip}" if event.source_ip else "",
            _details_text(event.details),
        ),
        url=f"/admin/audit?id={event.id}",
        role=Role.ADMIN,
        seq=event.id or 0,
    )


def rule_document(rule: AlertRule) -> Document:
    condition = f"{rule.metric} {rule.op} {rule.threshold:g}" if rule.kind == "threshold" else rule.metric
    return Document(
        type="rule",
        id=str(rule.id),
        title=rule.name,
        text=_lines(
            condition,
            f"{rule.kind} rule",
            rule.severity,
            "enabled" if rule.enabled else "disabled",
            rule.description,
        ),
        url=f"/alerts?tab=rules&rule={rule.id}",
        role=Role.VIEWER,
    )


def alert_document(alert: Alert, rule_name: str) -> Document:
    labels = " ".join(f"{k}={v}" for k, v in sorted((alert.labels or {}).items()))
    acked = f"acknowledged by {alert.acked_by} {alert.ack_comment}".strip() if alert.acked_by else ""
    return Document(
        type="alert",
        id=str(alert.id),
        title=f"{rule_name}: {alert.state}",
        text=_lines(alert.series, labels, alert.severity, acked),
        url=f"/alerts?id={alert.id}",
        role=Role.VIEWER,
    )


def silence_document(silence: Silence) -> Document:
    matchers = " ".join(f"{k}={v}" for k, v in sorted((silence.matchers or {}).items()))
    window = f"{silence.starts_at:%Y-%m-%d %H:%M} to {silence.ends_at:%Y-%m-%d %H:%M} UTC"
    return Document(
        type="silence",
        id=str(silence.id),
        title=f"Silence {matchers}" if matchers else "Silence",
        text=_lines(silence.comment, f"by {silence.created_by}", window),
        url=f"/alerts?tab=silences&silence={silence.id}",
        role=Role.VIEWER,
    )


def notifier_document(notifier: Notifier) -> Document:
    """Name and kind only: a notifier's configuration holds addresses and secrets."""
    return Document(
        type="notifier",
        id=str(notifier.id),
        title=notifier.name,
        text=f"{notifier.kind} notifier",
        url=f"/alerts?tab=notifiers&notifier={notifier.id}",
        role=Role.OPERATOR,
    )


def setting_label(key: str) -> str:
    """As the settings page names it."""
    return key.replace("_", " ").capitalize().replace("Smtp", "SMTP").replace("Api", "API")


def setting_documents() -> list[Document]:
    return [
        Document(
            type="setting",
            id=info.key,
            title=setting_label(info.key),
            text=_lines(info.key, info.description, info.group),
            url=f"/admin/settings#{info.key}",
            role=Role.ADMIN,
        )
        for info in registry().values()
    ]


# Screens outside the menu (the menu's come from the nav_items hook, the panel's own and plugins').
EXTRA_SCREENS = (
    NavItem("Profile", "/profile", icon="person", role=Role.VIEWER),
    NavItem("Search", "/search", icon="search", role=Role.VIEWER),
)
_SCREEN_WORDS = {
    "/": "live dashboard cpu memory disk network",
    "/history": "metric history charts",
    "/processes": "process list signal kill",
    "/alerts": "alert rules silences notifiers",
    "/admin/users": "accounts roles passwords",
    "/admin/settings": "runtime settings configuration",
    "/admin/plugins": "extensions",
    "/admin/audit": "audit log events",
    "/profile": "password two-factor 2fa tokens sessions",
    "/search": "find",
}


def screen_documents(plugin_nav: Iterable[NavItem] = ()) -> list[Document]:
    """The panel's screens and menu entries, each with the role its page needs; plugin entries too."""
    found: dict[str, Document] = {}
    for item in [*builtin.nav_items(), *EXTRA_SCREENS, *plugin_nav]:
        role = item.role if isinstance(item.role, Role) else Role.parse(str(item.role))
        found.setdefault(
            item.path,
            Document(
                type="screen",
                id=item.path,
                title=item.label,
                text=_lines("screen", item.path, _SCREEN_WORDS.get(item.path, "")),
                url=item.path,
                role=role,
            ),
        )
    return list(found.values())


def memory_groups(
    plugin_nav: Iterable[NavItem] = (), plugin_docs: Iterable[Document] = ()
) -> dict[str, list[Document]]:
    """The groups that live in memory, not in the database: settings, screens, plugin documents. The
    rebuild (a process without plugins) passes none; the panel passes its plugins' menu and documents."""
    return {
        "setting": setting_documents(),
        "screen": screen_documents(plugin_nav),
        PLUGIN_GROUP: list(plugin_docs),
    }


def plugin_documents(plugin: str, value: Any) -> list[Document]:
    """What a plugin's `search_documents` hook returned, checked: a list of dicts with type, id, title,
    text and url (a panel path), and optionally role. Raises ValueError saying what is wrong."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValueError(f"search_documents returned {type(value).__name__}; expected a list of dicts")
    if len(value) > PLUGIN_LIMIT:
        raise ValueError(f"search_documents returned {len(value)} documents; at most {PLUGIN_LIMIT}")
    documents: dict[str, Document] = {}
    for number, item in enumerate(value):
        where = f"search_documents item {number}"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where} is a {type(item).__name__}, not a dict")
        unknown = set(item) - {"type", "id", "title", "text", "url", "role"}
        if unknown:
            raise ValueError(f"{where} has unknown keys: {', '.join(sorted(map(str, unknown)))}")
        kind = item.get("type")
        if not isinstance(kind, str) or not _SLUG.match(kind) or kind in TYPES:
            raise ValueError(
                f"{where}: type {kind!r} must be a lowercase name of up to 32 characters that is not "
                f"one of the panel's ({', '.join(TYPES)})"
            )
        doc_id, title = item.get("id"), item.get("title")
        text, url = item.get("text", ""), item.get("url")
        if not isinstance(doc_id, str | int) or isinstance(doc_id, bool) or not 0 < len(str(doc_id)) <= 128:
            raise ValueError(f"{where}: id must be a string or number of 1 to 128 characters")
        if not isinstance(title, str) or not title.strip() or len(title) > 200:
            raise ValueError(f"{where}: title must be a string of 1 to 200 characters")
        if not isinstance(text, str):
            raise ValueError(f"{where}: text must be a string")
        if not isinstance(url, str) or not url.startswith("/") or url.startswith("//") or "\\" in url:
            raise ValueError(f"{where}: url must be a panel path starting with '/'")
        try:
            role = Role.parse(str(item.get("role", Role.VIEWER.value)))
        except Exception as exc:
            raise ValueError(f"{where}: {exc}") from None
        doc = Document(
            type=kind,
            id=str(doc_id),
            title=title.strip(),
            text=_clip(text),
            url=url,
            role=role,
            group=PLUGIN_GROUP,
            plugin=plugin,
        )
        documents[doc.key] = doc
    return list(documents.values())


# -- reading them from the database --------------------------------------------------------------------


def _rule_names(session: Session, rule_ids: Iterable[int]) -> dict[int, str]:
    wanted = set(rule_ids)
    if not wanted:
        return {}
    rows = session.exec(select(AlertRule.id, AlertRule.name).where(col(AlertRule.id).in_(wanted)))
    return {int(rule_id): name for rule_id, name in rows if rule_id is not None}


def _alert_documents(session: Session, alerts: list[Alert]) -> list[Document]:
    names = _rule_names(session, (a.rule_id for a in alerts))
    return [alert_document(a, names.get(a.rule_id, f"rule {a.rule_id}")) for a in alerts]


_SIMPLE: dict[str, tuple[type[Any], Callable[[Any], Document]]] = {
    "user": (User, user_document),
    "rule": (AlertRule, rule_document),
    "silence": (Silence, silence_document),
    "notifier": (Notifier, notifier_document),
    AUDIT: (AuditEvent, audit_document),
}


def load(session: Session, group: str, ids: Iterable[str]) -> dict[str, Document | None]:
    """The documents of these rows of a database type as committed now; None for a row that is gone."""
    numbers = sorted({int(i) for i in ids if str(i).isdigit()})
    found: dict[str, Document | None] = {str(i): None for i in numbers}
    for start in range(0, len(numbers), 500):
        chunk = numbers[start : start + 500]
        if group == "alert":
            alerts = list(session.exec(select(Alert).where(col(Alert.id).in_(chunk))))
            for doc in _alert_documents(session, alerts):
                found[doc.id] = doc
            continue
        model, build = _SIMPLE[group]
        for row in session.exec(select(model).where(col(model.id).in_(chunk))):
            doc = build(row)
            found[doc.id] = doc
    return found


def load_group(session: Session, group: str) -> list[Document]:
    """Every document of a small database type (not audit: see `audit_batches`)."""
    if group == "alert":
        return _alert_documents(session, list(session.exec(select(Alert).order_by(col(Alert.id)))))
    model, build = _SIMPLE[group]
    return [build(row) for row in session.exec(select(model).order_by(col(model.id)))]


def audit_range(session: Session) -> tuple[int, int, int]:
    """(lowest id, highest id, count) of the audit events stored now; (0, 0, 0) when there are none."""
    low, high, count = session.exec(
        select(func.min(AuditEvent.id), func.max(AuditEvent.id), func.count(col(AuditEvent.id)))
    ).one()
    return int(low or 0), int(high or 0), int(count or 0)


def audit_batches(
    session: Session, *, after: int, through: int, size: int = 2000
) -> Iterator[list[Document]]:
    """Audit events with after < id <= through, in id order, `size` at a time (memory stays flat)."""
    last = after
    while last < through:
        rows = list(
            session.exec(
                select(AuditEvent)
                .where(col(AuditEvent.id) > last, col(AuditEvent.id) <= through)
                .order_by(col(AuditEvent.id))
                .limit(size)
            )
        )
        if not rows:
            return
        last = int(rows[-1].id or last)
        yield [audit_document(row) for row in rows]

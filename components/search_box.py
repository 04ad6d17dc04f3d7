"""The frame's search: a header button and the palette it opens (Ctrl+K, or `/` outside a text field).

The palette searches as you type (Quasar's input debounce, so one search per pause rather than per key),
shows the hits grouped by type with the service's highlighted snippets, and is driven from the keyboard:
arrow keys move the highlighted option in the browser (no round trip, and the server never rewrites the
input while someone types in it), Enter sends the text as typed with the highlighted option's index, Esc
closes (Quasar's dialog). The last option always leads to /search with the same words.

What the /search page shares with it lives here too: type labels and icons, the snippet HTML, the URL
of a search, the grouping of hits and the state notices (index rebuilding, similar words)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode

from nicegui import ui
from nicegui.events import GenericEventArguments, ValueChangeEventArguments

from nox_ui.components.session import SessionGuard
from nox_ui.errors import NoxError
from nox_ui.roles import Role
from nox_ui.search import TYPES, SearchHit, SearchResults
from nox_ui.web import safe_next

SEARCH_PATH = "/search"
DEBOUNCE_MS = 200
PALETTE_PER_PAGE = 8
TRIGGER_CLASS = "nox-search-trigger"

TYPE_ICONS = {
    "user": "person",
    "audit": "fact_check",
    "rule": "rule",
    "alert": "notifications_active",
    "silence": "notifications_off",
    "notifier": "campaign",
    "setting": "tune",
    "screen": "web",
    "process": "memory",
}
DEFAULT_ICON = "extension"  # a plugin's own type

_CSS = f"""
.{TRIGGER_CLASS} {{ background: rgba(255, 255, 255, .10); border: 1px solid rgba(255, 255, 255, .22);
  border-radius: 8px; min-width: 2.5rem; }}
@media (min-width: 600px) {{ .{TRIGGER_CLASS} {{ min-width: 15rem; }} }}
.nox-kbd {{ font: 600 .7rem/1 ui-monospace, monospace; padding: .2rem .35rem; border-radius: 4px;
  border: 1px solid currentColor; opacity: .75; }}
.nox-search-panel {{ width: min(680px, 94vw); max-width: 94vw !important; }}
.nox-search-results {{ max-height: min(60vh, 520px); overflow-y: auto; }}
.nox-search-group {{ font-size: .72rem; font-weight: 600; letter-spacing: .04em; text-transform: uppercase;
  padding: .6rem .75rem .2rem; }}
.nox-search-option {{ display: flex; gap: .75rem; align-items: flex-start; padding: .5rem .75rem;
  border-radius: 6px; cursor: pointer; align-self: stretch; }}
.nox-search-option:hover {{ background: rgba(148, 163, 184, .14); }}
.nox-search-option[aria-selected="true"] {{ background: rgba(37, 99, 235, .14);
  box-shadow: inset 3px 0 0 #2563eb; }}
.body--dark .nox-search-option[aria-selected="true"] {{ background: rgba(96, 165, 250, .18);
  box-shadow: inset 3px 0 0 #60a5fa; }}
.nox-snippet {{ font-size: .8rem; line-height: 1.35; overflow-wrap: anywhere; }}
.nox-snippet mark {{ background: #fde68a; color: #1c1917; border-radius: 2px; padding: 0 1px; }}
.body--dark .nox-snippet mark {{ background: #a16207; color: #fefce8; }}
.nox-search-title {{ font-weight: 500; overflow-wrap: anywhere; }}
.body--dark .nox-search-error {{ color: #fca5a5; }}  /* Quasar's negative is too dark on slate */
"""

# Ctrl+K (Cmd+K on a Mac) anywhere, or `/` when focus is not in a field, presses the header's button.
_SHORTCUT_JS = f"""
(() => {{
  const typing = (el) => !!(el && el.closest &&
    el.closest('input, textarea, select, [contenteditable=""], [contenteditable="true"]'));
  document.addEventListener('keydown', (e) => {{
    if (e.isComposing || e.altKey) return;
    const ctrlK = (e.ctrlKey || e.metaKey) && !e.shiftKey && e.key.toLowerCase() === 'k';
    const slash = e.key === '/' && !e.ctrlKey && !e.metaKey && !typing(e.target);
    if (!ctrlK && !slash) return;
    const trigger = document.querySelector('.{TRIGGER_CLASS}');
    if (!trigger) return;
    e.preventDefault();
    trigger.click();
  }});
}})();
"""

# The palette input's keys. Arrows move `aria-selected` among the options, in the browser; Enter sends
# what the input shows (the debounced value may lag behind) and the highlighted option's index.
_KEYS_JS = """(e) => {
  if (e.isComposing) return;
  const box = document.getElementById('%(listbox)s');
  const options = box ? [...box.querySelectorAll('[role=option]')] : [];
  const current = options.findIndex((o) => o.getAttribute('aria-selected') === 'true');
  if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
    e.preventDefault();
    if (!options.length) return;
    const step = e.key === 'ArrowDown' ? 1 : -1;
    const next = current < 0 ? (step > 0 ? 0 : options.length - 1)
                             : (current + step + options.length) %% options.length;
    options.forEach((o, i) => o.setAttribute('aria-selected', String(i === next)));
    e.target.setAttribute('aria-activedescendant', options[next].id);
    options[next].scrollIntoView({block: 'nearest'});
  } else if (e.key === 'Enter') {
    e.preventDefault();
    emit({value: e.target.value, index: current});
  }
}"""


def search_url(q: str, type: str | None = None, page: int = 1) -> str:
    """The bookmarkable address of a search: /search?q=..&type=..&page=.. (defaults left out)."""
    params: dict[str, str] = {"q": q}
    if type:
        params["type"] = type
    if page > 1:
        params["page"] = str(page)
    return f"{SEARCH_PATH}?{urlencode(params)}"


def type_label(key: str) -> str:
    return TYPES.get(key) or key.replace("_", " ").replace("-", " ").capitalize()


def type_icon(key: str) -> str:
    return TYPE_ICONS.get(key, DEFAULT_ICON)


def snippet_html(snippet: str) -> str:
    """The service's snippet (escaped text with <mark> around matches), narrowed to exactly that: any `<`
    or `>` outside a <mark> or </mark> tag is escaped, so nothing else can ever become markup."""
    out: list[str] = []
    for i, opened in enumerate(snippet.split("<mark>")):
        if i:
            out.append("<mark>")
        for j, part in enumerate(opened.split("</mark>")):
            if j:
                out.append("</mark>")
            out.append(part.replace("<", "&lt;").replace(">", "&gt;"))
    return "".join(out)


def snippet(hit: SearchHit) -> ui.html:
    return ui.html(hit.snippet, sanitize=snippet_html).classes("nox-snippet nox-muted")


def grouped(hits: Iterable[SearchHit]) -> list[tuple[str, list[SearchHit]]]:
    """Hits by type, the groups in the order of their best hit (the service ranks), hits kept in order."""
    groups: dict[str, list[SearchHit]] = {}
    for hit in hits:
        groups.setdefault(hit.type, []).append(hit)
    return list(groups.items())


def sentence(message: str) -> str:
    """The service's messages are lower-case clauses; on screen they start a sentence."""
    return message[:1].upper() + message[1:]


def notices(results: SearchResults) -> None:
    """What the result's state says beyond the hits: a rebuilding index (with its progress), a failed
    one, the hint that similar words were searched for, and any other word from the service."""
    if results.state == "rebuilding":
        with (
            ui.column()
            .classes("w-full gap-1")
            .props("role=status aria-live=polite")
            .mark("search-rebuilding")
        ):
            progress = f" {results.progress:.0%}" if results.progress is not None else ""
            with ui.row().classes("items-center gap-2"):
                ui.spinner(size="1rem")
                ui.label(f"Search index rebuilding…{progress}").classes("text-body2")
            if results.progress is not None:
                ui.linear_progress(value=results.progress, show_value=False).props("rounded")
            ui.label("Results may be incomplete until it is done.").classes("text-caption nox-muted")
    elif results.state == "failed":
        ui.label(sentence(results.message or "the search index could not be read")).classes(
            "text-negative nox-search-error text-body2"
        ).props("role=alert").mark("search-failed")
    if results.fuzzy:
        with ui.row().classes("items-center gap-1 text-body2 nox-muted").mark("search-fuzzy"):
            ui.icon("spellcheck", size="1rem")
            ui.label("No exact matches: showing similar words.")
    elif results.state == "ready" and results.message:
        ui.label(sentence(results.message)).classes("text-body2 nox-muted").mark("search-message")


async def run_search(
    guard: SessionGuard, q: str, *, type: str | None = None, page: int = 1, per_page: int = 20
) -> SearchResults | str | None:
    """Search as the page's principal, re-checked now: the results, the message of an `Invalid` (or any
    typed error) to show, or None when the session has ended (the guard has said so)."""
    principal = await guard.allow(Role.VIEWER)
    if principal is None:
        return None
    try:
        return await guard.services.search.search(principal, q, type=type, page=page, per_page=per_page)
    except NoxError as exc:
        return sentence(exc.message)


class SearchPalette:
    """The dialog: a labelled input (a combobox) over a listbox of results."""

    def __init__(self, guard: SessionGuard) -> None:
        self.guard = guard
        self._serial = 0  # searches answer out of order; only the newest one is drawn
        self._shown = ""  # the query whose options are on screen
        self._targets: list[str] = []  # the option URLs, in the order of the options
        with (
            ui.dialog().props("position=top") as self.dialog,
            ui.card().props("flat bordered").classes("nox-card nox-search-panel q-pa-none gap-0 q-mt-xl"),
        ):
            with ui.row().classes("w-full items-center no-wrap q-pa-sm gap-2"):
                self.input = (
                    ui.input("Search", placeholder="Alerts, rules, screens, processes…")
                    .props(
                        f"outlined dense autofocus debounce={DEBOUNCE_MS} autocomplete=off spellcheck=false"
                    )
                    .classes("col")
                    .mark("search-input")
                )
                with self.input.add_slot("prepend"):
                    ui.icon("search")
                ui.button(icon="close", on_click=self.dialog.close).props(
                    "flat round dense aria-label='Close search'"
                )
            ui.separator()
            self.listbox = (
                ui.column()
                .classes("w-full gap-0 q-pa-xs nox-search-results")
                .props("role=listbox aria-label='Search results'")
                .mark("search-results")
            )
            ui.separator()
            with ui.row().classes("w-full items-center gap-3 q-px-md q-py-xs text-caption nox-muted"):
                for keys, what in (("↑ ↓", "move"), ("Enter", "open"), ("Esc", "close")):
                    with ui.row().classes("items-center gap-1"):
                        ui.label(keys).classes("nox-kbd")
                        ui.label(what)
        self.input.props(
            f"role=combobox aria-autocomplete=list aria-expanded=true aria-controls=c{self.listbox.id}"
        )
        self.input.on_value_change(self._changed)
        self.input.on("keydown", self._keys, js_handler=_KEYS_JS % {"listbox": f"c{self.listbox.id}"})
        self._empty()

    def open(self) -> None:
        """Open empty (Quasar focuses the input). Clearing happens while nobody can type in it."""
        if not self.dialog.value:
            self.input.value = ""
            self._serial += 1  # a search still running for the old text is not drawn
            self._empty()
        else:
            self.input.run_method("focus")
        self.dialog.open()

    async def _changed(self, event: ValueChangeEventArguments) -> None:
        await self._search(str(event.value or ""))

    async def _search(self, text: str) -> None:
        self._serial += 1
        serial = self._serial
        q = text.strip()
        if not q:
            self._empty()
            return
        answer = await run_search(self.guard, q, per_page=PALETTE_PER_PAGE)
        if serial != self._serial or self.listbox.is_deleted or answer is None:
            return
        self._draw(q, answer)

    async def _keys(self, event: GenericEventArguments) -> None:
        """Enter: open the highlighted option. When the text differs from what the options were found for
        (typed faster than the debounce), search it first and open its first option."""
        args = event.args if isinstance(event.args, dict) else {}
        value = args.get("value")
        text = (value if isinstance(value, str) else str(self.input.value or "")).strip()
        index = args.get("index")
        position = index if isinstance(index, int) and index >= 0 else 0
        if text != self._shown:
            await self._search(text)
            position = 0
        if text and self._shown == text and position < len(self._targets):
            self._go(self._targets[position])

    def _go(self, url: str) -> None:
        self.dialog.close()
        ui.navigate.to(safe_next(url))

    def _empty(self) -> None:
        self._shown, self._targets = "", []
        self.listbox.clear()
        with self.listbox, ui.column().classes("w-full gap-1 q-pa-md nox-muted text-body2"):
            ui.label("Type to search everything your role may see: alerts, rules, screens, processes…")
            ui.label('Words must all match; "quoted phrase", prefix*, -exclude, type:user.').classes(
                "text-caption"
            )

    def _draw(self, q: str, answer: SearchResults | str) -> None:
        self.listbox.clear()
        self._shown, self._targets = q, []
        with self.listbox:
            if isinstance(answer, str):
                ui.label(answer).classes("text-negative nox-search-error text-body2 q-pa-md").props(
                    "role=alert"
                ).mark("search-error")
                return
            with ui.column().classes("w-full gap-1 q-px-sm"):
                notices(answer)
            if not answer.hits:
                ui.label(f"No results for “{q}”.").classes("text-body2 nox-muted q-pa-md")
            options: list[ui.element] = []
            for kind, hits in grouped(answer.hits):
                with ui.column().classes("w-full gap-0").props(f"role=group aria-label='{type_label(kind)}'"):
                    count = answer.counts.get(kind, len(hits))
                    ui.label(f"{type_label(kind)} · {count}").classes("nox-search-group nox-muted").props(
                        "aria-hidden=true"
                    )
                    for hit in hits:
                        options.append(self._hit_option(hit, first=not options))
            total = sum(answer.counts.values()) or answer.total
            options.append(self._all_option(q, total, first=not options))
        # The highlighted option, for screen readers. Set in the browser: the server never changes the
        # input's props while someone types in it (an update would send back its older value).
        ui.run_javascript(
            f"document.getElementById('c{self.input.id}')"
            f"?.setAttribute('aria-activedescendant', 'c{options[0].id}')"
        )

    def _option(self, url: str, *, first: bool, marker: str) -> ui.element:
        self._targets.append(url)
        return (
            ui.element("div")
            .classes("nox-search-option")
            .props(f"role=option aria-selected={'true' if first else 'false'}")
            .on("click", lambda: self._go(url))
            .mark(marker)
        )

    def _hit_option(self, hit: SearchHit, *, first: bool) -> ui.element:
        with self._option(hit.url, first=first, marker="search-option").props(
            f"data-type={hit.type}"
        ) as option:
            ui.icon(type_icon(hit.type), size="1.25rem").classes("nox-muted q-mt-xs")
            with ui.column().classes("gap-0 col"):
                ui.label(hit.title).classes("nox-search-title")
                if hit.snippet:
                    snippet(hit)
        return option

    def _all_option(self, q: str, total: int, *, first: bool) -> ui.element:
        with self._option(search_url(q), first=first, marker="search-all").classes(
            "items-center q-mt-xs"
        ) as option:
            ui.icon("manage_search", size="1.25rem").classes("nox-muted")
            ui.label(f"All results for “{q}”" + (f" ({total})" if total else "")).classes("col")
            ui.icon("arrow_forward", size="1rem").classes("nox-muted")
        return option


def search_box(guard: SessionGuard) -> SearchPalette:
    """The header's search button (with its shortcut) and the palette it opens. Once per page."""
    ui.add_css(_CSS)
    palette = SearchPalette(guard)
    with (
        ui.button(on_click=palette.open)
        .props("flat no-caps color=white aria-label='Search (Ctrl+K)' aria-keyshortcuts='Control+K /'")
        .classes(f"{TRIGGER_CLASS} q-px-sm")
        .mark("search-open")
    ):
        with ui.row().classes("items-center no-wrap gap-2 w-full"):
            ui.icon("search", size="1.2rem")
            ui.label("Search…").classes("gt-xs opacity-80")
            ui.space()
            ui.label("Ctrl K").classes("nox-kbd gt-xs")
    ui.add_body_html(f"<script>{_SHORTCUT_JS}</script>")
    return palette

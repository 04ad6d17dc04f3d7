"""The search box's language, parsed by us (never by an engine's parser): any string becomes a `Query`
or an `Invalid` with a sentence, in time linear in its length.

    disk full           words: every one must match (AND is the default and may be written)
    disk OR memory      either word
    dis*                a prefix (at least MIN_PREFIX characters before the `*`)
    "no space left"     a phrase: the words next to each other, in this order
    -kernel  NOT kernel  leave out what matches
    type:user           only one type of result

Operators with nothing to act on (a lone `-`, `OR` at the end, `NOT` alone) are dropped, an unclosed
quote runs to the end of the string, control characters count as spaces. Words are split into terms by
the engine's analyzer, so `auth.login` matches the tokens `auth` then `login`, as a phrase.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from nox_ui.errors import Invalid

MAX_LENGTH = 200  # characters of a search; longer is a 422 with a message, not a slow query
MAX_CLAUSES = 10  # words, prefixes and phrases in one search
MAX_PHRASE_WORDS = 10
MIN_PREFIX = 2  # characters before a `*`: a one-letter prefix would expand to half the vocabulary
_OPERATORS = {"AND", "OR", "NOT"}


@dataclass(frozen=True)
class Clause:
    """One thing to match: a word, a prefix (`prefix=True`, `text` without the `*`) or a phrase."""

    text: str
    prefix: bool = False
    phrase: bool = False

    def __str__(self) -> str:
        if self.phrase:
            return f'"{self.text}"'
        return f"{self.text}*" if self.prefix else self.text


@dataclass(frozen=True)
class Query:
    """`groups`: every group must match, a group matches when any of its clauses does (OR).
    `exclude`: none of these may match. `type`: a `type:` filter, or None."""

    groups: tuple[tuple[Clause, ...], ...] = ()
    exclude: tuple[Clause, ...] = ()
    type: str | None = None
    raw: str = ""

    @property
    def empty(self) -> bool:
        return not self.groups

    @property
    def clauses(self) -> list[Clause]:
        return [clause for group in self.groups for clause in group]

    @property
    def normalized(self) -> str:
        """One spelling per meaning: the cache key of its counts, and what the results echo."""
        parts = [" OR ".join(str(c) for c in group) for group in self.groups]
        parts += [f"-{c}" for c in self.exclude]
        if self.type:
            parts.append(f"type:{self.type}")
        return " ".join(parts)


@dataclass
class _Builder:
    groups: list[list[Clause]] = field(default_factory=list)
    exclude: list[Clause] = field(default_factory=list)
    type: str | None = None
    join_next: bool = False  # the previous token was OR
    negate_next: bool = False  # the previous token was NOT

    def add(self, clause: Clause, *, negated: bool) -> None:
        if self.negate_next or negated:
            self.exclude.append(clause)
        elif self.join_next and self.groups:
            self.groups[-1].append(clause)
        else:
            self.groups.append([clause])
        self.join_next = self.negate_next = False
        if len(self.groups) + sum(len(g) - 1 for g in self.groups) + len(self.exclude) > MAX_CLAUSES:
            raise Invalid(f"a search may hold at most {MAX_CLAUSES} words, prefixes and phrases")


def _clean(text: str) -> str:
    """Control and format characters (NUL, escapes, zero-width marks) become spaces."""
    return "".join(" " if unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Zl", "Zp"} else ch for ch in text)


def parse(text: str, types: frozenset[str] | set[str]) -> Query:
    """The user's search as a `Query`; `types` are the type keys `type:` may name. Raises Invalid for a
    string too long, too many clauses, a short or misplaced `*`, or an unknown type."""
    if len(text) > MAX_LENGTH:
        raise Invalid(f"a search is at most {MAX_LENGTH} characters (this one has {len(text)})")
    cleaned = _clean(text)
    built = _Builder()
    i, n = 0, len(cleaned)
    while i < n:
        ch = cleaned[i]
        if ch.isspace():
            i += 1
            continue
        negated = False
        if ch in "-+" and i + 1 < n and not cleaned[i + 1].isspace():
            negated = ch == "-"
            i += 1
            ch = cleaned[i]
        if ch == '"':
            end = cleaned.find('"', i + 1)
            inner = cleaned[i + 1 :] if end < 0 else cleaned[i + 1 : end]
            i = n if end < 0 else end + 1
            words = inner.replace("*", " ").split()
            if len(words) > MAX_PHRASE_WORDS:
                raise Invalid(f"a phrase may hold at most {MAX_PHRASE_WORDS} words")
            if words:
                built.add(Clause(" ".join(words), phrase=len(words) > 1), negated=negated)
            continue
        start = i
        while i < n and not cleaned[i].isspace() and cleaned[i] != '"':
            i += 1
        _word(built, cleaned[start:i], negated, types)
    if not built.groups and built.exclude:
        raise Invalid("add a word to look for: a search cannot consist of exclusions only")
    return Query(
        groups=tuple(tuple(g) for g in built.groups),
        exclude=tuple(built.exclude),
        type=built.type,
        raw=text,
    )


def _word(built: _Builder, token: str, negated: bool, types: frozenset[str] | set[str]) -> None:
    if token in _OPERATORS and not negated:
        built.join_next = token == "OR" and bool(built.groups)
        built.negate_next = token == "NOT"
        return
    if token.lower().startswith("type:"):
        wanted = token[5:].strip().lower()
        if wanted not in types:
            choices = ", ".join(sorted(types))
            shown = wanted[:40] or "(nothing)"
            raise Invalid(f"unknown type {shown!r} after type: (choose one of: {choices})")
        built.type = wanted
        return
    stem = token.rstrip("*")
    prefix = stem != token
    if "*" in stem:
        raise Invalid("* may only end a word, as in disk*")
    if prefix and len(stem.strip("-+")) < MIN_PREFIX:
        raise Invalid(f"put at least {MIN_PREFIX} characters before *, as in di*")
    stem = stem.strip("-+")  # stray operators glued to a word (`--x`, `x-`) are not part of it
    if not stem:
        built.join_next = built.negate_next = False  # a lone `-`, `+` or `-+`: nothing to act on
        return
    built.add(Clause(stem, prefix=prefix), negated=negated)

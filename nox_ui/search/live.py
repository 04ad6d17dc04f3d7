"""Matching what is never indexed (processes, which come and go every second) against a parsed `Query`,
in plain Python: a name's words are compared with the query's words, prefixes and phrases, and with
`fuzzy` a word one edit away (two from 8 letters on) matches too, as in the index."""

from __future__ import annotations

import re
from collections.abc import Iterable

from nox_ui.search.query import Clause, Query

_WORD = re.compile(r"\w+")
FUZZY_MIN = 4


def within(a: str, b: str, limit: int) -> bool:
    """Whether the Damerau-Levenshtein distance (a swap of neighbours is one edit) is at most `limit`."""
    if abs(len(a) - len(b)) > limit:
        return False
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return False
        previous2, previous = previous, current
    return previous[-1] <= limit


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def _matches(clause: Clause, name: str, words: list[str], fuzzy: bool) -> bool:
    wanted = _words(clause.text)
    if not wanted:
        return False
    if clause.phrase or len(wanted) > 1:
        joined, target = " ".join(wanted), " ".join(words)
        return f" {joined} " in f" {target} " or (clause.prefix and target.startswith(joined))
    word = wanted[0]
    if clause.prefix:
        return name.startswith(word) or any(w.startswith(word) for w in words)
    if word == name or word in words:
        return True
    if fuzzy and len(word) >= FUZZY_MIN and word.isalpha():
        limit = 2 if len(word) >= 8 else 1
        return any(w[:1] == word[:1] and within(w, word, limit) for w in [name, *words])
    return False


def matching(query: Query, names: Iterable[str], *, fuzzy: bool) -> list[str]:
    """The names (as given) that match every group of `query` and none of its exclusions, sorted."""
    found = set()
    for name in set(names):
        folded = name.casefold()
        words = _words(name)
        if all(any(_matches(c, folded, words, fuzzy) for c in group) for group in query.groups) and not any(
            _matches(c, folded, words, False) for c in query.exclude
        ):
            found.add(name)
    return sorted(found, key=lambda n: (n.casefold(), n))

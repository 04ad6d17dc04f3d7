"""The Whoosh implementation of `SearchIndex`: the only module of the panel that imports whoosh.

Queries are built here from our own parsed `Query` (never Whoosh's QueryParser on what a user typed):
each word is run through the index's analyzer, a prefix expands to at most `MAX_EXPANSIONS` indexed
terms, a typo-tolerant word to the terms within 1 edit (2 for long words) that share its first letter,
and every collection runs under a `TimeLimitCollector` (no SIGALRM: this runs in worker threads).
Anyone can plant words in the audit events (a failed sign-in records the name tried), so expansions
look at the words of the other documents (`vocab`) first, and a search's whole scan of words is
bounded by a count and by its deadline. Each search reads with a searcher of its own (a small pool):
one slow search never holds up another, nor the writer.
Snippets are HTML-escaped with <mark> around the matches.
"""

from __future__ import annotations

import errno
import html
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from whoosh import collectors, fields, highlight, sorting
from whoosh import index as whoosh_index
from whoosh import query as wq
from whoosh.analysis import CharsetFilter, Filter, LowercaseFilter, RegexTokenizer
from whoosh.searching import Searcher
from whoosh.support.charset import accent_map
from whoosh.support.levenshtein import damerau_levenshtein

from nox_ui.roles import Role
from nox_ui.search.documents import AUDIT, Document, audit_key
from nox_ui.search.index import AUDIT_COUNT_LIMIT, EngineHit, Found, IndexClosed, IndexCorrupt, IndexFull
from nox_ui.search.query import Clause, Query

MAX_EXPANSIONS = 32  # indexed terms one prefix may stand for, from each of `vocab` and `body`
FUZZY_EXPANSIONS = 16  # and one typo-tolerant word
FUZZY_SCAN = 5000  # indexed words one search may compare with its typo-tolerant words, in all
IDLE_SEARCHERS = 4  # searchers kept open for the next searches
FUZZY_MIN = 4  # shorter words are matched exactly only: one edit away from "cpu" is half the vocabulary
SNIPPET_CHARS = 160
WRITE_LOCK_SECONDS = 30.0

# A compound (auth.login.success, 10.0.0.7, olga@example.com, /admin/users, e-mail) is one token...
_COMPOUND = r"\w+(?:[.:@/\-]\w+)*"
_WORD = re.compile(r"\w+")


class CompoundFilter(Filter):
    """...indexed whole and also as its words, which take the following positions: `10.0.0.7` is one
    term lookup, while `login` and the phrase "login failure" still match auth.login.failure."""

    def __call__(self, tokens: Iterable[Any]) -> Iterator[Any]:
        shift = 0
        for token in tokens:
            if token.positions:
                token.pos += shift
            parts = list(_WORD.finditer(token.text))
            yield token  # the tokenizer reuses one Token: each yield is consumed before the next
            if len(parts) < 2:
                continue
            text, pos, start = token.text, getattr(token, "pos", 0), getattr(token, "startchar", 0)
            for number, part in enumerate(parts):
                token.text = part.group()
                if token.positions:
                    token.pos = pos + number
                if token.chars:
                    token.startchar, token.endchar = start + part.start(), start + part.end()
                yield token
            token.text = text
            shift += len(parts) - 1


class PairFilter(Filter):
    """Each word joined to the one before it ("login failure"): a two-word phrase is then one term
    lookup, and a longer one the intersection of its pairs."""

    def __call__(self, tokens: Iterable[Any]) -> Iterator[Any]:
        previous: str | None = None
        for token in tokens:
            text = token.text
            if previous is not None:
                token.text = f"{previous} {text}"
                yield token
            previous = text


# Lowercased and without accents, so "Müller" matches "muller".
ANALYZER = RegexTokenizer(_COMPOUND) | CompoundFilter() | LowercaseFilter() | CharsetFilter(accent_map)
# What the user typed, as the index holds it: a word is looked up whole, a phrase word by word.
_WORDS = RegexTokenizer(_COMPOUND) | LowercaseFilter() | CharsetFilter(accent_map)
_PARTS = RegexTokenizer(r"\w+") | LowercaseFilter() | CharsetFilter(accent_map)
PAIRS = _PARTS | PairFilter()

SCHEMA = fields.Schema(
    key=fields.ID(unique=True, stored=True),
    type=fields.ID(stored=True, sortable=True),
    group=fields.ID(stored=True),
    doc_id=fields.STORED,
    role=fields.ID,
    title=fields.STORED,
    body=fields.TEXT(analyzer=ANALYZER, phrase=True),  # the title and the text: what every clause matches
    pairs=fields.TEXT(analyzer=PAIRS, phrase=False),  # the same words, in adjacent pairs
    # The body's words again, of every document but the audit events: the vocabulary prefixes and typos
    # expand from first, which nobody can fill by failing to sign in.
    vocab=fields.TEXT(analyzer=ANALYZER, phrase=False),
    text=fields.STORED,
    url=fields.STORED,
    digest=fields.STORED,
)


class MarkFormatter(highlight.Formatter):
    """Escaped text, <mark> around each match."""

    between = " … "

    def _text(self, text: str) -> str:
        return html.escape(text)

    def format_token(self, text: str, token: Any, replace: bool = False) -> str:
        return f"<mark>{html.escape(highlight.get_text(text, token, replace))}</mark>"


def _fields(doc: Document) -> dict[str, Any]:
    vocab = {} if doc.type == AUDIT else {"vocab": f"{doc.title}\n{doc.text}"}
    return {
        **vocab,
        "key": doc.key,
        "type": doc.type,
        "group": doc.group_key,
        "doc_id": doc.id,
        "role": doc.role.value,
        "title": doc.title,
        "body": f"{doc.title}\n{doc.text}",
        "pairs": f"{doc.title}\n{doc.text}",
        "text": doc.text,
        "url": doc.url,
        "digest": doc.digest,
    }


def time_limit_of(deadline: float) -> float:
    return max(0.05, deadline - time.monotonic())


class Budget:
    """What one search may still spend on expanding words: its deadline and a count of indexed words
    to compare; `cut` once either ran out (the results are then partial)."""

    def __init__(self, deadline: float, words: int = FUZZY_SCAN) -> None:
        self.deadline = deadline
        self.words = words
        self.cut = False
        self.scanned = 0

    def spend(self) -> bool:
        """One more word to compare, or False (and `cut`) when none is left."""
        if self.words <= 0 or (not self.scanned % 256 and time.monotonic() > self.deadline):
            self.cut = True
            self.words = 0
            return False
        self.words -= 1
        self.scanned += 1
        return True


def _terms(reader: Any, field: str) -> list[str]:
    return [t.decode() if isinstance(t, bytes) else str(t) for t in reader.lexicon(field)]


def _leaves(searcher: Searcher) -> list[tuple[Any, int, Callable[[int], bool]]]:
    """(segment searcher, its first document number, "is this one live") per segment: matchers are run
    per segment, as Whoosh's own collectors do (an AndNot over all segments at once lets some through)."""
    leaves: list[tuple[Any, int, Callable[[int], bool]]] = []
    for sub, offset in searcher.leaf_searchers():
        reader = sub.reader()
        live = partial(_not_deleted, reader) if reader.has_deletions() else _always
        leaves.append((sub, offset, live))
    return leaves


def _not_deleted(reader: Any, docnum: int) -> bool:
    return not reader.is_deleted(docnum)


def _always(_docnum: int) -> bool:
    return True


def _count(searcher: Searcher, query: wq.Query, cap: int, deadline: float) -> tuple[int, bool, bool]:
    """(matches up to `cap`, whether there are more, whether the deadline cut it)."""
    found = 0
    for sub, _offset, live in _leaves(searcher):
        matcher = query.matcher(sub)
        while matcher.is_active():
            if live(matcher.id()):
                found += 1
                if found >= cap:
                    return found, True, False
                if not found % 512 and time.monotonic() > deadline:
                    return found, False, True
            matcher.next()
    return found, False, False


def _newest(searcher: Searcher, query: wq.Query, need: int, deadline: float) -> tuple[list[int], bool]:
    """The `need` matching documents with the highest numbers, highest first: from the last segment
    back, in each a window at its end widened until it holds enough, each try skipping to its start."""
    found: list[int] = []
    for sub, offset, live in reversed(_leaves(searcher)):
        if len(found) >= need:
            break
        wanted = need - len(found)
        top = sub.reader().doc_count_all()
        window = max(256, wanted * 16)
        while True:
            start = max(0, top - window)
            matcher = query.matcher(sub)
            if start and matcher.is_active():
                matcher.skip_to(start)
            here = []
            while matcher.is_active():
                if live(matcher.id()):
                    here.append(offset + matcher.id())
                matcher.next()
            if len(here) >= wanted or start == 0:
                found += here[::-1][:wanted]
                break
            if time.monotonic() > deadline:
                return [*found, *here[::-1][:wanted]], True
            window *= 8
    return found[:need], False


def _counts(results: Any) -> dict[str, int]:
    groups = results.groups("type") if "type" in results.facet_names() else {}
    return {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in groups.items() if v}


def _tokens(analyzer: Any, text: str) -> list[str]:
    return [token.text for token in analyzer(text)]


def _full(exc: OSError) -> OSError:
    if exc.errno in {errno.ENOSPC, errno.EDQUOT}:
        return IndexFull(exc.errno, "search index: no space left on device")
    return exc


class WhooshIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._ix = whoosh_index.open_dir(str(path))
            if set(self._ix.schema.names()) != set(SCHEMA.names()):
                raise IndexCorrupt(f"{path}: the index's fields are not this version's")
            first: Searcher = self._ix.searcher()
            first.doc_count()
        except IndexCorrupt:
            raise
        except Exception as exc:  # the engine's many ways of saying "these files are not an index"
            raise IndexCorrupt(f"{path}: {type(exc).__name__}: {exc}") from exc
        # Guards the pool only, never held while reading: a searcher is used by one search at a time
        # (its files' positions are not shared safely), idle ones wait here for the next search.
        self._lock = threading.Lock()
        self._generation = 0  # bumped by each refresh: older searchers are closed when given back
        self._idle: list[Searcher] = [first]
        self._closed = False
        self.formatter = MarkFormatter()
        self.fuzzy_scanned = 0  # indexed words compared by the last typo-tolerant search (diagnostics)

    # -- reading ------------------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[Searcher]:
        with self._lock:
            if self._closed:
                raise IndexClosed(f"{self.path} was closed")
            generation = self._generation
            searcher = self._idle.pop() if self._idle else None
        try:
            if searcher is None:
                searcher = self._ix.searcher()
            yield searcher
        except (IndexCorrupt, IndexClosed, collectors.TimeLimit):
            raise
        except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as exc:
            # struct, zlib, pickle and file errors from the segment files: the files are damaged
            raise IndexCorrupt(f"{self.path}: {type(exc).__name__}: {exc}") from exc
        finally:
            if searcher is not None:
                self._give_back(searcher, generation)

    def _give_back(self, searcher: Searcher, generation: int) -> None:
        with self._lock:
            keep = not self._closed and generation == self._generation and len(self._idle) < IDLE_SEARCHERS
            if keep:
                self._idle.append(searcher)
        if not keep:
            searcher.close()

    def refresh(self) -> None:
        """After a commit: the next searches open new searchers. Not Whoosh's `refresh()`: that one
        reuses segment readers and would miss the deletions made in them since (a replaced document
        would show twice). Searches still running finish on what they opened."""
        with self._lock:
            if self._closed:
                return
            self._generation += 1
            stale, self._idle = self._idle, []
        for searcher in stale:
            searcher.close()

    def document_count(self) -> int:
        with self._reading() as searcher:
            return int(searcher.doc_count())

    def digests(self) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        with self._reading() as searcher:
            for group in _terms(searcher.reader(), "group"):
                if group == AUDIT:
                    continue
                for sub, _offset, live in _leaves(searcher):
                    matcher = wq.Term("group", group).matcher(sub)
                    reader = sub.reader()
                    while matcher.is_active():
                        if live(matcher.id()):
                            stored = reader.stored_fields(matcher.id())
                            found.setdefault(group, {})[stored["key"]] = stored["digest"]
                        matcher.next()
        return found

    # -- building queries ---------------------------------------------------------------------------

    def _fuzzy(self, reader: Any, token: str, budget: Budget) -> wq.Query:
        """The indexed words within 1 edit (2 from 8 letters on; a swap of two letters is one edit)
        that start with the same letter: those of the other documents first, then the audit events'
        as far as the search's budget of compared words and time goes."""
        if len(token) < FUZZY_MIN or not token.isalpha():
            return wq.Term("body", token)
        maxdist = 2 if len(token) >= 8 else 1
        near = [token]
        for field in ("vocab", "body"):
            for term in reader.expand_prefix(field, token[0]):
                if len(near) > FUZZY_EXPANSIONS or not budget.spend():
                    break
                word = term.decode() if isinstance(term, bytes) else term
                close = word not in near and abs(len(word) - len(token)) <= maxdist
                if close and damerau_levenshtein(word, token, limit=maxdist + 1) <= maxdist:
                    near.append(word)
        return wq.Or([wq.Term("body", word) for word in near]) if len(near) > 1 else wq.Term("body", token)

    def _prefix(self, reader: Any, stem: str) -> list[str]:
        """The indexed words a prefix stands for: the other documents' before the audit events' (where
        anyone can plant words that sort first), at most MAX_EXPANSIONS of each."""
        found: dict[str, None] = {}
        for field in ("vocab", "body"):
            for term in itertools.islice(reader.expand_prefix(field, stem), MAX_EXPANSIONS):
                found[term.decode() if isinstance(term, bytes) else term] = None
        return list(found)

    def _phrase(self, text: str) -> wq.Query | None:
        """Two words: one pair term. More: every adjacent pair (not a positional check, whose matcher
        Whoosh builds by walking all the words' postings at once, ~0.3 s for common words); a document
        holding "a b" and "b c" apart but never "a b c" would match, which the words of a real search
        seldom do."""
        words = _tokens(_PARTS, text)
        if len(words) < 2:
            return wq.Term("body", words[0]) if words else None
        pairs = [wq.Term("pairs", f"{a} {b}") for a, b in itertools.pairwise(words)]
        return pairs[0] if len(pairs) == 1 else wq.And(pairs)

    def _clause(self, clause: Clause, reader: Any, fuzzy: bool, budget: Budget) -> wq.Query | None:
        if clause.phrase:
            return self._phrase(clause.text)
        words = _tokens(_WORDS, clause.text)
        if not words:
            return None  # punctuation only: it constrains nothing
        if clause.prefix:
            expanded = self._prefix(reader, words.pop())
            prefix: wq.Query = wq.Or([wq.Term("body", t) for t in expanded]) if expanded else wq.NullQuery
            return wq.And([*(wq.Term("body", w) for w in words), prefix]) if words else prefix
        if len(words) > 1:  # "disk,full": the words in this order
            return self._phrase(clause.text)
        return self._fuzzy(reader, words[0], budget) if fuzzy else wq.Term("body", words[0])

    def _compile(
        self, query: Query, reader: Any, fuzzy: bool, budget: Budget
    ) -> tuple[wq.Query, list[wq.Query]] | None:
        """(what must match, the clauses of an And that also leave out the exclusions); None when no
        clause can match anything. Flat And([..., Not(x)]): Whoosh drops the outer exclusion of an
        AndNot nested in another."""
        parts: list[wq.Query] = []
        for group in query.groups:
            alternatives = [
                q for q in (self._clause(c, reader, fuzzy, budget) for c in group) if q is not None
            ]
            if alternatives:
                parts.append(alternatives[0] if len(alternatives) == 1 else wq.Or(alternatives))
        if not parts:
            return None
        positive: wq.Query = parts[0] if len(parts) == 1 else wq.And(parts)
        excluded = [
            q for q in (self._clause(c, reader, False, budget) for c in query.exclude) if q is not None
        ]
        return positive, [positive, *([wq.Not(wq.Or(excluded))] if excluded else [])]

    def _fuzzable(self, query: Query) -> bool:
        return any(
            not c.prefix
            and not c.phrase
            and any(len(w) >= FUZZY_MIN and w.isalpha() for w in _tokens(_WORDS, c.text))
            for c in query.clauses
        )

    def _collect(
        self, searcher: Searcher, compiled: wq.Query, collector: Any, time_limit: float
    ) -> tuple[Any, bool]:
        limited = collectors.TimeLimitCollector(collector, timelimit=time_limit, use_alarm=False)
        try:
            searcher.search_with_collector(compiled, limited)
        except collectors.TimeLimit:
            return limited.results(), True
        return limited.results(), False

    # -- searching ----------------------------------------------------------------------------------

    def search(
        self,
        query: Query,
        roles: frozenset[Role],
        *,
        type: str | None,
        offset: int,
        limit: int,
        counts: dict[str, int] | None,
        fuzzy: bool | None,
        time_limit: float,
    ) -> Found:
        # One deadline for the whole search, the typo-tolerant second try included.
        deadline = time.monotonic() + time_limit
        with self._reading() as searcher:
            found = self._search(searcher, query, roles, type, offset, limit, counts, bool(fuzzy), deadline)
            if fuzzy is None and found.empty and self._fuzzable(query):
                near = self._search(searcher, query, roles, type, offset, limit, counts, True, deadline)
                if not near.empty or near.partial:
                    return near
            return found

    def _search(
        self,
        searcher: Searcher,
        query: Query,
        roles: frozenset[Role],
        type: str | None,
        offset: int,
        limit: int,
        known: dict[str, int] | None,
        fuzzy: bool,
        deadline: float,
    ) -> Found:
        """The small types first, ranked by relevance; then the audit events, newest first. Audit
        events are the one group that grows large: ranking or counting every match of a common word
        among 100,000 of them would cost a pass over all of them, so they are read from the end of
        their postings (the newest have the highest document numbers) and counted up to AUDIT_COUNT_LIMIT."""
        reader = searcher.reader()
        budget = Budget(deadline)
        compiled = self._compile(query, reader, fuzzy, budget)
        if fuzzy:
            self.fuzzy_scanned = budget.scanned
        wanted = type or query.type
        if compiled is None:
            return Found(counts={} if known is None else known, hits=[], fuzzy=False, partial=budget.cut)
        positive, matching = compiled
        role_filter = (
            [wq.Or([wq.Term("role", r.value) for r in sorted(roles)])] if roles != frozenset(Role) else []
        )
        small_types = sorted(t for t in _terms(reader, "type") if t != AUDIT and (query.type in (None, t)))
        small_all = wq.And([*matching, wq.Or([wq.Term("type", t) for t in small_types]), *role_filter])
        # "Not one of the small types" rather than "type audit": an intersection with the audit postings
        # (nearly every document) would walk all of them; the small types' postings are short.
        others = sorted(t for t in _terms(reader, "type") if t != AUDIT)
        audit_q: wq.Query | None = (
            wq.And([*matching, *([wq.Not(wq.Or([wq.Term("type", t) for t in others]))] if others else [])])
            if Role.ADMIN in roles
            else None
        )
        if query.type not in (None, AUDIT):
            audit_q = None
        counts = dict(known) if known is not None else None
        cut_short = budget.cut
        small_hits: list[Any] = []
        left = time_limit_of(deadline)
        # 1. The small types: counts per type and the best hits (one pass when no type is chosen).
        facet = sorting.FieldFacet("type", maptype=sorting.Count) if counts is None else None
        if small_types and wanted is None:
            need = offset + limit
            collector = searcher.collector(limit=max(need, 1), groupedby=facet)
            results, cut_short = self._collect(searcher, small_all, collector, left)
            counts = _counts(results) if counts is None else counts
            small_hits = list(results[:need])
        elif small_types:
            if counts is None:
                counting = searcher.collector(limit=1, scored=False, groupedby=facet)
                counted, cut_short = self._collect(searcher, small_all, counting, left)
                counts = _counts(counted)
            if wanted in small_types:
                typed = wq.And([*matching, wq.Term("type", wanted), *role_filter])
                collector = searcher.collector(limit=offset + limit)
                results, cut = self._collect(searcher, typed, collector, time_limit_of(deadline))
                cut_short = cut_short or cut
                small_hits = list(results[: offset + limit])
        counts = counts if counts is not None else {}
        # 2. The audit events: counted up to a limit, the page's share read newest first.
        capped = False
        if audit_q is not None and AUDIT not in counts and known is None:
            found_count, capped, cut = _count(searcher, audit_q, AUDIT_COUNT_LIMIT, deadline)
            cut_short = cut_short or cut
            if found_count:
                counts[AUDIT] = found_count
        small_total = sum(n for t, n in counts.items() if t != AUDIT) if wanted is None else 0
        page = [
            self._hit(reader.stored_fields(h.docnum), positive, h.score or 0.0) for h in small_hits[offset:]
        ]
        if audit_q is not None and wanted in (None, AUDIT) and len(page) < limit:
            skip = max(0, offset - small_total)
            newest, cut = _newest(searcher, audit_q, skip + limit - len(page), deadline)
            cut_short = cut_short or cut
            page += [self._hit(reader.stored_fields(n), positive, 0.0) for n in newest[skip:]]
        return Found(counts=counts, hits=page[:limit], fuzzy=fuzzy, partial=cut_short, capped=capped)

    def _hit(self, stored: dict[str, Any], positive: wq.Query, score: float) -> EngineHit:
        text = stored["text"]
        terms = {t if isinstance(t, str) else t.decode() for f, t in positive.iter_all_terms() if f == "body"}
        snippet = highlight.highlight(
            text,
            terms,
            ANALYZER,
            highlight.ContextFragmenter(maxchars=SNIPPET_CHARS, surround=48),
            self.formatter,
            top=2,
        )
        if not snippet:  # matched in the title only
            snippet = html.escape(text[:SNIPPET_CHARS] + ("…" if len(text) > SNIPPET_CHARS else ""))
        return EngineHit(
            type=stored["type"],
            id=stored["doc_id"],
            title=stored["title"],
            snippet=snippet,
            url=stored["url"],
            score=float(score),
        )

    # -- writing ------------------------------------------------------------------------------------

    def write(
        self,
        upserts: Iterable[Document],
        deletes: Iterable[str] = (),
        *,
        delete_groups: Iterable[str] = (),
        delete_audit_below: int | None = None,
    ) -> None:
        try:
            writer = self._ix.writer(timeout=WRITE_LOCK_SECONDS)
        except OSError as exc:
            raise _full(exc) from exc
        try:
            for group in delete_groups:
                writer.delete_by_term("group", group)
            if delete_audit_below is not None and delete_audit_below > 0:
                below = audit_key(delete_audit_below)  # zero-padded: key order is id order
                writer.delete_by_query(wq.TermRange("key", audit_key(0), below, endexcl=True))
            for key in deletes:
                writer.delete_by_term("key", key)
            for doc in upserts:
                writer.update_document(**_fields(doc))
            writer.commit()
        except OSError as exc:
            _cancel(writer)
            raise _full(exc) from exc
        except BaseException:
            _cancel(writer)
            raise
        self.refresh()

    def close(self) -> None:
        """Searches still reading close their searchers when they finish."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for searcher in idle:
            searcher.close()


def _cancel(writer: Any) -> None:
    """Give up a writer whose commit failed: its lock is released, its partial files are left for the
    next commit's cleanup, and the index stays at its previous generation."""
    try:
        writer.cancel()
    except Exception:  # a failed cancel of a failed commit: the lock file is released below regardless
        lock = getattr(writer, "writelock", None)
        if lock is not None:
            try:
                lock.release()
            except Exception:  # already released
                return


class WhooshBuilder:
    """A new index written by one writer and committed once (the rebuild)."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._ix = whoosh_index.create_in(str(path), SCHEMA)
            self._writer = self._ix.writer(limitmb=64)
        except OSError as exc:
            raise _full(exc) from exc

    def add(self, documents: Iterable[Document]) -> None:
        try:
            for doc in documents:
                self._writer.add_document(**_fields(doc))
        except OSError as exc:
            raise _full(exc) from exc

    def commit(self) -> None:
        try:
            self._writer.commit()
        except OSError as exc:
            raise _full(exc) from exc

    def cancel(self) -> None:
        _cancel(self._writer)


class WhooshEngine:
    def open(self, path: Path) -> WhooshIndex:
        return WhooshIndex(path)

    def create(self, path: Path) -> WhooshBuilder:
        return WhooshBuilder(path)


ENGINE = WhooshEngine()

"""Search everywhere (issue 8): one index in DATA_DIR/index behind the `SearchIndex` interface.

Importing this package loads no search engine: `whoosh_index.py` is imported on the first write or
search. See docs/architecture.md, "Search"."""

from nox_ui.search.documents import TYPES
from nox_ui.search.service import IndexStatus, SearchHit, SearchResults, SearchService

__all__ = ["TYPES", "IndexStatus", "SearchHit", "SearchResults", "SearchService"]

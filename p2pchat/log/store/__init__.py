"""
The store: a node's copy of the log in one SQLite file.  L{Store} is the
front door; see L{p2pchat.log.store.core} for its rooms.
"""

from p2pchat.log.store.core import Store
from p2pchat.log.store.log import AddResult, entry_digest
from p2pchat.log.store.schema import SCHEMA_VERSION, StoreError
from p2pchat.log.store.search import MAX_SEARCH_TERMS, SEARCH_BUDGET_S, SearchRefused

__all__ = [
    "MAX_SEARCH_TERMS",
    "SCHEMA_VERSION",
    "SEARCH_BUDGET_S",
    "AddResult",
    "SearchRefused",
    "Store",
    "StoreError",
    "entry_digest",
]

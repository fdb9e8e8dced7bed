# -*- test-case-name: tests.unit.test_store -*-
"""
Reading the store for people: the history a console shows (chat, and only
the reader's own direct messages), name attestations, and full-text
search over chat entries with a bounded cost (L{MAX_SEARCH_TERMS} words,
L{SEARCH_BUDGET_S} inside SQLite by the store's clock).
"""

import math
import sqlite3
from typing import Callable, Dict, Iterable, List, Optional

from p2pchat.log.entry import Entry
from p2pchat.log.store.schema import (
    ENTRY_COLUMNS,
    SQLITE_MAX_INT,
    Database,
    StoreError,
    chunks,
    row_to_entry,
)

# LogSearch.search collects at most this many times isqrt(limit * count) + 1
# matching rowids (inside SQLite) before it switches to probing each row.
_SCAN_MAX_FACTOR = 16

# LogSearch.search: at most this many different words per query (an FTS5 AND
# of hundreds of phrases over common words takes seconds), and at most this
# long (by the store's clock) inside SQLite per query before it gives up.
MAX_SEARCH_TERMS = 16
SEARCH_BUDGET_S = 0.2
# SQLite calls the budget check every this many virtual machine steps.
_PROGRESS_STEPS = 500


class SearchRefused(ValueError):
    """
    A search was not run, or was abandoned, because it is too broad:
    too many words, or over its time budget.  C{str(error)} says which,
    in words fit for the user.
    """



def fts_query(text: str) -> Optional[str]:
    """
    Turn user search text into an FTS5 query that treats it as plain words.

    Each whitespace-separated token becomes an FTS5 string (with C{"}
    doubled) and the strings are ANDed.  Tokens with no letter or digit are
    dropped: the tokenizer would turn them into nothing, and an empty
    phrase makes the whole AND match nothing.  Repeated tokens (compared
    case-insensitively, as the tokenizer does) count once.

    NUL characters (which would end the query string early inside SQLite)
    count as whitespace, and lone surrogates (which cannot be encoded) as
    C{?}.

    @return: the query, or C{None} if there is nothing to search for.
    @raise SearchRefused: if more than L{MAX_SEARCH_TERMS} different
        tokens remain.
    """
    text = text.encode("utf-8", "replace").decode("utf-8").replace("\x00", " ")
    unique: Dict[str, str] = {}
    for token in text.split():
        if any(c.isalnum() for c in token):
            unique.setdefault(token.casefold(), token)
    if len(unique) > MAX_SEARCH_TERMS:
        raise SearchRefused(
            f"search has {len(unique)} different words; "
            f"at most {MAX_SEARCH_TERMS} are allowed"
        )
    tokens = ['"' + token.replace('"', '""') + '"' for token in unique.values()]
    if not tokens:
        return None
    return " AND ".join(tokens)



class LogSearch:
    """
    History, attestations and search over one store's L{Database}.

    @ivar search_budget_s: how long one L{search} may run inside SQLite
        before it is abandoned.
    """

    def __init__(
        self,
        database: Database,
        count: Callable[[], int],
        clock: Callable[[], float],
        search_budget_s: float,
    ):
        """
        @param count: how many entries are stored (to choose a search plan).
        @param clock: seconds, for L{search}'s time budget.
        """
        self._database = database
        self._count = count
        self._clock = clock
        self.search_budget_s = search_budget_s

    def history(
        self,
        limit: int,
        visible_to: Optional[str] = None,
        exclude_authors: Iterable[str] = (),
    ) -> List[Entry]:
        """
        With C{visible_to}, two index walks in display order, newest first,
        each stopping after C{limit} rows that are shown: the chat rows
        (C{entries_chat}) and C{visible_to}'s own DMs (C{dm_parties}).
        Direct messages between others are never read, however many
        there are.  (Entries of excluded authors are skipped during the
        walks.)

        @param limit: how many entries to return at most.
        @param visible_to: if given, a node id: leave out direct messages
            that this node neither sent nor received, and C{cert} entries.
        @param exclude_authors: leave out the entries of these authors.
        @return: the last C{limit} entries in display order (by lamport,
            then author, then seq), oldest first.
        """
        if limit <= 0:
            return []
        excluded = sorted(set(exclude_authors))
        not_excluded = (
            f"AND author NOT IN ({', '.join('?' * len(excluded))}) " if excluded else ""
        )
        newest = "ORDER BY lamport DESC, author DESC, seq DESC LIMIT ?"
        if visible_to is None:
            where = f"WHERE 1 {not_excluded}"
            rows = self._database.query(
                f"SELECT {ENTRY_COLUMNS} FROM entries {where}{newest}",
                tuple(excluded) + (limit,),
            )
        else:
            rows = self._database.query(
                f"SELECT {ENTRY_COLUMNS} FROM entries INDEXED BY entries_chat "
                f"WHERE kind = 'chat' {not_excluded}{newest}",
                tuple(excluded) + (limit,),
            )
            rows += self._database.query(
                f"SELECT {ENTRY_COLUMNS} FROM entries WHERE rowid IN "
                f"(SELECT entry FROM dm_parties WHERE party = ? {not_excluded}"
                f"{newest})",
                (visible_to, *excluded, limit),
            )
            # author, seq identify an entry; lamport is the display key.
            rows.sort(key=lambda row: (row[3], row[0], row[1]), reverse=True)
            del rows[limit:]
        rows.reverse()
        return [row_to_entry(row) for row in rows]

    def attestations(self) -> List[Entry]:
        """
        @return: every C{cert} entry (name attestations), oldest first
            (through a partial index: cheap whatever the log's size).
        """
        rows = self._database.query(
            f"SELECT {ENTRY_COLUMNS} FROM entries WHERE kind = 'cert' ORDER BY rowid"
        )
        return [row_to_entry(row) for row in rows]

    def search(self, text: str, limit: int = 50) -> List[Entry]:
        """
        Find chat entries containing every word of C{text}.

        C{text} is plain words, never FTS5 syntax: each whitespace-separated
        token is matched as a quoted string (so C{AND}, C{*}, C{NEAR(} or
        quotes are just text) and all tokens must match.  Matching follows
        the FTS5 unicode61 tokenizer: case-insensitive, whole words.

        The cost is bounded: repeated words count once, at most
        L{MAX_SEARCH_TERMS} different words are taken, and the queries
        are abandoned (through SQLite's progress handler) once they have
        run for C{search_budget_s} by the store's clock.

        @param text: the words to look for.
        @param limit: how many entries to return at most.
        @return: the newest C{limit} matching chat entries in display
            order, oldest first; C{[]} if C{text} has no words.
        @raise SearchRefused: too many words, or over the time budget.
        """
        query = fts_query(text)
        if query is None or limit <= 0:
            return []
        db = self._database.conn
        deadline = self._clock() + self.search_budget_s
        over = []

        def check() -> int:
            if self._clock() > deadline:
                over.append(True)
                return 1  # SQLite aborts the statement: "interrupted"
            return 0

        db.set_progress_handler(check, _PROGRESS_STEPS)
        try:
            rowids = self._search_rowids(query, limit)
            rows = []
            for chunk in chunks(rowids):
                marks = ",".join("?" * len(chunk))
                rows.extend(
                    db.execute(
                        f"SELECT {ENTRY_COLUMNS} FROM entries "
                        f"WHERE rowid IN ({marks})",
                        chunk,
                    )
                )
        except sqlite3.Error as e:
            if over:
                raise SearchRefused(
                    f"search too broad: gave up after {self.search_budget_s:g} s; "
                    "add rarer words"
                ) from None
            raise StoreError(f"cannot search store {self._database.path}: {e}") from e
        finally:
            db.set_progress_handler(None, 0)
        entries = [row_to_entry(row) for row in rows]
        entries.sort(key=lambda e: (e.lamport, e.author, e.seq))
        return entries

    def _search_rowids(
        self, query: str, limit: int, strategy: Optional[str] = None
    ) -> List[int]:
        """
        Find the rowids of the newest C{limit} entries matching C{query}.

        Three plans give the same answer at different costs.  I{join} looks
        up every match in C{entries} and sorts: cheap for rare words.
        I{scan} collects the matches (inside SQLite) and walks the chat
        rows' display index (C{entries_chat}: DMs and certs are never
        read) backwards until it has met C{limit} of them: cheap for common
        words, since it reads about C{limit * count / matches} index rows.
        I{probe} walks the same index the same way but asks the
        full-text index about each row instead of collecting the matches:
        each row costs more, but memory stays constant however many
        entries match, and very common words need few rows.

        I{join} is used when C{matches ** 2 <= limit * count}, I{scan} when
        there are more matches but at most L{_SCAN_MAX_FACTOR} times the
        threshold C{isqrt(limit * count) + 1}, and I{probe} beyond that,
        unless C{strategy} forces a plan (for tests).  The choice counts
        matches only up to that bound, inside SQLite, and no chosen plan
        holds more matches than that in memory: a common word over a large
        store never loads every match.
        """
        if limit <= 0:
            return []
        if strategy is None:
            strategy = self._search_plan(query, limit)
            if strategy is None:
                return []
        display = "ORDER BY e.lamport DESC, e.author DESC, e.seq DESC LIMIT ?"
        if strategy == "join":
            sql = (
                "SELECT e.rowid FROM chat_fts "
                "JOIN entries AS e ON e.rowid = chat_fts.rowid "
                "WHERE chat_fts MATCH ? " + display
            )
        elif strategy == "scan":
            sql = (
                "SELECT e.rowid FROM entries AS e INDEXED BY entries_chat "
                "WHERE e.kind = 'chat' AND e.rowid IN "
                "(SELECT rowid FROM chat_fts WHERE chat_fts MATCH ?) " + display
            )
        elif strategy == "probe":
            sql = (
                "SELECT e.rowid FROM entries AS e INDEXED BY entries_chat "
                "WHERE e.kind = 'chat' AND EXISTS (SELECT 1 FROM chat_fts "
                "WHERE chat_fts MATCH ? AND chat_fts.rowid = e.rowid) " + display
            )
        else:
            raise ValueError(f"unknown search strategy {strategy!r}")
        return [row[0] for row in self._database.conn.execute(sql, (query, limit))]

    def _search_plan(self, query: str, limit: int) -> Optional[str]:
        """
        Choose the plan for L{_search_rowids} (see there) from a count of
        the matches that stops as soon as the choice is certain.

        @param limit: a positive number of entries wanted.
        @return: C{"join"}, C{"scan"} or C{"probe"}; C{None} if nothing
            matches C{query}.
        """
        threshold = math.isqrt(limit * self._count()) + 1
        most = min(threshold * _SCAN_MAX_FACTOR, SQLITE_MAX_INT - 1)
        (matches,) = self._database.conn.execute(
            "SELECT count(*) FROM (SELECT rowid FROM chat_fts "
            "WHERE chat_fts MATCH ? LIMIT ?)",
            (query, most + 1),
        ).fetchone()
        if not matches:
            return None
        # matches ** 2 > limit * count exactly when matches >= threshold.
        if matches < threshold:
            return "join"
        if matches <= most:
            return "scan"
        return "probe"

"""
SQLite persistence for log entries.

A L{Store} keeps every verified L{Entry} a node holds in one SQLite file,
opened in WAL mode with C{synchronous=FULL}.  The log is append-only: this
module never deletes or updates a stored entry.

Schema (version L{SCHEMA_VERSION}, recorded in C{PRAGMA user_version})::

    entries   rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,
              author, seq, prev, lamport, ts, kind,
              body (canonical JSON text), sig,
              UNIQUE(author, seq)
              index entries_display(lamport, author, seq)
    chat_fts  FTS5, contentless (content=''), column text: the text of
              every "chat" entry, rowid = entries.rowid.  dm bodies are
              ciphertext and are not indexed.
    feeds     author TEXT PRIMARY KEY, contiguous INTEGER: one row per
              author with any stored entry; the highest seq N such that
              the author's entries 1..N are all stored (0 if none).  A
              derived cache (it could be recomputed from entries) so that
              L{Store.version_vector} does not scan the whole log.
    meta      exactly one row: digest TEXT, count INTEGER
    dm_parties party, lamport, author, seq, entry (= entries.rowid),
              PRIMARY KEY (party, lamport, author, seq), WITHOUT ROWID:
              for each "dm" entry one row for its author and one for its
              recipient (body "to"), filled at insert (version 2; a
              version-1 store is filled from its entries on open), so
              L{Store.history} reads a node's own DMs in display order
              without looking at anyone else's.
              index entries_chat(lamport, author, seq) WHERE kind = 'chat':
              the chat rows alone, in display order.

The I{digest} of a set of entries is the sum, modulo 2**256, of
C{int(sha256(bytes.fromhex(entry.id)).hexdigest(), 16)} over its entries,
written as 64 hex digits.  Addition is commutative, so the digest depends
only on which entries are held, not on the order in which they arrived:
two nodes holding the same set print the same digest, and nodes holding
different sets print different ones with overwhelming probability.  (An
additive hash is not collision-resistant against someone who crafts
entries en masse, so the digest detects divergence; it proves nothing.)
It is maintained incrementally, in the same transaction that stores the
entries, together with the entry count.

Chain rules enforced by L{Store.add_entries}: at most one entry per
(author, seq) (a second, different one is a I{fork}); an entry whose
neighbour seq-1 is stored must name it as C{prev}, and an entry whose
neighbour seq+1 is stored must be that neighbour's C{prev}.  Gaps (a
missing seq-1) are allowed and filled later.
"""

import hashlib
import json
import math
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from p2pchat.log.entry import Entry, body_json

SCHEMA_VERSION = 2
DIGEST_MODULUS = 2**256
_EMPTY_DIGEST = "0" * 64
# Host parameters per "IN (...)" query; well below every SQLite limit.
_CHUNK = 400
_SQLITE_MIN_INT = -(2**63)
_SQLITE_MAX_INT = 2**63 - 1
# Store.search collects at most this many times isqrt(limit * count) + 1
# matching rowids (inside SQLite) before it switches to probing each row.
_SCAN_MAX_FACTOR = 16

# Store.search: at most this many different words per query (an FTS5 AND
# of hundreds of phrases over common words takes seconds), and at most this
# long (by the store's clock) inside SQLite per query before it gives up.
MAX_SEARCH_TERMS = 16
SEARCH_BUDGET_S = 0.2
# SQLite calls the budget check every this many virtual machine steps.
_PROGRESS_STEPS = 500

# Store.max_seq keeps at most this many authors' answers (it is asked
# before signatures are checked, so the authors may be made up).
_MAX_SEQS_KEPT = 65536

_ENTRY_COLUMNS = "author, seq, prev, lamport, ts, kind, body, sig, id"

_SCHEMA = [
    """
    CREATE TABLE IF NOT EXISTS block_events (
        rowid INTEGER PRIMARY KEY,
        author TEXT NOT NULL,
        blocked INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS entries (
        rowid INTEGER PRIMARY KEY,
        id TEXT UNIQUE NOT NULL,
        author TEXT NOT NULL,
        seq INTEGER NOT NULL,
        prev TEXT,
        lamport INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        sig TEXT NOT NULL,
        UNIQUE (author, seq)
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS entries_display
        ON entries (lamport, author, seq)
    """,
    """
    CREATE VIRTUAL TABLE IF NOT EXISTS chat_fts
        USING fts5(text, content='')
    """,
    """
    CREATE TABLE IF NOT EXISTS feeds (
        author TEXT PRIMARY KEY,
        contiguous INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS meta (
        only INTEGER PRIMARY KEY CHECK (only = 0),
        digest TEXT NOT NULL,
        count INTEGER NOT NULL
    )
    """,
    f"""
    INSERT OR IGNORE INTO meta (only, digest, count)
        VALUES (0, '{_EMPTY_DIGEST}', 0)
    """,
    """
    CREATE INDEX IF NOT EXISTS entries_cert ON entries (rowid) WHERE kind = 'cert'
    """,
    # Version 2: history reads chat and this node's DMs through these,
    # never scanning the DMs of others.
    """
    CREATE INDEX IF NOT EXISTS entries_chat
        ON entries (lamport, author, seq) WHERE kind = 'chat'
    """,
    """
    CREATE TABLE IF NOT EXISTS dm_parties (
        party TEXT NOT NULL,
        lamport INTEGER NOT NULL,
        author TEXT NOT NULL,
        seq INTEGER NOT NULL,
        entry INTEGER NOT NULL,
        PRIMARY KEY (party, lamport, author, seq)
    ) WITHOUT ROWID
    """,
    # Fill it from a version-1 store's entries (nothing to do when new).
    """
    INSERT OR IGNORE INTO dm_parties (party, lamport, author, seq, entry)
        SELECT author, lamport, author, seq, rowid FROM entries WHERE kind = 'dm'
        UNION ALL
        SELECT json_extract(body, '$.to'), lamport, author, seq, rowid
            FROM entries WHERE kind = 'dm'
    """,
]


class StoreError(Exception):
    """
    The store could not be opened, or a database operation failed;
    C{str(error)} says what and why.
    """


class SearchRefused(ValueError):
    """
    A search was not run, or was abandoned, because it is too broad:
    too many words, or over its time budget.  C{str(error)} says which,
    in words fit for the user.
    """


@dataclass
class AddResult:
    """
    The outcome of one L{Store.add_entries} call.

    @ivar added: the entries that were stored, in input order.
    @ivar duplicates: how many input entries were already stored (or
        appeared earlier in the same batch) and were skipped.
    @ivar forks: C{(new_entry, existing_id)} for each input entry that was
        not stored because a different entry with the same author and seq
        is stored (or was added earlier in the same batch);
        C{existing_id} is that entry's id.
    @ivar rejected: C{(entry, reason)} for each input entry that was not
        stored because it does not link to its stored neighbours.
    @ivar contiguous: for the author of every added entry, its
        L{Store.contiguous_seq} once the batch is stored.  Not part of
        equality: it follows from what was added.
    """

    added: List[Entry] = field(default_factory=list)
    duplicates: int = 0
    forks: List[Tuple[Entry, str]] = field(default_factory=list)
    rejected: List[Tuple[Entry, str]] = field(default_factory=list)
    contiguous: Dict[str, int] = field(default_factory=dict, compare=False)


def entry_digest(entry_id: str) -> int:
    """
    @param entry_id: an entry id, 64 hex digits.
    @return: the contribution of that entry to a store's digest:
        C{int(sha256(bytes.fromhex(entry_id)).hexdigest(), 16)}.
    """
    return int.from_bytes(hashlib.sha256(bytes.fromhex(entry_id)).digest(), "big")


def _fts_query(text: str) -> Optional[str]:
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


def _row_to_entry(row: tuple) -> Entry:
    author, seq, prev, lamport, ts, kind, body, sig, entry_id = row
    return Entry(
        author=author,
        seq=seq,
        prev=prev,
        lamport=lamport,
        ts=ts,
        kind=kind,
        body=json.loads(body),
        sig=sig,
        id=entry_id,
    )


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Store:
    """
    The SQLite file that holds a node's copy of the log.

    Construct with a path, then call L{open} before anything else and
    L{close} when done.  All methods are synchronous and quick enough to
    call from the reactor thread.

    @ivar path: the database file name (or C{":memory:"}).
    """

    def __init__(
        self,
        path: str,
        clock: Callable[[], float] = time.monotonic,
        search_budget_s: float = SEARCH_BUDGET_S,
    ):
        """
        @param path: the database file; created by L{open} if absent.  No
            I/O happens here.
        @param clock: seconds, for L{search}'s time budget.
        @param search_budget_s: how long one L{search} may run inside
            SQLite before it is abandoned.
        """
        self.path = path
        self._clock = clock
        self.search_budget_s = search_budget_s
        self._db: Optional[sqlite3.Connection] = None
        # author -> highest stored seq, for the authors asked about (see
        # max_seq); brought up to date by add_entries after each commit.
        self._max_seqs: Dict[str, int] = {}
        # The stored entry count, once read; kept by add_entries.
        self._count: Optional[int] = None

    # -- lifecycle ---------------------------------------------------------

    def open(self) -> None:
        """
        Connect, enable WAL and full sync, check that FTS5 is available and
        create the schema if the file is new.

        @raise StoreError: if the file cannot be opened, is not a database,
            was written by a newer schema version, cannot use WAL mode, or
            this SQLite lacks FTS5.
        """
        if self._db is not None:
            raise StoreError(f"store {self.path} is already open")
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open store {self.path}: {e}") from e
        try:
            self._configure(db)
        except StoreError:
            db.close()
            raise
        except sqlite3.Error as e:
            db.close()
            raise StoreError(f"cannot open store {self.path}: {e}") from e
        self._max_seqs = {}
        self._count = None
        self._db = db

    def _configure(self, db: sqlite3.Connection) -> None:
        (mode,) = db.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode.lower() != "wal" and self.path != ":memory:":
            raise StoreError(
                f"cannot open store {self.path}: WAL mode unavailable (got {mode})"
            )
        db.execute("PRAGMA synchronous=FULL")
        if not self._has_fts5(db):
            raise StoreError("this SQLite build lacks the FTS5 extension")
        db.execute("BEGIN IMMEDIATE")
        try:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.path} has schema version {version}; "
                    f"this program understands up to {SCHEMA_VERSION}"
                )
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @staticmethod
    def _has_fts5(db: sqlite3.Connection) -> bool:
        try:
            rows = db.execute(
                "SELECT 1 FROM pragma_module_list WHERE name = 'fts5'"
            ).fetchall()
            return bool(rows)
        except sqlite3.OperationalError:
            pass
        # Built without introspection pragmas: probe directly.
        try:
            db.execute("CREATE VIRTUAL TABLE temp.fts5_probe USING fts5(x)")
        except sqlite3.OperationalError:
            return False
        db.execute("DROP TABLE temp.fts5_probe")
        return True

    def close(self) -> None:
        """
        Close the database.  Harmless if not open.
        """
        if self._db is not None:
            self._db.close()
            self._db = None
        self._max_seqs = {}
        self._count = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"store {self.path} is not open")
        return self._db

    # -- writing -----------------------------------------------------------

    def add_entries(self, entries: List[Entry]) -> AddResult:
        """
        Store a batch of verified entries in one transaction.

        Each entry, in order, is either skipped as a duplicate (its id is
        stored or appeared earlier in the batch), reported as a fork
        (another entry with its author and seq is stored or was added
        earlier in the batch), rejected (the stored seq-1 is not its
        C{prev}, or the stored seq+1 does not name it as C{prev}), or
        stored.  Entries of the batch see each other, so one batch may
        carry a whole chain.  The digest, count and version vector are
        updated in the same transaction.

        @param entries: entries that already passed
            L{p2pchat.log.entry.decode_entry} or came from
            L{p2pchat.log.entry.create_entry}; their signatures are not checked
            again.
        @return: an L{AddResult} describing what happened to each entry.
        @raise StoreError: if the database fails; then nothing of the batch
            is stored.
        """
        db = self._conn
        result = AddResult()
        if not entries:
            return result
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to store {self.path}: {e}") from e
        try:
            self._add(db, entries, result)
            db.execute("COMMIT")
        except BaseException as e:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(e, sqlite3.Error):
                raise StoreError(f"cannot write to store {self.path}: {e}") from e
            raise
        if self._count is not None:
            self._count += len(result.added)
        max_seqs = self._max_seqs
        for entry in result.added:
            known = max_seqs.get(entry.author)
            if known is not None and entry.seq > known:
                max_seqs[entry.author] = entry.seq
        return result

    def _add(
        self, db: sqlite3.Connection, entries: List[Entry], result: AddResult
    ) -> None:
        # Which ids are already stored.  An entry above its author's
        # highest stored seq is not (its id fixes its author and seq).
        ids = list(
            {entry.id for entry in entries if entry.seq <= self.max_seq(entry.author)}
        )
        stored_ids = set()
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            stored_ids.update(
                row[0]
                for row in db.execute(
                    f"SELECT id FROM entries WHERE id IN ({marks})", chunk
                )
            )

        # Stored neighbours (seq-1, seq, seq+1) of every new entry, by author.
        wanted: Dict[str, set] = {}
        for entry in entries:
            if entry.id not in stored_ids:
                wanted.setdefault(entry.author, set()).update(
                    (entry.seq - 1, entry.seq, entry.seq + 1)
                )
        # (author, seq) -> (id, prev), stored or accepted in this batch.
        chain: Dict[Tuple[str, int], Tuple[str, Optional[str]]] = {}
        for author, seqs in wanted.items():
            for chunk in _chunks(sorted(seqs)):
                marks = ",".join("?" * len(chunk))
                for seq, entry_id, prev in db.execute(
                    f"SELECT seq, id, prev FROM entries "
                    f"WHERE author = ? AND seq IN ({marks})",
                    [author, *chunk],
                ):
                    chain[(author, seq)] = (entry_id, prev)

        seen = set(stored_ids)
        for entry in entries:
            if entry.id in seen:
                result.duplicates += 1
                continue
            same = chain.get((entry.author, entry.seq))
            if same is not None:
                result.forks.append((entry, same[0]))
                continue
            before = chain.get((entry.author, entry.seq - 1))
            if before is not None and before[0] != entry.prev:
                result.rejected.append(
                    (
                        entry,
                        f"prev does not match stored seq {entry.seq - 1} "
                        f"(id {before[0]})",
                    )
                )
                continue
            after = chain.get((entry.author, entry.seq + 1))
            if after is not None and after[1] != entry.id:
                result.rejected.append(
                    (
                        entry,
                        f"stored seq {entry.seq + 1} (id {after[0]}) "
                        f"links to a different prev {after[1]}",
                    )
                )
                continue
            seen.add(entry.id)
            chain[(entry.author, entry.seq)] = (entry.id, entry.prev)
            result.added.append(entry)

        added = result.added
        if not added:
            return

        (last_rowid,) = db.execute(
            "SELECT COALESCE(MAX(rowid), 0) FROM entries"
        ).fetchone()
        rows = []
        texts = []
        parties = []
        for rowid, entry in enumerate(added, last_rowid + 1):
            rows.append(
                (
                    rowid,
                    entry.id,
                    entry.author,
                    entry.seq,
                    entry.prev,
                    entry.lamport,
                    entry.ts,
                    entry.kind,
                    body_json(entry.body),
                    entry.sig,
                )
            )
            if entry.kind == "chat":
                texts.append((rowid, entry.body["text"]))
            elif entry.kind == "dm":
                for party in {entry.author, entry.body["to"]}:
                    parties.append((party, entry.lamport, entry.author, entry.seq, rowid))
        db.executemany(
            "INSERT INTO entries (rowid, id, author, seq, prev, lamport, ts, "
            "kind, body, sig) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        if texts:
            db.executemany("INSERT INTO chat_fts (rowid, text) VALUES (?, ?)", texts)
        if parties:
            db.executemany(
                "INSERT INTO dm_parties (party, lamport, author, seq, entry) "
                "VALUES (?, ?, ?, ?, ?)",
                parties,
            )

        digest, count = db.execute("SELECT digest, count FROM meta").fetchone()
        total = int(digest, 16)
        for entry in added:
            total += entry_digest(entry.id)
        db.execute(
            "UPDATE meta SET digest = ?, count = ?",
            (f"{total % DIGEST_MODULUS:064x}", count + len(added)),
        )

        # Advance each touched author's contiguous prefix.
        feeds = []
        for author in {entry.author for entry in added}:
            start = self._contiguous_cached(db, author)
            contiguous = start or 0
            for (seq,) in db.execute(
                "SELECT seq FROM entries WHERE author = ? AND seq > ? ORDER BY seq",
                (author, contiguous),
            ):
                if seq != contiguous + 1:
                    break
                contiguous = seq
            if contiguous != start:  # also when the author is new (start None)
                feeds.append((author, contiguous))
            result.contiguous[author] = contiguous
        if feeds:
            db.executemany(
                "INSERT INTO feeds (author, contiguous) VALUES (?, ?) "
                "ON CONFLICT (author) DO UPDATE SET contiguous = excluded.contiguous",
                feeds,
            )

    @staticmethod
    def _contiguous_cached(db: sqlite3.Connection, author: str) -> Optional[int]:
        row = db.execute(
            "SELECT contiguous FROM feeds WHERE author = ?", (author,)
        ).fetchone()
        return row[0] if row else None

    # -- reading -----------------------------------------------------------

    def _query(self, sql: str, params: tuple = ()) -> List[tuple]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"cannot read store {self.path}: {e}") from e

    def digest(self) -> str:
        """
        @return: the digest of the stored set of entries, 64 hex digits
            (see the module docstring); all zeros when empty.
        """
        return self._query("SELECT digest FROM meta")[0][0]

    def count(self) -> int:
        """
        Read once per open, then kept up to date by L{add_entries}.

        @return: how many entries are stored.
        """
        if self._count is None:
            self._count = self._query("SELECT count FROM meta")[0][0]
        return self._count

    def max_lamport(self, at_most: Optional[int] = None) -> int:
        """
        One seek in the C{entries_display} index, whatever the store's size.

        @param at_most: if given, consider only entries whose Lamport time
            is at most this.
        @return: the highest Lamport time of any stored entry (that is at
            most C{at_most}, if given), or 0 when there is none.
        """
        if at_most is None:
            return self._query("SELECT COALESCE(MAX(lamport), 0) FROM entries")[0][0]
        # SQLite integers are 64-bit; clamping keeps the comparison exact.
        bound = min(max(at_most, _SQLITE_MIN_INT), _SQLITE_MAX_INT)
        return self._query(
            "SELECT COALESCE(MAX(lamport), 0) FROM entries WHERE lamport <= ?",
            (bound,),
        )[0][0]

    def has(self, entry_id: str) -> bool:
        """
        @param entry_id: an entry id, 64 hex digits.
        @return: whether that entry is stored.
        """
        return bool(self._query("SELECT 1 FROM entries WHERE id = ?", (entry_id,)))

    def get(self, entry_id: str) -> Optional[Entry]:
        """
        @param entry_id: an entry id, 64 hex digits.
        @return: the stored L{Entry} with that id, or C{None}.
        """
        rows = self._query(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE id = ?", (entry_id,)
        )
        return _row_to_entry(rows[0]) if rows else None

    def head(self, author: str) -> Optional[Tuple[int, str]]:
        """
        @param author: a node id.
        @return: C{(seq, id)} of the author's stored entry with the highest
            seq, or C{None} if none of its entries is stored.  There may be
            gaps below it: see L{contiguous_seq}.
        """
        rows = self._query(
            "SELECT seq, id FROM entries WHERE author = ? ORDER BY seq DESC LIMIT 1",
            (author,),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def max_seq(self, author: str) -> int:
        """
        No stored entry of C{author} has a greater seq, so an entry of
        C{author} with a greater seq is certainly not stored: a receiver
        checks that first, without a query, before asking L{has}.  The
        answer is kept per author after the first query.

        @param author: a node id.
        @return: the highest seq of the author's stored entries, 0 if none.
        """
        known = self._max_seqs.get(author)
        if known is None:
            head = self.head(author)
            known = head[0] if head else 0
            if len(self._max_seqs) >= _MAX_SEQS_KEPT:
                self._max_seqs.clear()
            self._max_seqs[author] = known
        return known

    def contiguous_seq(self, author: str) -> int:
        """
        @param author: a node id.
        @return: the highest N such that the author's entries 1..N are all
            stored; 0 if seq 1 is not stored.
        """
        rows = self._query(
            "SELECT contiguous FROM feeds WHERE author = ?", (author,)
        )
        return rows[0][0] if rows else 0

    def heads(self) -> Dict[str, int]:
        """
        @return: C{{author: highest stored seq}} for every author, gaps or
            not (one query over the C{(author, seq)} index).
        """
        return dict(self._query("SELECT author, MAX(seq) FROM entries GROUP BY author"))

    def version_vector(self) -> Dict[str, int]:
        """
        @return: C{{author: contiguous_seq(author)}} for every author with
            at least one stored entry (0 for those whose seq 1 is missing).
        """
        return dict(self._query("SELECT author, contiguous FROM feeds"))

    def feeds_page(
        self, after: Optional[str], limit: int, upto: Optional[str] = None
    ) -> List[Tuple[str, int, int]]:
        """
        One page of the version vector, for paged summaries: a range scan
        of the C{feeds} primary key plus one index seek per author, so the
        cost is bounded by C{limit}, whatever the number of authors.

        @param after: only authors greater than this (C{None}: from the
            first).
        @param limit: at most this many authors.
        @param upto: if given, only authors at most this.
        @return: C{(author, contiguous, head)} for those authors, ascending
            by author: the contiguous seq (see L{contiguous_seq}) and the
            highest stored seq.
        """
        return [
            tuple(row)
            for row in self._query(
                "SELECT author, contiguous, "
                "(SELECT MAX(seq) FROM entries WHERE entries.author = feeds.author) "
                "FROM feeds WHERE author > ? AND author <= ? ORDER BY author LIMIT ?",
                (after or "", upto if upto is not None else "\uffff", limit),
            )
        ]

    def entries_after(self, author: str, seq: int, limit: int) -> List[Entry]:
        """
        @param author: a node id.
        @param seq: return only entries with a greater seq.
        @param limit: return at most this many entries.
        @return: the author's stored entries with seq greater than C{seq},
            ascending by seq, at most C{limit} of them.  May skip gaps.
        """
        if limit <= 0:
            return []
        rows = self._query(
            f"SELECT {_ENTRY_COLUMNS} FROM entries "
            "WHERE author = ? AND seq > ? ORDER BY seq LIMIT ?",
            (author, seq, limit),
        )
        return [_row_to_entry(row) for row in rows]

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
            rows = self._query(
                f"SELECT {_ENTRY_COLUMNS} FROM entries {where}{newest}",
                tuple(excluded) + (limit,),
            )
        else:
            rows = self._query(
                f"SELECT {_ENTRY_COLUMNS} FROM entries INDEXED BY entries_chat "
                f"WHERE kind = 'chat' {not_excluded}{newest}",
                tuple(excluded) + (limit,),
            )
            rows += self._query(
                f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE rowid IN "
                f"(SELECT entry FROM dm_parties WHERE party = ? {not_excluded}"
                f"{newest})",
                (visible_to, *excluded, limit),
            )
            # author, seq identify an entry; lamport is the display key.
            rows.sort(key=lambda row: (row[3], row[0], row[1]), reverse=True)
            del rows[limit:]
        rows.reverse()
        return [_row_to_entry(row) for row in rows]

    def attestations(self) -> List[Entry]:
        """
        @return: every C{cert} entry (name attestations), oldest first
            (through a partial index: cheap whatever the log's size).
        """
        rows = self._query(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE kind = 'cert' ORDER BY rowid"
        )
        return [_row_to_entry(row) for row in rows]

    def blocked(self) -> List[str]:
        """
        @return: the authors this node's user blocked (a local preference,
            not part of the replicated log, kept as append-only block and
            unblock events: the last one for an author wins).
        """
        rows = self._query(
            "SELECT author FROM block_events AS e "
            "WHERE blocked = 1 AND rowid = "
            "(SELECT max(rowid) FROM block_events WHERE author = e.author) "
            "ORDER BY author"
        )
        return [row[0] for row in rows]

    def block(self, author: str) -> None:
        """
        Remember that the user blocked C{author}.
        """
        self._write("INSERT INTO block_events (author, blocked) VALUES (?, 1)", (author,))

    def unblock(self, author: str) -> None:
        """
        Forget that the user blocked C{author}.
        """
        self._write("INSERT INTO block_events (author, blocked) VALUES (?, 0)", (author,))

    def _write(self, sql: str, params: tuple) -> None:
        try:
            self._conn.execute(sql, params)
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to store {self.path}: {e}") from None

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
        query = _fts_query(text)
        if query is None or limit <= 0:
            return []
        db = self._conn
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
            for chunk in _chunks(rowids):
                marks = ",".join("?" * len(chunk))
                rows.extend(
                    db.execute(
                        f"SELECT {_ENTRY_COLUMNS} FROM entries "
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
            raise StoreError(f"cannot search store {self.path}: {e}") from e
        finally:
            db.set_progress_handler(None, 0)
        entries = [_row_to_entry(row) for row in rows]
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
        return [row[0] for row in self._conn.execute(sql, (query, limit))]

    def _search_plan(self, query: str, limit: int) -> Optional[str]:
        """
        Choose the plan for L{_search_rowids} (see there) from a count of
        the matches that stops as soon as the choice is certain.

        @param limit: a positive number of entries wanted.
        @return: C{"join"}, C{"scan"} or C{"probe"}; C{None} if nothing
            matches C{query}.
        """
        threshold = math.isqrt(limit * self.count()) + 1
        most = min(threshold * _SCAN_MAX_FACTOR, _SQLITE_MAX_INT - 1)
        (matches,) = self._conn.execute(
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

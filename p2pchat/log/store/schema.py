# -*- test-case-name: tests.unit.test_store -*-
"""
The store's SQLite file: its schema, its migration and how it is opened.

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
              a summary page (L{EntryLog.feeds_page}) does not scan the
              whole log.
    meta      exactly one row: digest TEXT, count INTEGER
    dm_parties party, lamport, author, seq, entry (= entries.rowid),
              PRIMARY KEY (party, lamport, author, seq), WITHOUT ROWID:
              for each "dm" entry one row for its author and one for its
              recipient (body "to"), filled at insert (version 2; a
              version-1 store is filled from its entries on open), so
              history reads a node's own DMs in display order without
              looking at anyone else's.
              index entries_chat(lamport, author, seq) WHERE kind = 'chat':
              the chat rows alone, in display order.
    block_events rowid, author, blocked: the local block list (not part
              of the log), append-only.

Version 3 (rooms, L{p2pchat.log.rooms}; a version-2 store is upgraded in
place when opened: one column added, two indexes built)::

    entries.room  the room of a room message or room entry; NULL for
              #lobby messages (chat without a room), dm and cert
              index entries_room(room, lamport, author, seq)
                  WHERE room IS NOT NULL: one room's history
              index entries_lobby(lamport, author, seq)
                  WHERE kind = 'chat' AND room IS NULL: #lobby's history
                  (replaces entries_chat, which also held room messages)
    chat_fts  now the text of #lobby messages only
    room_fts  FTS5, contentless, columns text and room: the text of every
              room message, and its room as one token (L{room_token}),
              rowid = entries.rowid
    room_counts room TEXT PRIMARY KEY, messages: messages per room,
              #lobby too (a derived cache, like feeds)
    room_members room, author, joined, lamport, seq, PRIMARY KEY (room,
              author), WITHOUT ROWID; index room_members_author(author,
              room): each author's last word on each room (a C{room.join}
              or C{room.part}; the last in display order wins, whatever
              order they arrive in), kept by L{index_room_entries}
    room_topics room PRIMARY KEY, lamport, author, seq, entry (=
              entries.rowid), WITHOUT ROWID: each room's topic entry, the
              last C{room.topic} in display order
    room_reads room TEXT PRIMARY KEY, seen: the local user's read
              position in each room, an entries rowid (not part of the log)
    settings  key TEXT PRIMARY KEY, value: local preferences (the current
              room), not part of the log

The file is opened in WAL mode with C{synchronous=FULL} (batches of
entries received from peers commit with C{NORMAL}: see
L{p2pchat.log.store.core.Store.add_entries}).
"""

import json
import sqlite3
from typing import Dict, Iterable, List, Optional

from p2pchat.log.entry import Entry

SCHEMA_VERSION = 3
EMPTY_DIGEST = "0" * 64
# Host parameters per "IN (...)" query; well below every SQLite limit.
CHUNK = 400
SQLITE_MIN_INT = -(2**63)
SQLITE_MAX_INT = 2**63 - 1
# The columns of an entries row, in the order row_to_entry reads them.
ENTRY_COLUMNS = "author, seq, prev, lamport, ts, kind, body, sig, id"

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
        VALUES (0, '{EMPTY_DIGEST}', 0)
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


# Version 3: rooms.  Run after _SCHEMA, once the room column exists.
_ROOM_SCHEMA = [
    """
    CREATE INDEX IF NOT EXISTS entries_room
        ON entries (room, lamport, author, seq) WHERE room IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS entries_lobby
        ON entries (lamport, author, seq) WHERE kind = 'chat' AND room IS NULL
    """,
    "DROP INDEX IF EXISTS entries_chat",
    """
    CREATE VIRTUAL TABLE IF NOT EXISTS room_fts
        USING fts5(text, room, content='')
    """,
    """
    CREATE TABLE IF NOT EXISTS room_counts (
        room TEXT PRIMARY KEY,
        messages INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    # #lobby's messages, counted once when a version-2 store is upgraded.
    """
    INSERT OR IGNORE INTO room_counts (room, messages)
        SELECT '#lobby', count(*) FROM entries WHERE kind = 'chat' AND room IS NULL
    """,
    """
    CREATE TABLE IF NOT EXISTS room_members (
        room TEXT NOT NULL,
        author TEXT NOT NULL,
        joined INTEGER NOT NULL,
        lamport INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (room, author)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX IF NOT EXISTS room_members_author ON room_members (author, room)",
    """
    CREATE TABLE IF NOT EXISTS room_topics (
        room TEXT PRIMARY KEY,
        lamport INTEGER NOT NULL,
        author TEXT NOT NULL,
        seq INTEGER NOT NULL,
        entry INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS room_reads (
        room TEXT PRIMARY KEY,
        seen INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID
    """,
]


def room_token(room: str) -> str:
    """
    @return: the one FTS5 token that stands for C{room} in C{room_fts}:
        C{r} and the hex digits of its name after C{#} (the tokenizer
        would split the name itself at C{-} and C{.}).
    """
    return "r" + room[1:].encode("ascii").hex()


class StoreError(Exception):
    """
    The store could not be opened, or a database operation failed;
    C{str(error)} says what and why.
    """


class Database:
    """
    One store file's connection, shared by the store's rooms
    (L{p2pchat.log.store.log}, L{p2pchat.log.store.search},
    L{p2pchat.log.store.blocks}): opening, closing, and queries whose
    SQLite errors become L{StoreError}s naming the file.

    @ivar path: the database file name (or C{":memory:"}).
    """

    def __init__(self, path: str):
        self.path = path
        self._db: Optional[sqlite3.Connection] = None

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def open(self) -> None:
        """
        Connect, enable WAL and full sync, check that FTS5 is available and
        create (or migrate to) the schema.

        Only when not open (L{p2pchat.log.store.core.Store.open} checks).

        @raise StoreError: if the file cannot be opened, is not a database,
            was written by a newer schema version, cannot use WAL mode, or
            this SQLite lacks FTS5.
        """
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
        self._db = db

    def _configure(self, db: sqlite3.Connection) -> None:
        (mode,) = db.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode.lower() != "wal" and self.path != ":memory:":
            raise StoreError(
                f"cannot open store {self.path}: WAL mode unavailable (got {mode})"
            )
        db.execute("PRAGMA synchronous=FULL")
        if not _has_fts5(db):
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
                columns = [row[1] for row in db.execute("PRAGMA table_info(entries)")]
                if "room" not in columns:
                    db.execute("ALTER TABLE entries ADD COLUMN room TEXT")
                for statement in _ROOM_SCHEMA:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """
        Close the connection.  Harmless if not open.
        """
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def conn(self) -> sqlite3.Connection:
        """
        @raise StoreError: if not open.
        """
        if self._db is None:
            raise StoreError(f"store {self.path} is not open")
        return self._db

    def query(self, sql: str, params: tuple = ()) -> List[tuple]:
        """
        @return: all rows of one read.
        @raise StoreError: if the database fails.
        """
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"cannot read store {self.path}: {e}") from e

    def write(self, sql: str, params: tuple) -> None:
        """
        Run one writing statement (in its own transaction).

        @raise StoreError: if the database fails.
        """
        try:
            self.conn.execute(sql, params)
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to store {self.path}: {e}") from None


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


def index_room_messages(db: sqlite3.Connection, messages: List[tuple]) -> None:
    """
    Index room messages being stored: their text and room in C{room_fts},
    and one more message for each room in C{room_counts}.

    @param messages: C{(rowid, text, room_token(room), room)} each.
    """
    db.executemany(
        "INSERT INTO room_fts (rowid, text, room) VALUES (?, ?, ?)",
        [message[:3] for message in messages],
    )
    counts: Dict[str, int] = {}
    for message in messages:
        counts[message[3]] = counts.get(message[3], 0) + 1
    count_messages(db, counts)


def index_room_entries(db: sqlite3.Connection, added: List[tuple]) -> None:
    """
    Keep C{room_members} and C{room_topics} for room entries being
    stored: an entry replaces what is known only if it comes later in
    display order (Lamport time, author, seq), so the outcome does not
    depend on the order entries arrive in.

    @param added: C{(rowid, entry)} for each C{room.join}, C{room.part}
        and C{room.topic} entry.
    """
    members = [
        (e.body["room"], e.author, int(e.kind == "room.join"), e.lamport, e.seq)
        for _, e in added if e.kind != "room.topic"
    ]
    db.executemany(
        "INSERT INTO room_members (room, author, joined, lamport, seq) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (room, author) DO UPDATE SET joined = excluded.joined, "
        "lamport = excluded.lamport, seq = excluded.seq "
        "WHERE (excluded.lamport, excluded.seq) > (room_members.lamport, room_members.seq)",
        members,
    )
    topics = [
        (e.body["room"], e.lamport, e.author, e.seq, rowid)
        for rowid, e in added if e.kind == "room.topic"
    ]
    db.executemany(
        "INSERT INTO room_topics (room, lamport, author, seq, entry) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (room) DO UPDATE SET lamport = excluded.lamport, "
        "author = excluded.author, seq = excluded.seq, entry = excluded.entry "
        "WHERE (excluded.lamport, excluded.author, excluded.seq) > "
        "(room_topics.lamport, room_topics.author, room_topics.seq)",
        topics,
    )


def count_messages(db: sqlite3.Connection, counts: Dict[str, int]) -> None:
    """
    Add C{counts} (room -> messages being stored) to C{room_counts}.
    """
    db.executemany(
        "INSERT INTO room_counts (room, messages) VALUES (?, ?) ON CONFLICT (room) "
        "DO UPDATE SET messages = messages + excluded.messages",
        list(counts.items()),
    )


def row_to_entry(row: tuple) -> Entry:
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


def chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

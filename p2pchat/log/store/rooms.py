# -*- test-case-name: tests.unit.test_store_rooms -*-
"""
Reading the store by room: one room's history and search, its members
and topic (derived tables kept as room entries are stored, see
L{p2pchat.log.store.schema.index_room_entries}), the rooms with most
messages, and the local user's read positions and current room (local state, not part of the log,
kept in the store's file like the block list).

Each read walks one room's rows only (the C{entries_room} index, and the
room's token in C{room_fts}: see L{p2pchat.log.store.schema}), so its cost
follows the size of the room, not of the log.  #lobby (L{LOBBY}) is read
by L{p2pchat.log.store.search}, since its messages have no room column.
"""

import math
import sqlite3
from typing import Callable, Iterable, List, Optional, Tuple

from p2pchat.log.entry import Entry
from p2pchat.log.rooms import LOBBY
from p2pchat.log.store.schema import (
    ENTRY_COLUMNS,
    Database,
    StoreError,
    chunks,
    room_token,
    row_to_entry,
)
from p2pchat.log.store.search import SearchRefused, fts_query

# RoomIndex.unread counts at most this many new messages per room.
MAX_UNREAD = 9999
# RoomIndex.search checks its time budget every this many SQLite steps.
_PROGRESS_STEPS = 500
_NEWEST = "ORDER BY lamport DESC, author DESC, seq DESC LIMIT ?"


class RoomIndex:
    """
    Rooms in one store's L{Database}; see the module docstring.
    """

    def __init__(
        self,
        database: Database,
        clock: Callable[[], float],
        search_budget_s: Callable[[], float],
    ):
        """
        @param clock: seconds, for L{search}'s time budget.
        @param search_budget_s: how long one L{search} may run inside
            SQLite (asked at each search: the store's own setting).
        """
        self._database = database
        self._clock = clock
        self._search_budget_s = search_budget_s

    def history(
        self, room: str, limit: int, exclude_authors: Iterable[str] = ()
    ) -> List[Entry]:
        """
        @param room: a room other than L{LOBBY}, in its wire form.
        @return: the last C{limit} entries of C{room} (messages, joins,
            parts, topics) in display order, oldest first, leaving out
            those of C{exclude_authors}.
        """
        if limit <= 0:
            return []
        excluded = sorted(set(exclude_authors))
        not_excluded = (
            f"AND author NOT IN ({', '.join('?' * len(excluded))}) " if excluded else ""
        )
        rows = self._database.query(
            f"SELECT {ENTRY_COLUMNS} FROM entries INDEXED BY entries_room "
            f"WHERE room = ? {not_excluded}{_NEWEST}",
            (room, *excluded, limit),
        )
        rows.reverse()
        return [row_to_entry(row) for row in rows]

    def is_member(self, room: str, author: str) -> bool:
        """
        @return: whether C{author}'s last word on C{room} is a join.
        """
        rows = self._database.query(
            "SELECT joined FROM room_members WHERE room = ? AND author = ?", (room, author)
        )
        return bool(rows and rows[0][0])

    def members(self, room: str) -> List[str]:
        """
        @return: the authors in C{room}, sorted.
        """
        rows = self._database.query(
            "SELECT author FROM room_members WHERE room = ? AND joined = 1 ORDER BY author",
            (room,),
        )
        return [row[0] for row in rows]

    def rooms_of(self, author: str) -> List[str]:
        """
        @return: the rooms C{author} is in, sorted.
        """
        rows = self._database.query(
            "SELECT room FROM room_members INDEXED BY room_members_author "
            "WHERE author = ? AND joined = 1 ORDER BY room",
            (author,),
        )
        return [row[0] for row in rows]

    def topic(self, room: str) -> Optional[Entry]:
        """
        @return: the C{room.topic} entry that sets C{room}'s topic, or
            C{None}.
        """
        rows = self._database.query(
            f"SELECT {ENTRY_COLUMNS} FROM entries WHERE rowid = "
            "(SELECT entry FROM room_topics WHERE room = ?)",
            (room,),
        )
        return row_to_entry(rows[0]) if rows else None

    def busiest(self, limit: int) -> List[str]:
        """
        @return: at most C{limit} rooms other than #lobby: those with the
            most messages, then (if fewer) rooms that only have members or
            a topic, by name.
        """
        rooms = [row[0] for row in self._database.query(
            "SELECT room FROM room_counts WHERE room != ? ORDER BY messages DESC, room LIMIT ?",
            (LOBBY, limit),
        )]
        if len(rooms) < limit:
            known = set(rooms)
            for (room,) in self._database.query(
                "SELECT room FROM room_members UNION SELECT room FROM room_topics "
                "ORDER BY room LIMIT ?", (limit,)
            ):
                if room not in known and len(rooms) < limit:
                    rooms.append(room)
        return rooms

    def search(self, room: str, text: str, limit: int = 50) -> List[Entry]:
        """
        Find the messages of C{room} containing every word of C{text}, as
        L{p2pchat.log.store.search.LogSearch.search} does for #lobby: plain
        words, at most L{p2pchat.log.store.search.MAX_SEARCH_TERMS}, and
        abandoned past the store's time budget.

        Plans: when fewer than C{isqrt(limit * room size) + 1} messages
        match, each is looked up and sorted (I{join}); otherwise the room's
        index is walked newest first, asking the full-text index about
        each row (I{probe}), until C{limit} match.  Both stay inside the
        room; neither holds more than the threshold of matches in memory.

        @param room: a room other than L{LOBBY}, in its wire form.
        @return: the newest C{limit} matches, oldest first.
        @raise SearchRefused: too many words, or over the time budget.
        """
        words = fts_query(text)
        if words is None or limit <= 0:
            return []
        query = f'room : "{room_token(room)}" AND text : ({words})'
        db = self._database.conn
        budget = self._search_budget_s()
        deadline = self._clock() + budget
        over = []

        def check() -> int:
            if self._clock() > deadline:
                over.append(True)
                return 1
            return 0

        db.set_progress_handler(check, _PROGRESS_STEPS)
        try:
            rowids = self._rowids(db, room, query, limit)
            rows = []
            for chunk in chunks(rowids):
                marks = ",".join("?" * len(chunk))
                rows.extend(db.execute(
                    f"SELECT {ENTRY_COLUMNS} FROM entries WHERE rowid IN ({marks})", chunk
                ))
        except sqlite3.Error as e:
            if over:
                raise SearchRefused(
                    f"search too broad: gave up after {budget:g} s; add rarer words"
                ) from None
            raise StoreError(f"cannot search store {self._database.path}: {e}") from e
        finally:
            db.set_progress_handler(None, 0)
        entries = [row_to_entry(row) for row in rows]
        entries.sort(key=lambda e: (e.lamport, e.author, e.seq))
        return entries[-limit:]

    def _rowids(self, db: sqlite3.Connection, room: str, query: str, limit: int) -> List[int]:
        size = self.message_counts_of(room)
        threshold = math.isqrt(limit * size) + 1
        found = [row[0] for row in db.execute(
            "SELECT rowid FROM room_fts WHERE room_fts MATCH ? LIMIT ?", (query, threshold)
        )]
        if len(found) < threshold:
            return found
        return [row[0] for row in db.execute(
            "SELECT e.rowid FROM entries AS e INDEXED BY entries_room "
            "WHERE e.room = ? AND e.kind = 'chat' AND EXISTS (SELECT 1 FROM room_fts "
            "WHERE room_fts MATCH ? AND room_fts.rowid = e.rowid) "
            "ORDER BY e.lamport DESC, e.author DESC, e.seq DESC LIMIT ?",
            (room, query, limit),
        )]

    def message_counts_of(self, room: str) -> int:
        """
        @return: how many messages C{room} holds.
        """
        rows = self._database.query(
            "SELECT messages FROM room_counts WHERE room = ?", (room,)
        )
        return rows[0][0] if rows else 0

    # -- local state ---------------------------------------------------------

    def unread(self, room: str) -> int:
        """
        @return: how many messages of C{room} (L{LOBBY} too) were stored
            after its read position (all of them if it was never read), at
            most L{MAX_UNREAD}: a walk over the entries stored since, not
            over the room.
        """
        seen = self._seen(room)
        in_room = "room IS NULL" if room == LOBBY else "room = ?"
        params: Tuple = (seen,) if room == LOBBY else (seen, room)
        (count,) = self._database.query(
            "SELECT count(*) FROM (SELECT 1 FROM entries WHERE rowid > ? "
            f"AND kind = 'chat' AND {in_room} LIMIT {MAX_UNREAD})",
            params,
        )[0]
        return count

    def _seen(self, room: str) -> int:
        rows = self._database.query("SELECT seen FROM room_reads WHERE room = ?", (room,))
        return rows[0][0] if rows else 0

    def mark_read(self, room: str) -> None:
        """
        Remember that the user has read C{room} up to everything stored.
        """
        self._database.write(
            "INSERT INTO room_reads (room, seen) "
            "VALUES (?, (SELECT COALESCE(MAX(rowid), 0) FROM entries)) "
            "ON CONFLICT (room) DO UPDATE SET seen = excluded.seen",
            (room,),
        )

    def setting(self, key: str) -> Optional[str]:
        """
        @return: the local setting C{key} (for example the current room),
            or C{None}.
        """
        rows = self._database.query("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_setting(self, key: str, value: str) -> None:
        """
        Remember the local setting C{key}.
        """
        self._database.write(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

# -*- test-case-name: tests.unit.test_store -*-
"""
SQLite persistence for log entries: the L{Store} a node holds its copy of
the log in.

A L{Store} keeps every verified L{Entry} a node holds in one SQLite file
(L{p2pchat.log.store.schema}: tables, migration, WAL and full sync).  The
log is append-only: the store never deletes or updates a stored entry.

The store is composed of rooms that share one L{Database} connection, and
L{Store} is their single front door (what the node, the service and the
benchmarks use):

  - L{p2pchat.log.store.log}: entries, chain rules, heads, the digest and
    count, pages of feeds for summaries;
  - L{p2pchat.log.store.search}: history, attestations, full-text search;
  - L{p2pchat.log.store.rooms}: rooms (history, search, room entries,
    message counts) and the local read positions and settings;
  - L{p2pchat.log.store.blocks}: the local block list.

Composition rather than mixins: each room owns its own state (the log's
caches, search's clock and budget) and reaches the others only through
what it is given, so no room can depend on another's privates.
"""

import sqlite3
import time
from typing import Callable, Iterable, List, Optional, Tuple

from twisted.logger import Logger

from p2pchat.log.entry import Entry
from p2pchat.log.store.blocks import BlockList
from p2pchat.log.store.log import AddResult, EntryLog
from p2pchat.log.store.rooms import RoomIndex
from p2pchat.log.store.schema import Database, StoreError
from p2pchat.log.store.search import SEARCH_BUDGET_S, LogSearch

LOG = Logger()


class Store:
    """
    The SQLite file that holds a node's copy of the log.

    Construct with a path, then call L{open} before anything else and
    L{close} when done.  All methods are synchronous and quick enough to
    call from the reactor thread; each says which room does the work.
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
        self._database = Database(path)
        self._log = EntryLog(self._database)
        self._search = LogSearch(self._database, self._log.count, clock, search_budget_s)
        self._blocks = BlockList(self._database)
        self._rooms = RoomIndex(
            self._database, clock, lambda: self._search.search_budget_s
        )
        # Set when switching back to synchronous=FULL after a batch failed.
        self._unsynced = False

    @property
    def path(self) -> str:
        """
        The database file name (or C{":memory:"}).
        """
        return self._database.path

    # -- lifecycle ---------------------------------------------------------

    def open(self) -> None:
        """
        Open the file (see L{Database.open}).

        @raise StoreError: if it cannot be opened, or is already open.
        """
        if self._database.is_open:
            raise StoreError(f"store {self.path} is already open")
        self._database.open()
        self._log.forget()

    def close(self) -> None:
        """
        Close the database.  Harmless if not open.
        """
        self._database.close()
        self._log.forget()

    # -- the log (p2pchat.log.store.log) -------------------------------------

    def add_entries(self, entries: List[Entry], durable: bool = True) -> AddResult:
        """
        Store a batch of verified entries in one transaction: see
        L{EntryLog.add_entries}.

        @param durable: whether the commit must survive a power failure
            (C{synchronous=FULL}: the write-ahead log is synced to disk
            before it returns), as for this node's own entries.  Without,
            a batch of entries received from peers commits with
            C{synchronous=NORMAL}: it survives the process being killed
            (it is in the operating system's cache, and the next durable
            commit or checkpoint syncs it), and what a power failure might
            lose, peers send again.  Every other write stays C{FULL}.
        """
        if self._unsynced:
            self._synchronous("FULL")  # before anything more is written
            self._unsynced = False
        if durable:
            return self._log.add_entries(entries)
        self._synchronous("NORMAL")
        try:
            return self._log.add_entries(entries)
        finally:
            try:
                self._synchronous("FULL")
            except StoreError as e:
                # Never hide the batch's outcome; the next write retries.
                self._unsynced = True
                LOG.error("store left at synchronous=NORMAL: {e}", e=str(e))

    def _synchronous(self, mode: str) -> None:
        try:
            self._database.conn.execute(f"PRAGMA synchronous={mode}")
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to store {self.path}: {e}") from e

    def digest(self) -> str:
        """
        @return: the digest of the stored entries: see L{EntryLog.digest}.
        """
        return self._log.digest()

    def count(self) -> int:
        """
        @return: how many entries are stored: see L{EntryLog.count}.
        """
        return self._log.count()

    def max_lamport(self, at_most: Optional[int] = None) -> int:
        """
        @return: the highest stored Lamport time: see
            L{EntryLog.max_lamport}.
        """
        return self._log.max_lamport(at_most)

    def has(self, entry_id: str) -> bool:
        """
        @return: whether that entry is stored: see L{EntryLog.has}.
        """
        return self._log.has(entry_id)

    def get(self, entry_id: str) -> Optional[Entry]:
        """
        @return: the stored entry with that id or C{None}: see
            L{EntryLog.get}.
        """
        return self._log.get(entry_id)

    def head(self, author: str) -> Optional[Tuple[int, str]]:
        """
        @return: the author's highest stored C{(seq, id)}: see
            L{EntryLog.head}.
        """
        return self._log.head(author)

    def max_seq(self, author: str) -> int:
        """
        @return: the author's highest stored seq, cached: see
            L{EntryLog.max_seq}.
        """
        return self._log.max_seq(author)

    def feeds_page(
        self, after: Optional[str], limit: int, upto: Optional[str] = None
    ) -> List[Tuple[str, int, int]]:
        """
        @return: one page of C{(author, contiguous, head)}: see
            L{EntryLog.feeds_page}.
        """
        return self._log.feeds_page(after, limit, upto)

    def entries_after(self, author: str, seq: int, limit: int) -> List[Entry]:
        """
        @return: the author's entries after C{seq}: see
            L{EntryLog.entries_after}.
        """
        return self._log.entries_after(author, seq, limit)

    # -- reading for people (p2pchat.log.store.search) -----------------------

    def history(
        self,
        limit: int,
        visible_to: Optional[str] = None,
        exclude_authors: Iterable[str] = (),
    ) -> List[Entry]:
        """
        @return: the last C{limit} entries in display order: see
            L{LogSearch.history}.
        """
        return self._search.history(limit, visible_to, exclude_authors)

    def attestations(self) -> List[Entry]:
        """
        @return: every C{cert} entry: see L{LogSearch.attestations}.
        """
        return self._search.attestations()

    def search(self, text: str, limit: int = 50) -> List[Entry]:
        """
        @return: the newest matching chat entries: see L{LogSearch.search}.
        @raise p2pchat.log.store.search.SearchRefused: too broad.
        """
        return self._search.search(text, limit)

    # -- rooms (p2pchat.log.store.rooms) -------------------------------------

    def room_history(
        self, room: str, limit: int, exclude_authors: Iterable[str] = ()
    ) -> List[Entry]:
        """
        @return: the last C{limit} entries of a room other than #lobby:
            see L{RoomIndex.history}.
        """
        return self._rooms.history(room, limit, exclude_authors)

    def room_search(self, room: str, text: str, limit: int = 50) -> List[Entry]:
        """
        @return: the newest messages of a room other than #lobby that
            match C{text}: see L{RoomIndex.search}.
        @raise p2pchat.log.store.search.SearchRefused: too broad.
        """
        return self._rooms.search(room, text, limit)

    def room_is_member(self, room: str, author: str) -> bool:
        """
        @return: whether C{author} is in C{room}: see L{RoomIndex.is_member}.
        """
        return self._rooms.is_member(room, author)

    def room_members(self, room: str) -> List[str]:
        """
        @return: the authors in C{room}: see L{RoomIndex.members}.
        """
        return self._rooms.members(room)

    def rooms_of(self, author: str) -> List[str]:
        """
        @return: the rooms C{author} is in: see L{RoomIndex.rooms_of}.
        """
        return self._rooms.rooms_of(author)

    def room_topic(self, room: str) -> Optional[Entry]:
        """
        @return: the entry that sets C{room}'s topic: see L{RoomIndex.topic}.
        """
        return self._rooms.topic(room)

    def busiest_rooms(self, limit: int) -> List[str]:
        """
        @return: at most C{limit} rooms: see L{RoomIndex.busiest}.
        """
        return self._rooms.busiest(limit)

    def room_message_counts_of(self, room: str) -> int:
        """
        @return: how many messages C{room} holds (#lobby too): see
            L{RoomIndex.message_counts_of}.
        """
        return self._rooms.message_counts_of(room)

    def unread(self, room: str) -> int:
        """
        @return: messages of C{room} stored since it was last read: see
            L{RoomIndex.unread}.
        """
        return self._rooms.unread(room)

    def mark_read(self, room: str) -> None:
        """
        Remember that the user has read C{room} up to now.
        """
        self._rooms.mark_read(room)

    def setting(self, key: str) -> Optional[str]:
        """
        @return: a local setting (see L{RoomIndex.setting}), or C{None}.
        """
        return self._rooms.setting(key)

    def set_setting(self, key: str, value: str) -> None:
        """
        Remember a local setting.
        """
        self._rooms.set_setting(key, value)

    # -- the block list (p2pchat.log.store.blocks) ---------------------------

    def blocked(self) -> List[str]:
        """
        @return: the blocked authors: see L{BlockList.blocked}.
        """
        return self._blocks.blocked()

    def block(self, author: str) -> None:
        """
        Remember that the user blocked C{author}.
        """
        self._blocks.block(author)

    def unblock(self, author: str) -> None:
        """
        Forget that the user blocked C{author}.
        """
        self._blocks.unblock(author)

# -*- test-case-name: tests.unit.test_store -*-
"""
The log in the store: entries, their chains, each author's head and
contiguous prefix, the digest and count, and pages of feeds for summaries.

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

Chain rules enforced by L{EntryLog.add_entries}: at most one entry per
(author, seq) (a second, different one is a I{fork}); an entry whose
neighbour seq-1 is stored must name it as C{prev}, and an entry whose
neighbour seq+1 is stored must be that neighbour's C{prev}.  Gaps (a
missing seq-1) are allowed and filled later.
"""

import hashlib
import sqlite3
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from p2pchat.log.bodies import body_json
from p2pchat.log.entry import Entry
from p2pchat.log.rooms import LOBBY
from p2pchat.log.store.schema import (
    ENTRY_COLUMNS,
    SQLITE_MAX_INT,
    SQLITE_MIN_INT,
    Database,
    StoreError,
    chunks,
    count_messages,
    index_room_entries,
    index_room_messages,
    room_token,
    row_to_entry,
)

DIGEST_MODULUS = 2**256
# EntryLog.max_seq keeps at most this many authors' answers (it is asked
# before signatures are checked, so the authors may be made up).
MAX_SEQS_KEPT = 65536

@dataclass
class AddResult:
    """
    The outcome of one L{EntryLog.add_entries} call.

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
        contiguous seq (the highest N such that its
        entries 1..N are all stored) once the batch is stored.  Not part of
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


class EntryLog:
    """
    The entries of one store's L{Database}; see the module docstring.
    """

    def __init__(self, database: Database):
        self._database = database
        # author -> highest stored seq, for the authors asked about (see
        # max_seq); brought up to date by add_entries after each commit.
        self._max_seqs: Dict[str, int] = {}
        # The stored entry count, once read; kept by add_entries.
        self._count: Optional[int] = None
        # (count, digest) once read: the digest changes when the count does.
        self._digest: Optional[Tuple[int, str]] = None

    def forget(self) -> None:
        """Drop what is kept between calls (the database was opened or closed)."""
        self._max_seqs = {}
        self._count = None
        self._digest = None

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
        db = self._database.conn
        result = AddResult()
        if not entries:
            return result
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to store {self._database.path}: {e}") from e
        try:
            self._add(db, entries, result)
            db.execute("COMMIT")
        except BaseException as e:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if isinstance(e, sqlite3.Error):
                raise StoreError(f"cannot write to store {self._database.path}: {e}") from e
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
        for chunk in chunks(ids):
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
            for chunk in chunks(sorted(seqs)):
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
        room_texts = []
        room_entries = []
        parties = []
        for rowid, entry in enumerate(added, last_rowid + 1):
            room = entry.body.get("room")
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
                    room,
                )
            )
            if entry.kind == "chat":
                if room is None:
                    texts.append((rowid, entry.body["text"]))
                else:
                    room_texts.append((rowid, entry.body["text"], room_token(room), room))
            elif room is not None:
                room_entries.append((rowid, entry))
            elif entry.kind == "dm":
                for party in {entry.author, entry.body["to"]}:
                    parties.append((party, entry.lamport, entry.author, entry.seq, rowid))
        db.executemany(
            "INSERT INTO entries (rowid, id, author, seq, prev, lamport, ts, "
            "kind, body, sig, room) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        if texts:
            db.executemany("INSERT INTO chat_fts (rowid, text) VALUES (?, ?)", texts)
            count_messages(db, {LOBBY: len(texts)})
        if room_texts:
            index_room_messages(db, room_texts)
        if room_entries:
            index_room_entries(db, room_entries)
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

    def digest(self) -> str:
        """
        @return: the digest of the stored set of entries, 64 hex digits
            (see the module docstring); all zeros when empty.
        """
        if self._digest is None or self._digest[0] != self.count():
            self._digest = (self.count(), self._database.query("SELECT digest FROM meta")[0][0])
        return self._digest[1]

    def count(self) -> int:
        """
        Read once per open, then kept up to date by L{add_entries}.

        @return: how many entries are stored.
        """
        if self._count is None:
            self._count = self._database.query("SELECT count FROM meta")[0][0]
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
            return self._database.query("SELECT COALESCE(MAX(lamport), 0) FROM entries")[0][0]
        # SQLite integers are 64-bit; clamping keeps the comparison exact.
        bound = min(max(at_most, SQLITE_MIN_INT), SQLITE_MAX_INT)
        return self._database.query(
            "SELECT COALESCE(MAX(lamport), 0) FROM entries WHERE lamport <= ?",
            (bound,),
        )[0][0]

    def has(self, entry_id: str) -> bool:
        """
        @param entry_id: an entry id, 64 hex digits.
        @return: whether that entry is stored.
        """
        return bool(self._database.query("SELECT 1 FROM entries WHERE id = ?", (entry_id,)))

    def get(self, entry_id: str) -> Optional[Entry]:
        """
        @param entry_id: an entry id, 64 hex digits.
        @return: the stored L{Entry} with that id, or C{None}.
        """
        rows = self._database.query(
            f"SELECT {ENTRY_COLUMNS} FROM entries WHERE id = ?", (entry_id,)
        )
        return row_to_entry(rows[0]) if rows else None

    def head(self, author: str) -> Optional[Tuple[int, str]]:
        """
        @param author: a node id.
        @return: C{(seq, id)} of the author's stored entry with the highest
            seq, or C{None} if none of its entries is stored.  There may be
            gaps below it: see L{contiguous_seq}.
        """
        rows = self._database.query(
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
            if len(self._max_seqs) >= MAX_SEQS_KEPT:
                self._max_seqs.clear()
            self._max_seqs[author] = known
        return known

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
            for row in self._database.query(
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
        rows = self._database.query(
            f"SELECT {ENTRY_COLUMNS} FROM entries "
            "WHERE author = ? AND seq > ? ORDER BY seq LIMIT ?",
            (author, seq, limit),
        )
        return [row_to_entry(row) for row in rows]

"""
Tests for L{p2pchat.log.store}: the L{Store} and its rooms (schema, log,
search, blocks).
"""

import hashlib
import inspect
import os
import random
import re
import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.entry import create_entry
from p2pchat.log.identity import Identity
from p2pchat.log.store import AddResult, SearchRefused, Store, StoreError
from p2pchat.log.store import blocks as blocks_module
from p2pchat.log.store import core as core_module
from p2pchat.log.store import log as log_module
from p2pchat.log.store import schema as schema_module
from p2pchat.log.store import search as search_module


def sql(store):
    """
    @return: the open store's SQLite connection, for tests that look at
        or break the file underneath it.
    """
    return store._database.conn


def version_vector(store):
    """
    @return: C{{author: contiguous seq}} for every author with a stored
        entry, read from the store's summary pages.
    """
    return {author: contiguous for author, contiguous, _ in store.feeds_page(None, 10**6)}


def contiguous_seq(store, author):
    """
    @return: the author's contiguous seq (0 when it has no stored entry).
    """
    return version_vector(store).get(author, 0)


def make_chain(identity, count, start_lamport=1, texts=None, ts=1000):
    """
    @return: C{count} chained chat entries by C{identity}, seq 1..count.
    """
    entries = []
    prev = None
    for i in range(count):
        text = texts[i] if texts else f"message number {i + 1}"
        entry = create_entry(
            identity,
            i + 1,
            prev,
            start_lamport + i,
            ts + i,
            "chat",
            {"name": "alice", "text": text},
        )
        entries.append(entry)
        prev = entry.id
    return entries


def expected_digest(entries):
    """
    @return: the digest of a set of entries, computed from the definition.
    """
    total = sum(
        int(hashlib.sha256(bytes.fromhex(e.id)).hexdigest(), 16)
        for e in {e.id: e for e in entries}.values()
    )
    return f"{total % 2**256:064x}"


# A small fixed pool for the property tests: two authors, interleaved
# lamports, so that signing does not dominate the test time.
_ALICE = Identity.generate()
_BOB = Identity.generate()
POOL = make_chain(_ALICE, 5) + make_chain(_BOB, 4, start_lamport=2)


class StoreTestsMixin:
    """
    Helpers to make an opened store in a temporary directory.
    """

    def open_store(self, path=None):
        """
        @return: an opened L{Store}, closed at test cleanup.
        """
        if path is None:
            path = self.mktemp() + ".sqlite"
        store = Store(path)
        store.open()
        self.addCleanup(store.close)
        return store


class OpenTests(StoreTestsMixin, SynchronousTestCase):
    """
    Opening, schema creation and failure modes.
    """

    def test_constructorDoesNoIO(self):
        """
        Constructing a L{Store} does not create the database file.
        """
        path = self.mktemp()
        Store(path)
        self.assertFalse(os.path.exists(path))

    def test_openCreatesSchemaInWALMode(self):
        """
        L{Store.open} creates the tables, sets C{user_version} and puts the
        database in WAL mode with full synchronisation.
        """
        path = self.mktemp()
        store = self.open_store(path)
        db = sql(store)
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(db.execute("PRAGMA synchronous").fetchone()[0], 2)
        self.assertEqual(
            db.execute("PRAGMA user_version").fetchone()[0],
            schema_module.SCHEMA_VERSION,
        )
        names = {
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master")
        }
        for name in ("entries", "entries_display", "chat_fts", "meta", "feeds"):
            self.assertIn(name, names)
        other = sqlite3.connect(path)
        self.addCleanup(other.close)
        self.assertEqual(other.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(store.count(), 0)
        self.assertEqual(store.digest(), "0" * 64)
        self.assertEqual(store.max_lamport(), 0)
        self.assertEqual(version_vector(store), {})

    def test_notADatabase(self):
        """
        Opening a file that is not an SQLite database raises L{StoreError}.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"this is definitely not a database file " * 100)
        store = Store(path)
        error = self.assertRaises(StoreError, store.open)
        self.assertIn(path, str(error))

    def test_unopenable(self):
        """
        Opening a path in a directory that does not exist raises
        L{StoreError}.
        """
        store = Store(self.mktemp() + "/missing/dir/store.sqlite")
        self.assertRaises(StoreError, store.open)

    def test_newerSchema(self):
        """
        Opening a store written by a newer schema version raises
        L{StoreError}.
        """
        path = self.mktemp()
        db = sqlite3.connect(path)
        db.execute(f"PRAGMA user_version={schema_module.SCHEMA_VERSION + 1}")
        db.close()
        self.assertRaises(StoreError, Store(path).open)

    def test_alreadyOpen(self):
        """
        Opening an open store raises L{StoreError}; it stays open.
        """
        store = self.open_store()
        error = self.assertRaises(StoreError, store.open)
        self.assertIn("already open", str(error))
        self.assertEqual(store.count(), 0)

    def test_notOpen(self):
        """
        Using a store before L{Store.open} raises L{StoreError}.
        """
        self.assertRaises(StoreError, Store(self.mktemp()).count)

    def test_appendOnlySource(self):
        """
        The source of the store's modules never deletes, nor updates entries.
        """
        for module in (core_module, schema_module, log_module, search_module, blocks_module):
            source = inspect.getsource(module)
            self.assertIsNone(re.search(r"\bDELETE\b", source, re.IGNORECASE), module)
            self.assertIsNone(
                re.search(r"\bUPDATE\s+entries\b", source, re.IGNORECASE), module
            )


class AddTests(StoreTestsMixin, SynchronousTestCase):
    """
    L{Store.add_entries} and reading entries back.
    """

    def setUp(self):
        self.alice = Identity.generate()
        self.bob = Identity.generate()

    def test_roundTrip(self):
        """
        Added entries are returned, in input order, in C{added}, and read
        back equal by L{Store.get}; L{Store.has}, L{Store.head},
        L{Store.count} and L{Store.max_lamport} reflect them.
        """
        store = self.open_store()
        entries = make_chain(self.alice, 3, texts=["héllo ☃", "two", "three"])
        result = store.add_entries(entries)
        self.assertEqual(result, AddResult(added=entries))
        for entry in entries:
            self.assertTrue(store.has(entry.id))
            self.assertEqual(store.get(entry.id), entry)
        self.assertFalse(store.has("ab" * 32))
        self.assertIsNone(store.get("ab" * 32))
        self.assertEqual(store.head(self.alice.node_id), (3, entries[2].id))
        self.assertIsNone(store.head(self.bob.node_id))
        self.assertEqual(store.count(), 3)
        self.assertEqual(store.max_lamport(), 3)
        self.assertEqual(store.digest(), expected_digest(entries))

    def test_digest_read_once_per_change(self):
        """
        The digest is read from the database once per new count (membership
        asks for it every tick), and follows every commit.
        """
        store = self.open_store()
        entries = make_chain(self.alice, 3)
        store.add_entries(entries[:2])
        self.assertEqual(store.digest(), expected_digest(entries[:2]))
        queries = []
        database = store._log._database
        real = database.query
        self.patch(database, "query", lambda *a: queries.append(a) or real(*a))
        self.assertEqual(store.digest(), expected_digest(entries[:2]))
        self.assertEqual(queries, [])
        store.add_entries(entries[2:])
        self.assertEqual(store.digest(), expected_digest(entries))
        self.assertEqual(store.digest(), expected_digest(entries))
        self.assertEqual(len(queries), 1)

    def test_durability(self):
        """
        A batch added as not durable (entries received from peers) commits
        with C{synchronous=NORMAL}; a durable one, and every write after
        either, with C{FULL}.
        """
        store = self.open_store()
        statements = []
        store._database.conn.set_trace_callback(statements.append)
        entries = make_chain(self.alice, 2)
        store.add_entries(entries[:1], durable=False)
        self.assertEqual(
            [s for s in statements if "synchronous" in s or s in ("BEGIN IMMEDIATE", "COMMIT")],
            ["PRAGMA synchronous=NORMAL", "BEGIN IMMEDIATE", "COMMIT", "PRAGMA synchronous=FULL"],
        )
        del statements[:]
        store.add_entries(entries[1:])
        self.assertEqual([s for s in statements if "synchronous" in s], [])
        self.assertEqual(
            store._database.conn.execute("PRAGMA synchronous").fetchone(), (2,))
        self.assertEqual(store.count(), 2)

    def test_failed_switch_back_does_not_hide_the_batch(self):
        """
        If switching back to C{FULL} after a received batch fails, the
        batch's outcome stands (it committed), one error is logged, and
        the next write switches to C{FULL} before it writes anything.
        """
        store = self.open_store()
        real = store._synchronous
        calls, failing = [], ["FULL"]

        def switch(mode):
            calls.append(mode)
            if mode in failing:
                failing.remove(mode)
                raise StoreError("cannot write to store: disk I/O error")
            real(mode)

        errors = []

        class Recorder:
            def error(self, text, **fields):
                errors.append(text.format(**fields))

        self.patch(store, "_synchronous", switch)
        self.patch(core_module, "LOG", Recorder())
        entries = make_chain(self.alice, 2)
        result = store.add_entries(entries[:1], durable=False)
        self.assertEqual(result.added, entries[:1])
        self.assertEqual(errors, [
            "store left at synchronous=NORMAL: cannot write to store: disk I/O error"])
        store.add_entries(entries[1:])
        self.assertEqual(calls, ["NORMAL", "FULL", "FULL"])
        self.assertEqual(store._database.conn.execute("PRAGMA synchronous").fetchone(), (2,))

    def test_durability_failure_is_a_store_error(self):
        """
        If the store cannot switch a batch to C{NORMAL} it raises
        L{StoreError}, as for any other failed write.
        """
        store = self.open_store()
        store._database.conn.close()
        with self.assertRaises(StoreError):
            store.add_entries(make_chain(self.alice, 1), durable=False)

    def test_dmRoundTrip(self):
        """
        A dm entry is stored and read back equal, and is not indexed for
        search.
        """
        store = self.open_store()
        dm = create_entry(
            self.alice,
            1,
            None,
            1,
            0,
            "dm",
            {
                "name": "alice",
                "to": self.bob.node_id,
                "box": "secretwordxx",
                "self_box": "secretwordxx",
            },
        )
        self.assertEqual(store.add_entries([dm]).added, [dm])
        self.assertEqual(store.get(dm.id), dm)
        self.assertEqual(store.search("secretwordxx"), [])

    def test_emptyBatch(self):
        """
        Adding no entries changes nothing and reports nothing.
        """
        store = self.open_store()
        self.assertEqual(store.add_entries([]), AddResult())
        self.assertEqual(store.count(), 0)

    def test_duplicatesSkipped(self):
        """
        Entries already stored, or repeated within a batch, are counted as
        duplicates and not stored twice.
        """
        store = self.open_store()
        entries = make_chain(self.alice, 3)
        store.add_entries(entries[:2])
        digest = store.digest()
        result = store.add_entries([entries[0], entries[1], entries[2], entries[2]])
        self.assertEqual(result.added, [entries[2]])
        self.assertEqual(result.duplicates, 3)
        self.assertEqual(result.forks, [])
        self.assertEqual(result.rejected, [])
        self.assertEqual(store.count(), 3)
        self.assertNotEqual(store.digest(), digest)
        self.assertEqual(store.digest(), expected_digest(entries))

    def test_dependentBatch(self):
        """
        One batch may hold a whole chain, in order, of several authors.
        """
        store = self.open_store()
        a = make_chain(self.alice, 4)
        b = make_chain(self.bob, 3)
        batch = [a[0], b[0], a[1], a[2], b[1], b[2], a[3]]
        result = store.add_entries(batch)
        self.assertEqual(result.added, batch)
        self.assertEqual(
            version_vector(store), {self.alice.node_id: 4, self.bob.node_id: 3}
        )

    def test_forkStored(self):
        """
        An entry with the same author and seq as a stored one but another
        id is a fork: not stored, and reported with the stored id.
        """
        store = self.open_store()
        chain = make_chain(self.alice, 2)
        store.add_entries(chain)
        fork = create_entry(
            self.alice, 2, chain[0].id, 2, 1001, "chat",
            {"name": "alice", "text": "a different second message"},
        )
        result = store.add_entries([fork])
        self.assertEqual(result.added, [])
        self.assertEqual(result.forks, [(fork, chain[1].id)])
        self.assertEqual(store.get(chain[1].id), chain[1])
        self.assertFalse(store.has(fork.id))
        self.assertEqual(store.count(), 2)

    def test_forkInBatch(self):
        """
        Two different entries with the same author and seq in one batch:
        the first is stored, the second is reported as a fork of it.
        """
        store = self.open_store()
        one = make_chain(self.alice, 1, texts=["first"])[0]
        other = make_chain(self.alice, 1, texts=["other"])[0]
        result = store.add_entries([one, other])
        self.assertEqual(result.added, [one])
        self.assertEqual(result.forks, [(other, one.id)])
        self.assertEqual(store.count(), 1)

    def test_brokenChainRejected(self):
        """
        An entry whose stored seq-1 is not its C{prev} is rejected with a
        reason and not stored.
        """
        store = self.open_store()
        chain = make_chain(self.alice, 2)
        store.add_entries(chain)
        bad = create_entry(
            self.alice, 3, "cd" * 32, 3, 0, "chat", {"name": "alice", "text": "x"}
        )
        result = store.add_entries([bad])
        self.assertEqual(result.added, [])
        self.assertEqual(len(result.rejected), 1)
        self.assertIs(result.rejected[0][0], bad)
        self.assertIsInstance(result.rejected[0][1], str)
        self.assertIn("prev", result.rejected[0][1])
        self.assertFalse(store.has(bad.id))
        self.assertEqual(store.head(self.alice.node_id), (2, chain[1].id))

    def test_brokenChainBySuccessor(self):
        """
        An entry that fills a gap but is not the C{prev} of the stored
        entry after it is rejected.
        """
        store = self.open_store()
        chain = make_chain(self.alice, 3)
        store.add_entries([chain[0], chain[2]])
        impostor = create_entry(
            self.alice, 2, chain[0].id, 2, 0, "chat", {"name": "alice", "text": "x"}
        )
        result = store.add_entries([impostor])
        self.assertEqual(result.added, [])
        self.assertEqual([e for e, _ in result.rejected], [impostor])
        self.assertEqual(contiguous_seq(store, self.alice.node_id), 1)

    def test_gapAllowed(self):
        """
        An entry whose seq-1 is missing is stored; filling the gap later
        makes the chain contiguous.
        """
        store = self.open_store()
        chain = make_chain(self.alice, 4)
        result = store.add_entries([chain[0], chain[2], chain[3]])
        self.assertEqual(result.added, [chain[0], chain[2], chain[3]])
        self.assertEqual(store.head(self.alice.node_id), (4, chain[3].id))
        self.assertEqual(contiguous_seq(store, self.alice.node_id), 1)
        store.add_entries([chain[1]])
        self.assertEqual(contiguous_seq(store, self.alice.node_id), 4)

    def test_contiguousAndVersionVector(self):
        """
        the contiguous seq is the end of the gap-free run from seq 1
        (0 without seq 1), and the version vector maps every author to
        it.
        """
        store = self.open_store()
        carol = Identity.generate()
        a = make_chain(self.alice, 6)
        b = make_chain(self.bob, 3)
        c = make_chain(carol, 2)
        store.add_entries([a[0], a[1], a[3], a[5], b[1], b[2], c[0], c[1]])
        self.assertEqual(contiguous_seq(store, self.alice.node_id), 2)
        self.assertEqual(contiguous_seq(store, self.bob.node_id), 0)
        self.assertEqual(contiguous_seq(store, carol.node_id), 2)
        self.assertEqual(contiguous_seq(store, "ef" * 32), 0)
        self.assertEqual(
            version_vector(store),
            {self.alice.node_id: 2, self.bob.node_id: 0, carol.node_id: 2},
        )
        store.add_entries([a[2], b[0]])
        self.assertEqual(
            version_vector(store),
            {self.alice.node_id: 4, self.bob.node_id: 3, carol.node_id: 2},
        )
        store.add_entries([a[4]])
        self.assertEqual(contiguous_seq(store, self.alice.node_id), 6)

    def test_entriesAfter(self):
        """
        L{Store.entries_after} returns one author's entries above a seq,
        ascending, at most C{limit}, skipping gaps.
        """
        store = self.open_store()
        a = make_chain(self.alice, 6)
        store.add_entries([a[0], a[1], a[2], a[4], a[5]] + make_chain(self.bob, 2))
        nid = self.alice.node_id
        self.assertEqual(
            store.entries_after(nid, 0, 100), [a[0], a[1], a[2], a[4], a[5]]
        )
        self.assertEqual(store.entries_after(nid, 1, 2), [a[1], a[2]])
        self.assertEqual(store.entries_after(nid, 3, 10), [a[4], a[5]])
        self.assertEqual(store.entries_after(nid, 6, 10), [])
        self.assertEqual(store.entries_after(nid, 0, 0), [])
        self.assertEqual(store.entries_after(nid, 0, -1), [])
        self.assertEqual(store.entries_after("ef" * 32, 0, 10), [])

    def test_rollbackOnError(self):
        """
        If the database fails during a batch, L{StoreError} is raised and
        nothing of the batch is stored.
        """
        store = self.open_store()
        first = make_chain(self.alice, 1)
        store.add_entries(first)
        # Sabotage: a trigger that makes the third insert fail.
        sql(store).execute(
            "CREATE TEMP TRIGGER boom BEFORE INSERT ON entries "
            "WHEN NEW.seq = 3 BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
        chain = make_chain(self.bob, 4)
        self.assertRaises(StoreError, store.add_entries, chain)
        self.assertEqual(store.count(), 1)
        self.assertEqual(store.digest(), expected_digest(first))
        self.assertFalse(store.has(chain[0].id))
        self.assertEqual(version_vector(store), {self.alice.node_id: 1})
        self.assertEqual(store.search("message"), first)
        sql(store).execute("DROP TRIGGER boom")
        self.assertEqual(store.add_entries(chain).added, chain)


class MaxSeqTests(StoreTestsMixin, SynchronousTestCase):
    """
    L{Store.max_seq}, kept per author, and the shortcuts it allows.
    """

    def setUp(self):
        self.alice = Identity.generate()
        self.bob = Identity.generate()

    def test_max_seq(self):
        """
        L{Store.max_seq} is 0 for an author with nothing stored, and the
        highest stored seq (gaps or not) once entries are added, also for
        an author it was asked about before.
        """
        store = self.open_store()
        chain = make_chain(self.alice, 5)
        self.assertEqual(store.max_seq(self.alice.node_id), 0)
        store.add_entries([chain[0], chain[1]])
        self.assertEqual(store.max_seq(self.alice.node_id), 2)
        store.add_entries([chain[4]])
        self.assertEqual(store.max_seq(self.alice.node_id), 5)
        store.add_entries([chain[2]])
        self.assertEqual(store.max_seq(self.alice.node_id), 5)
        self.assertEqual(store.max_seq(self.bob.node_id), 0)

    def test_max_seq_after_reopen(self):
        """
        A reopened store answers from the file, not from what it kept.
        """
        path = self.mktemp() + ".sqlite"
        store = self.open_store(path)
        store.add_entries(make_chain(self.alice, 3))
        self.assertEqual(store.max_seq(self.alice.node_id), 3)
        store.close()
        other = Store(path)
        other.open()
        other.add_entries([make_chain(self.bob, 1)[0]])
        other.close()
        store.open()
        self.assertEqual(store.max_seq(self.alice.node_id), 3)
        self.assertEqual(store.max_seq(self.bob.node_id), 1)

    def test_max_seq_not_advanced_by_rollback(self):
        """
        A batch that fails to commit does not raise L{Store.max_seq}.
        """
        store = self.open_store()
        chain = make_chain(self.bob, 4)
        self.assertEqual(store.max_seq(self.bob.node_id), 0)
        sql(store).execute(
            "CREATE TEMP TRIGGER boom BEFORE INSERT ON entries "
            "WHEN NEW.seq = 3 BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
        self.assertRaises(StoreError, store.add_entries, chain)
        self.assertEqual(store.max_seq(self.bob.node_id), 0)

    def test_max_seq_kept_bounded(self):
        """
        L{Store.max_seq} keeps at most C{_MAX_SEQS_KEPT} authors' answers
        (it is asked about authors of unverified entries), and stays
        right when it starts over.
        """
        self.patch(log_module, "MAX_SEQS_KEPT", 2)
        store = self.open_store()
        store.add_entries(make_chain(self.alice, 2))
        authors = [self.alice.node_id, "ab" * 32, "cd" * 32, self.alice.node_id]
        self.assertEqual([store.max_seq(author) for author in authors], [2, 0, 0, 2])
        self.assertLessEqual(len(store._log._max_seqs), 2)

    def test_duplicates_found_above_and_below(self):
        """
        Entries at or below the author's highest stored seq are looked up
        by id; entries above it are new, and a repeat within the batch is
        still a duplicate.
        """
        store = self.open_store()
        chain = make_chain(self.alice, 4)
        store.add_entries([chain[0], chain[2]])
        result = store.add_entries([chain[0], chain[1], chain[2], chain[3], chain[3]])
        self.assertEqual(result.added, [chain[1], chain[3]])
        self.assertEqual(result.duplicates, 3)
        self.assertEqual(store.count(), 4)
        self.assertEqual(store.digest(), expected_digest(chain))

    def test_contiguous_reported(self):
        """
        L{AddResult.contiguous} gives, for each author of an added entry,
        its the contiguous seq after the batch.
        """
        store = self.open_store()
        a = make_chain(self.alice, 4)
        b = make_chain(self.bob, 2)
        result = store.add_entries([a[0], a[1], a[3], b[1]])
        self.assertEqual(result.contiguous, {self.alice.node_id: 2, self.bob.node_id: 0})
        result = store.add_entries([a[2], b[0]])
        self.assertEqual(result.contiguous, {self.alice.node_id: 4, self.bob.node_id: 2})
        for author, seq in result.contiguous.items():
            self.assertEqual(contiguous_seq(store, author), seq)


class CountTests(StoreTestsMixin, SynchronousTestCase):
    """
    L{Store.count}, read once and then kept.
    """

    def test_count_kept(self):
        """
        L{Store.count} follows committed batches, not a failed one, and
        always equals the count recorded in the file.
        """
        store = self.open_store()
        alice, bob = Identity.generate(), Identity.generate()
        self.assertEqual(store.count(), 0)
        store.add_entries(make_chain(alice, 3))
        self.assertEqual(store.count(), 3)
        sql(store).execute(
            "CREATE TEMP TRIGGER boom BEFORE INSERT ON entries "
            "WHEN NEW.seq = 2 BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
        self.assertRaises(StoreError, store.add_entries, make_chain(bob, 2))
        self.assertEqual(store.count(), 3)
        (recorded,) = sql(store).execute("SELECT count FROM meta").fetchone()
        self.assertEqual(recorded, 3)

    def test_count_after_reopen(self):
        """
        A reopened store reads the count from the file again.
        """
        path = self.mktemp() + ".sqlite"
        store = self.open_store(path)
        self.assertEqual(store.count(), 0)
        store.close()
        other = Store(path)
        other.open()
        other.add_entries(make_chain(Identity.generate(), 2))
        other.close()
        store.open()
        self.assertEqual(store.count(), 2)


class DigestTests(StoreTestsMixin, SynchronousTestCase):
    """
    The order-independent digest of the stored set.
    """

    @settings(max_examples=30, deadline=None)
    @given(
        st.permutations(POOL).flatmap(
            lambda order: st.tuples(
                st.just(order),
                st.lists(
                    st.integers(min_value=1, max_value=len(POOL)),
                    max_size=len(POOL),
                ),
            )
        )
    )
    def test_orderIndependent(self, order_and_cuts):
        """
        Adding the pool in any order and any partition into batches gives
        the same digest and count as adding it in one batch.
        """
        order, cuts = order_and_cuts
        reference = self.open_store()
        reference.add_entries(POOL)
        store = self.open_store()
        bounds = sorted(set(cuts)) + [len(order)]
        start = 0
        for end in bounds:
            store.add_entries(list(order[start:end]))
            start = end
        self.assertEqual(store.count(), len(POOL))
        self.assertEqual(store.digest(), reference.digest())
        self.assertEqual(store.digest(), expected_digest(POOL))
        self.assertEqual(version_vector(store), version_vector(reference))
        self.assertEqual(store.history(100), reference.history(100))
        store.close()
        reference.close()

    @settings(max_examples=30, deadline=None)
    @given(
        st.sets(st.integers(0, len(POOL) - 1)),
        st.sets(st.integers(0, len(POOL) - 1)),
    )
    def test_differentSets(self, left, right):
        """
        Two stores have the same digest exactly when they hold the same set
        of entries.
        """
        a = self.open_store()
        b = self.open_store()
        # Forks and broken chains cannot arise from one honest pool.
        a.add_entries([POOL[i] for i in sorted(left)])
        b.add_entries([POOL[i] for i in sorted(right)])
        self.assertEqual(a.digest() == b.digest(), left == right)
        a.close()
        b.close()

    def test_differsByOne(self):
        """
        Adding one more entry changes the digest.
        """
        store = self.open_store()
        store.add_entries(POOL[:-1])
        before = store.digest()
        store.add_entries(POOL[-1:])
        self.assertNotEqual(store.digest(), before)
        self.assertEqual(len(store.digest()), 64)


class PersistenceTests(StoreTestsMixin, SynchronousTestCase):
    """
    Data survives closing and reopening.
    """

    def test_reopen(self):
        """
        After close and reopen, count, digest, history, version vector and
        search are unchanged, and adding continues to work.
        """
        path = self.mktemp()
        store = Store(path)
        store.open()
        alice = Identity.generate()
        chain = make_chain(alice, 5)
        store.add_entries(chain[:4])
        count, digest, history = store.count(), store.digest(), store.history(10)
        store.close()

        again = self.open_store(path)
        self.assertEqual(again.count(), count)
        self.assertEqual(again.digest(), digest)
        self.assertEqual(again.history(10), history)
        self.assertEqual(version_vector(again), {alice.node_id: 4})
        self.assertEqual(again.search("number 3"), [chain[2]])
        self.assertEqual(again.add_entries(chain).added, [chain[4]])
        self.assertEqual(again.digest(), expected_digest(chain))


class HistoryTests(StoreTestsMixin, SynchronousTestCase):
    """
    L{Store.history} and L{Store.search}.
    """

    def setUp(self):
        self.alice = Identity.generate()
        self.bob = Identity.generate()

    def test_historyOrderAndLimit(self):
        """
        History is the last C{limit} entries by (lamport, author, seq),
        oldest first.
        """
        store = self.open_store()
        a = make_chain(self.alice, 4, start_lamport=1)  # lamport 1..4
        b = make_chain(self.bob, 4, start_lamport=3)  # lamport 3..6
        store.add_entries(b + a)
        everything = sorted(a + b, key=lambda e: (e.lamport, e.author, e.seq))
        self.assertEqual(store.history(100), everything)
        self.assertEqual(store.history(3), everything[-3:])
        self.assertEqual(store.history(0), [])
        self.assertEqual(store.history(-1), [])
        self.assertEqual(store.max_lamport(), 6)

    def _visible_mix(self, store):
        """
        Store chat and DMs among alice, bob, carol and dave (including a
        DM carol sent herself), interleaved in Lamport time.

        @return: every stored entry.
        """
        carol, dave = Identity.generate(), Identity.generate()
        people = [self.alice, self.bob, carol, dave]
        rng = random.Random(7)
        seqs, prevs, everything = {}, {}, []
        for lamport in range(1, 121):
            author = rng.choice(people)
            seq = seqs[author.node_id] = seqs.get(author.node_id, 0) + 1
            if rng.random() < 0.3:
                kind, body = "chat", {"name": "x", "text": f"chat {lamport}"}
            else:
                to = rng.choice(people).node_id
                kind, body = "dm", {"name": "x", "to": to, "box": "Ym94", "self_box": "c2VsZg=="}
            entry = create_entry(author, seq, prevs.get(author.node_id), lamport, 0, kind, body)
            prevs[author.node_id] = entry.id
            everything.append(entry)
        store.add_entries(everything)
        return everything, people

    def test_historyVisibleTo(self):
        """
        History for a node shows chat and the DMs it sent or received
        (its DMs to itself once), never DMs between others, and leaves out
        excluded authors; the newest C{limit} in display order.
        """
        store = self.open_store()
        everything, people = self._visible_mix(store)
        display = sorted(everything, key=lambda e: (e.lamport, e.author, e.seq))
        for me in people:
            for excluded in [(), (self.bob.node_id,), (me.node_id, people[2].node_id)]:
                shown = [
                    e for e in display
                    if e.author not in excluded and (
                        e.kind == "chat"
                        or me.node_id in (e.author, e.body.get("to"))
                    )
                ]
                for limit in (1, 5, 30, 500):
                    self.assertEqual(
                        store.history(limit, me.node_id, excluded), shown[-limit:],
                        (limit, excluded),
                    )

    def test_historySkipsOthersDMsByIndex(self):
        """
        History for a node reads #lobby chat through the C{entries_lobby} partial
        index and its own DMs through C{dm_parties}, both in display order:
        EXPLAIN QUERY PLAN shows no scan of C{entries} (so the DMs of
        others, however many, are never read) and no sort.
        """
        store = self.open_store()
        self._visible_mix(store)
        statements = []
        sql(store).set_trace_callback(statements.append)
        try:
            store.history(20, self.alice.node_id, [self.bob.node_id])
        finally:
            sql(store).set_trace_callback(None)
        self.assertEqual(len(statements), 2, statements)
        plans = []
        for statement in statements:
            plans += [
                row[-1] for row in sql(store).execute("EXPLAIN QUERY PLAN " + statement)
            ]
        self.assertIn("SCAN entries USING INDEX entries_lobby", plans)
        self.assertIn("SEARCH dm_parties USING PRIMARY KEY (party=?)", plans)
        for detail in plans:
            self.assertFalse(detail.startswith("SCAN entries") and "INDEX" not in detail, plans)
            self.assertNotIn("TEMP B-TREE", detail, plans)
            self.assertNotIn("SCAN dm_parties", detail, plans)

    def test_searchPlansWalkChatRowsOnly(self):
        """
        The I{scan} and I{probe} search plans walk the C{entries_lobby}
        index (chat rows only, in display order), so DMs between others
        are never read by a search, and they still agree with I{join}.
        """
        store = self.open_store()
        everything, _ = self._visible_mix(store)
        query = search_module.fts_query("chat")
        for strategy in ("scan", "probe"):
            statements = []
            sql(store).set_trace_callback(statements.append)
            try:
                found = store._search._search_rowids(query, 5, strategy)
            finally:
                sql(store).set_trace_callback(None)
            self.assertEqual(found, store._search._search_rowids(query, 5, "join"))
            plan = [
                row[-1]
                for row in sql(store).execute("EXPLAIN QUERY PLAN " + statements[0])
            ]
            self.assertIn("SCAN e USING INDEX entries_lobby", plan, strategy)

    def test_historyAfterUpgradeFromVersion1(self):
        """
        A store written by schema version 1 (no C{dm_parties}) is upgraded
        on open: the DMs already stored are found by history.
        """
        path = self.mktemp()
        store = self.open_store(path)
        everything, people = self._visible_mix(store)
        expected = store.history(500, self.alice.node_id)
        self.assertTrue(any(e.kind == "dm" for e in expected))
        sql(store).execute("DROP TABLE dm_parties")
        sql(store).execute("DROP INDEX entries_lobby")
        sql(store).execute("PRAGMA user_version=1")
        store.close()
        again = self.open_store(path)
        self.assertEqual(
            sql(again).execute("PRAGMA user_version").fetchone()[0],
            schema_module.SCHEMA_VERSION,
        )
        self.assertEqual(again.history(500, self.alice.node_id), expected)

    def test_maxLamportAtMost(self):
        """
        L{Store.max_lamport} with C{at_most} gives the highest stored
        Lamport time not above it, or 0 when there is none, for any
        integer, including ones beyond SQLite's 64-bit range.
        """
        store = self.open_store()
        self.assertEqual(store.max_lamport(5), 0)
        self.assertEqual(store.max_lamport(0), 0)
        store.add_entries(make_chain(self.alice, 4, start_lamport=1))  # 1..4
        store.add_entries(make_chain(self.bob, 3, start_lamport=10))  # 10..12
        cases = {
            None: 12,
            -(2**80): 0,
            -1: 0,
            0: 0,
            1: 1,
            3: 3,
            4: 4,
            5: 4,
            9: 4,
            10: 10,
            11: 11,
            12: 12,
            13: 12,
            2**53: 12,
            2**63: 12,
            2**80: 12,
        }
        for at_most, expected in cases.items():
            self.assertEqual(store.max_lamport(at_most), expected, at_most)
        self.assertEqual(store.max_lamport(), 12)

    def test_maxLamportAtMostUsesIndex(self):
        """
        L{Store.max_lamport} with C{at_most} runs one query, which seeks in
        the C{entries_display} index rather than scanning the table.
        """
        store = self.open_store()
        store.add_entries(make_chain(self.alice, 3))
        statements = []
        sql(store).set_trace_callback(statements.append)
        try:
            self.assertEqual(store.max_lamport(2), 2)
        finally:
            sql(store).set_trace_callback(None)
        self.assertEqual(len(statements), 1, statements)
        plan = [
            row[-1]
            for row in sql(store).execute("EXPLAIN QUERY PLAN " + statements[0])
        ]
        self.assertEqual(
            plan, ["SEARCH entries USING COVERING INDEX entries_display (lamport<?)"]
        )

    def test_searchFindsWords(self):
        """
        Search finds chat entries containing all the words, any case,
        newest C{limit} in display order, oldest first.
        """
        store = self.open_store()
        texts = [
            "The quick brown fox",
            "lazy dog sleeps",
            "quick thinking",
            "Quick brown cows",
            "nothing here",
        ]
        chain = make_chain(self.alice, 5, texts=texts)
        store.add_entries(chain)
        self.assertEqual(store.search("quick"), [chain[0], chain[2], chain[3]])
        self.assertEqual(store.search("QUICK brown"), [chain[0], chain[3]])
        self.assertEqual(store.search("quick", limit=2), [chain[2], chain[3]])
        self.assertEqual(store.search("giraffe"), [])

    def test_searchIsPlainText(self):
        """
        Search text is never FTS5 syntax: quotes, operators, wildcards,
        column filters and parentheses neither raise nor act as syntax.
        """
        store = self.open_store()
        texts = [
            'he said "hello" AND left',
            "NEAR( the end",
            "it's fine",
            "star * power",
            "text: column",
            "plain words",
        ]
        chain = make_chain(self.alice, len(texts), texts=texts)
        store.add_entries(chain)
        for query in [
            '"', '""', "AND", "OR", "NOT", "*", "NEAR(", "NEAR", "'", "",
            "   ", "(", ")", "^", ":", "text:", "-", "+", "{", "}", "a OR b",
            'x" OR "y', "NOT plain", "plain NOT", "p*", "\\",
            "\x00", "a\x00b", '"\x00', "\ud800", "x\udfff",
            "\N{SNOWMAN}", "'; DROP TABLE entries; --",
        ]:
            result = store.search(query)
            self.assertIsInstance(result, list, query)
        self.assertEqual(store.search(""), [])
        self.assertEqual(store.search("   "), [])
        self.assertEqual(store.search('"'), [])
        self.assertEqual(store.search("*"), [])
        self.assertEqual(store.search("AND"), [chain[0]])
        self.assertEqual(store.search('"hello"'), [chain[0]])
        self.assertEqual(store.search("NEAR("), [chain[1]])
        self.assertEqual(store.search("it's"), [chain[2]])
        self.assertEqual(store.search("plain OR nothing"), [])
        self.assertEqual(store.search("p*"), [])
        self.assertEqual(store.search("text:"), [chain[4]])
        self.assertEqual(store.search("words plain"), [chain[5]])
        self.assertEqual(store.count(), len(texts))

    @settings(max_examples=200, deadline=None)
    @given(st.text(st.characters(blacklist_categories=())))
    def test_searchNeverFails(self, text):
        """
        Any search text whatsoever returns a list, never an error.
        """
        if not hasattr(self, "_searchStore"):
            self._searchStore = self.open_store()
            self._searchStore.add_entries(make_chain(self.alice, 2))
        try:
            self.assertIsInstance(self._searchStore.search(text), list)
        except SearchRefused as e:
            # Intended: more than MAX_SEARCH_TERMS different words are
            # refused with a message, never run.
            self.assertIn("different words", str(e))

    def test_searchRepeatedWordsCountOnce(self):
        """
        A word repeated a thousand times (any case) is one FTS5 phrase, not
        an AND of a thousand: the query SQLite sees is bounded by the
        number of different words.
        """
        store = self.open_store()
        chain = make_chain(self.alice, 2, texts=["the cat", "a dog"])
        store.add_entries(chain)
        self.assertEqual(search_module.fts_query("the " * 600 + "THE " * 600), '"the"')
        self.assertEqual(store.search("the " * 1150), [chain[0]])

    def test_searchTooManyWordsRefused(self):
        """
        More than L{MAX_SEARCH_TERMS} different words are refused with a
        clear message before any query runs; exactly that many are run.
        """
        store = self.open_store()
        store.add_entries(make_chain(self.alice, 1, texts=["w0 w1"]))
        words = [f"w{i}" for i in range(search_module.MAX_SEARCH_TERMS + 1)]
        statements = []
        sql(store).set_trace_callback(statements.append)
        with self.assertRaises(SearchRefused) as caught:
            store.search(" ".join(words))
        sql(store).set_trace_callback(None)
        self.assertEqual(statements, [])
        self.assertEqual(
            str(caught.exception),
            f"search has {len(words)} different words; "
            f"at most {search_module.MAX_SEARCH_TERMS} are allowed",
        )
        self.assertEqual(store.search(" ".join(words[:-1])), [])

    def test_searchTimeBudget(self):
        """
        A search that runs past its budget by the store's clock is
        abandoned inside SQLite (through the progress handler) with a
        "search too broad" answer; the store keeps working, and with a
        clock that does not move the same search completes.
        """
        path = self.mktemp() + ".sqlite"
        now = [0.0]

        def clock():
            now[0] += 0.05  # every look at the clock: 50 ms later
            return now[0]

        store = Store(path, clock=clock, search_budget_s=0.2)
        store.open()
        self.addCleanup(store.close)
        chain = make_chain(self.alice, 1000, texts=[f"common word {i}" for i in range(1000)])
        store.add_entries(chain)
        with self.assertRaises(SearchRefused) as caught:
            store.search("common word")
        self.assertIn("search too broad", str(caught.exception))
        # The progress handler is gone: other queries are not charged.
        self.assertEqual(store.count(), 1000)
        self.assertEqual(len(store.history(2000)), 1000)
        store._search._clock = lambda: 0.0
        self.assertEqual(store.search("common word", limit=3), chain[-3:])

    def test_searchPlansAgree(self):
        """
        Both search plans (join-and-sort for rare words, index scan for
        common ones) return the newest matches in display order, even when
        entries arrived out of display order.
        """
        store = self.open_store()
        carol = Identity.generate()
        rng = random.Random(4)
        pool = []
        for identity, start in [(self.alice, 1), (self.bob, 3), (carol, 2)]:
            texts = [
                "common" + (" rare" if rng.random() < 0.2 else "") + f" n{i}"
                for i in range(12)
            ]
            pool += make_chain(identity, 12, start_lamport=start, texts=texts)
        rng.shuffle(pool)
        for start in range(0, len(pool), 5):
            store.add_entries(pool[start : start + 5])
        display = sorted(pool, key=lambda e: (e.lamport, e.author, e.seq))
        for words in ["common", "rare", "common rare", "n3"]:
            matching = [
                e for e in display if set(words.split()) <= set(e.body["text"].split())
            ]
            query = search_module.fts_query(words)
            for limit in [1, 3, 10, 100]:
                join = store._search._search_rowids(query, limit, "join")
                scan = store._search._search_rowids(query, limit, "scan")
                probe = store._search._search_rowids(query, limit, "probe")
                self.assertEqual(join, scan, (words, limit))
                self.assertEqual(join, probe, (words, limit))
                self.assertEqual(store.search(words, limit), matching[-limit:])
        self.assertEqual(store.search("common", 0), [])

    def test_searchPlanChoice(self):
        """
        The search plan is chosen from the number of matches, counted only
        as far as the choice needs: I{join} while C{matches ** 2 <= limit *
        count}, I{scan} from there up to C{_SCAN_MAX_FACTOR} times that
        threshold, I{probe} beyond; every plan returns the newest matches.
        """
        store = self.open_store()
        texts = []
        for i in range(40):
            words = ["all"]
            words += ["twenty"] if i < 20 else []
            words += ["twentyone"] if i < 21 else []
            words += ["twentytwo"] if i < 22 else []
            texts.append(" ".join(words + [f"n{i}"]))
        chain = make_chain(self.alice, 40, texts=texts)
        store.add_entries(chain)
        # limit * count = 10 * 40 = 400: the threshold is 21 matches.
        self.patch(search_module, "_SCAN_MAX_FACTOR", 1)
        expected = {
            "n5": "join",
            "twenty": "join",
            "twentyone": "scan",
            "twentytwo": "probe",
            "all": "probe",
            "missing": None,
        }
        for word, plan in expected.items():
            query = search_module.fts_query(word)
            self.assertEqual(store._search._search_plan(query, 10), plan, word)
            matching = [e for e in chain if word in e.body["text"].split()]
            self.assertEqual(store.search(word, 10), matching[-10:], word)
        self.patch(search_module, "_SCAN_MAX_FACTOR", 16)
        self.assertEqual(store._search._search_plan('"all"', 10), "scan")
        self.assertRaises(ValueError, store._search._search_rowids, '"all"', 10, "bogus")


class BlockListTests(StoreTestsMixin, SynchronousTestCase):
    """
    L{Store.block}, L{Store.unblock} and L{Store.blocked}.
    """

    def test_lastEventWins(self):
        """
        The block list is the authors whose last event is a block, in
        order, and it survives reopening.
        """
        path = self.mktemp()
        store = self.open_store(path)
        self.assertEqual(store.blocked(), [])
        store.block("bb" * 32)
        store.block("aa" * 32)
        store.unblock("bb" * 32)
        store.block("cc" * 32)
        self.assertEqual(store.blocked(), ["aa" * 32, "cc" * 32])
        store.close()
        store.open()
        self.assertEqual(store.blocked(), ["aa" * 32, "cc" * 32])

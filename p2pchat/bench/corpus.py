"""
Realistic chat entries, signed for real, and stores filled with them.

A few authors post in turn at random; each author's entries are chained
(seq 1, 2, 3 ..., each naming the previous one as C{prev}) and Lamport
times rise across the whole log.  Texts are 4-16 words drawn from a fixed
vocabulary with Zipf-like frequencies (so some words are in a large share
of all messages and others are rare), and one in fifty texts carries a
word found nowhere else but in a handful of entries (C{topicNNN}).

Everything is seeded: the same arguments give the same entries.
"""

import os
import random
from typing import Iterator, List

from nacl.signing import SigningKey

from p2pchat.log.entry import Entry, create_entry
from p2pchat.log.identity import Identity
from p2pchat.log.store import Store

STORE_FILE_NAME = "p2pchat.sqlite3"  # what p2pchat.service opens
BATCH_ENTRIES = 1000
START_TS_MS = 1_732_170_000_000

VOCABULARY = """
the to and you it is that of for in on this we have be not with are was just
so but can what like at do get all if my me your they will one there out up
about now know think good time no it's how when would some then see going
really right people more yes here want did because well from been back make
today tomorrow meeting release build test deploy server node network peer
message chat history search store log replica gossip member failure link
latency throughput benchmark lab partition heal converge digest entry feed
author signature verify relay fanout cache query index disk memory cpu core
python twisted reactor protocol socket packet frame line console status help
coffee lunch weekend morning evening night week month year monday friday
please thanks sorry okay sure great nice cool maybe later soon never always
bug fix patch review merge branch commit issue ticket docs readme changelog
alice bob carol dave erin frank grace heidi ivan judy mallory oscar peggy
""".split()

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]


def identities(count: int) -> List[Identity]:
    """
    @return: C{count} fixed identities (the same on every run).
    """
    return [Identity(SigningKey(bytes([index + 1]) * 32)) for index in range(count)]


def chat_entries(count: int, authors: int = 4, seed: int = 1) -> Iterator[Entry]:
    """
    Yield C{count} signed chat entries by C{authors} authors.
    """
    chooser = random.Random(seed)
    people = identities(authors)
    heads = [(0, None)] * authors
    weights = [1.0 / rank for rank in range(1, len(VOCABULARY) + 1)]
    for index in range(count):
        author = chooser.randrange(authors)
        seq, prev = heads[author]
        words = chooser.choices(VOCABULARY, weights, k=chooser.randint(4, 16))
        if chooser.random() < 0.02:
            words.append(f"topic{chooser.randrange(max(1, count // 200))}")
        entry = create_entry(
            people[author],
            seq=seq + 1,
            prev=prev,
            lamport=index + 1,
            ts=START_TS_MS + index * 1000,
            kind="chat",
            body={"name": NAMES[author % len(NAMES)], "text": " ".join(words)},
        )
        heads[author] = (entry.seq, entry.id)
        yield entry


def build_store(data_dir: str, count: int, progress, authors: int = 4) -> str:
    """
    Fill a node data directory's store with C{count} chat entries, added
    with L{Store.add_entries} in batches of L{BATCH_ENTRIES}.

    @return: the store's path.
    """
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, STORE_FILE_NAME)
    store = Store(path)
    store.open()
    try:
        batch: List[Entry] = []
        report_every = max(BATCH_ENTRIES, count // 10)
        for index, entry in enumerate(chat_entries(count, authors), 1):
            batch.append(entry)
            if len(batch) == BATCH_ENTRIES:
                store.add_entries(batch)
                batch = []
            if index % report_every == 0 and index < count:
                progress(f"  {index:,} of {count:,} entries signed and stored")
        if batch:
            store.add_entries(batch)
        if store.count() != count:
            raise RuntimeError(f"store holds {store.count()} entries, expected {count}")
    finally:
        store.close()
    return path

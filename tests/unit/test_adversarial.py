"""
Adversarial state-machine test: a malicious in-process peer
(L{tests.malicious.MaliciousPeer}) sends sequences of hostile frames to two
honest L{p2pchat.chat.node.ChatNode}s linked to each other, over flow-controlled
iosim links on one L{Clock}, and the issue's invariants are checked after
every step:

  - no exception escapes (nothing is logged with C{log_failure});
  - what a node buffers for one link (bytes written, not yet read by the
    peer) stays under L{LINK_BUFFER_BOUND}, even when the peer never reads;
  - an honest member is never shown dead, left, renamed or re-addressed by
    the other while it is alive and linked to it, whatever rows about it
    the attacker sends: unsigned, signed by the attacker's own key, a
    genuine old signed row replayed, a genuine signature on a changed
    name, address, incarnation or state, suspect and dead claims at
    signed and unsigned incarnations;

and, when the attack stops (attacker links closed) and the clock runs,
the honest nodes converge to equal store digests.
"""

import math
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.entry import MAX_TEXT_BYTES, create_entry
from p2pchat.log.identity import Identity
from p2pchat.log.streaming import DEFAULT_BATCH_ENTRIES
from p2pchat.mesh import wire
from p2pchat.mesh.membership.rows import ALIVE, DEAD, LEFT, SUSPECT, sign_row
from tests import strategies
from tests.malicious import HIGH_WATER_BYTES, MaliciousPeer, link_attacker, link_honest
from tests.nodes import Network

MAX_ATTACKER_LINKS = 6
UNREAD_LIMIT = 256 * 1024
"""
The nodes' C{max_unread_bytes} on attacker links here (8 MiB in
production, L{p2pchat.mesh.budgets.MAX_UNREAD_BYTES}, above the largest honest
burst; lowered so that examples reach it).
"""
LINK_BUFFER_BOUND = (
    HIGH_WATER_BYTES + DEFAULT_BATCH_ENTRIES * 5_000 + UNREAD_LIMIT + wire.MAX_LINE_BYTES
)
"""
What a node may hold for one link whose peer does not read: the transport's
high-water mark, then at most one stream batch (chat entries of at most
C{MAX_TEXT_BYTES} text, about 5,000 bytes each on the wire) before flow
control stops the producer, the other frames written while it is stopped
(announcements, gossip, pongs: at most L{UNREAD_LIMIT}, then the node
closes the link) and the one line that crossed a limit; about 1.4 MiB.
"""
CONVERGE_SECONDS = 90
SIMULATED_STEP_S = (0.0, 0.2, 1.0, 5.0, 16.0)
MAX_TICK_S = 1.0
"""
Time passes in ticks of at most this (the heartbeat interval): honest
nodes run their timers at least that often.  One jump of 5 s without a
tick would be every node frozen for 5 s, which no peer can cause; a node
then rightly stops trusting a member it has not heard for longer than
C{failure_timeout_s} (4 s), linked or not.
"""


class _Scratch:
    """
    The little of a test case that L{Network} uses, for one example: temp
    directories and clean-ups, run when the example ends.
    """

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="adversarial-")
        self.cleanups = []

    def mktemp(self):
        return tempfile.mkdtemp(dir=self.root)

    def addCleanup(self, function, *args):
        self.cleanups.append((function, args))

    def clean(self):
        for function, args in reversed(self.cleanups):
            function(*args)
        shutil.rmtree(self.root, ignore_errors=True)


def _texts():
    return st.one_of(
        st.text(min_size=1, max_size=40).filter(lambda t: t.strip()),
        st.integers(MAX_TEXT_BYTES - 100, MAX_TEXT_BYTES).map(lambda n: "x" * n),
    )


class AdversarialNetwork(RuleBasedStateMachine):
    """
    Two honest nodes, alice and bob (bob dials alice), and one attacker
    with up to L{MAX_ATTACKER_LINKS} links to either of them.
    """

    def __init__(self):
        super().__init__()
        self.scratch = _Scratch()
        self.failures = []
        globalLogPublisher.addObserver(self._observe)
        self.net = Network(self.scratch)
        self.alice = self.net.node("alice")
        self.bob = self.net.node("bob")
        self.honest = [self.alice, self.bob]
        self._link_honest()
        self.attackers = []
        self.entry_pool = []
        self.genuine_rows = []

    # Plumbing

    def _observe(self, event):
        if "log_failure" in event:
            self.failures.append(event)

    def _link_honest(self):
        server, client, pump = link_honest(self.alice, self.bob, self.net.clock)
        self.net.pumps.append(pump)
        self.honest_link = (server, client)
        self.net.settle()

    def _honest_linked(self):
        server, client = self.honest_link
        return server.accepted and client.accepted

    def _open_link(self, target, reading=True, handshake=True):
        node = self.honest[target]
        attacker = MaliciousPeer(reading=reading)
        server, pump = link_attacker(node, self.net.clock, attacker)
        server.max_unread_bytes = UNREAD_LIMIT
        self.net.pumps.append(pump)
        if handshake:
            attacker.hello()
        self.attackers.append((attacker, server))
        self.net.settle()
        return attacker

    def _attacker(self, pick):
        """
        An open attacker link (a new one, handshaken, if none is open).
        """
        open_links = [a for a, _ in self.attackers if not a.closed]
        if not open_links:
            return self._open_link(pick % 2)
        return open_links[pick % len(open_links)]

    def _send(self, pick, frames):
        attacker = self._attacker(pick)
        for frame in frames:
            attacker.send_frame(frame)
        self.net.settle()

    def teardown(self):
        try:
            self._converge()
        finally:
            globalLogPublisher.removeObserver(self._observe)
            self.scratch.clean()

    def _converge(self):
        for attacker, _ in self.attackers:
            if not attacker.closed:
                attacker.transport.loseConnection()
        self.net.settle()
        if not self._honest_linked():
            # The honest nodes can still reach each other: a real node
            # dials again (p2pchat.service); here the test does.
            self._link_honest()
        self.net.tick(seconds=2.0, times=CONVERGE_SECONDS // 2)
        digests = [node.chat.status()["digest"] for node in self.honest]
        assert digests[0] == digests[1], (
            "honest nodes did not converge after the attack stopped",
            [node.chat.status()["messages"] for node in self.honest],
        )
        assert not self.failures, self.failures[0]

    # Rules: the attacker

    @rule(to=st.integers(0, 1), reading=st.booleans(), handshake=st.booleans())
    def connect(self, to, reading, handshake):
        if sum(1 for a, _ in self.attackers if not a.closed) < MAX_ATTACKER_LINKS:
            self._open_link(to, reading, handshake)

    @rule(pick=st.integers(0, 7), data=strategies.garbage_bytes())
    def garbage(self, pick, data):
        self._attacker(pick).send_raw(data + b"\n")
        self.net.settle()

    @rule(pick=st.integers(0, 7), size=st.sampled_from([wire.MAX_LINE_BYTES + 1, 200_000]))
    def overlong_line(self, pick, size):
        self._attacker(pick).send_raw(b"{" + b"x" * size + b"\n")
        self.net.settle()

    @rule(pick=st.integers(0, 7), frame=strategies.json_objects_with_type())
    def random_frame(self, pick, frame):
        self._send(pick, [frame])

    @rule(pick=st.integers(0, 7), data=st.data())
    def hostile_frame(self, pick, data):
        kind = data.draw(st.sampled_from(
            ["summary", "more", "ihave", "graft", "prune", "gossip", "error", "hello", "ping",
             "bye"]))
        self._send(pick, [data.draw(self._hostile(kind))])

    @rule(pick=st.integers(0, 7), data=st.data(), count=st.integers(1, 30))
    def repeat_hostile_frame(self, pick, data, count):
        """
        The same replication frame many times: a flood of tiny frames.
        """
        kind = data.draw(st.sampled_from(["summary", "ihave", "graft"]))
        self._send(pick, [data.draw(self._hostile(kind))] * count)

    @rule(pick=st.integers(0, 7), data=st.data(), times=st.sampled_from([1, 2, 500]),
          reading=st.booleans())
    def graft_flood(self, pick, data, times, reading):
        """
        A graft naming one held entry many times, from a peer that may not
        read (finding 4).
        """
        attacker = self._attacker(pick)
        if not reading:
            attacker.stop_reading()
        if self.entry_pool and data.draw(st.booleans()):
            entry_id = max(self.entry_pool, key=lambda e: len(e.body.get("text", ""))).id
        else:
            entry_id = data.draw(self._ids())
        attacker.send_frame({"type": "graft", "ids": [entry_id] * times})
        self.net.settle()

    @rule(pick=st.integers(0, 7), data=st.data(), count=st.integers(1, 3))
    def forged_rows(self, pick, data, count):
        """
        Rows about an honest member in every hostile flavour (finding 5),
        several in one frame: see L{_forged_row}.
        """
        rows = [data.draw(self._forged_row()) for _ in range(count)]
        self._send(pick, [{"type": "gossip", "rows": rows}])

    @rule(who=st.integers(0, 1), name=st.sampled_from(["alice", "bob", "carol", "dave"]))
    def honest_rename(self, who, name):
        """
        An honest member renames itself: its older signed rows (old name,
        lower incarnation) become material for replays.
        """
        node = self.honest[who]
        self._remember(node)
        node.chat.set_name(name)
        self._remember(node)
        # Let the rename reach the other member (gossip goes out on the
        # tick) before the invariants compare names again.
        self.net.tick(seconds=0.2, times=2)

    @rule(pick=st.integers(0, 7), data=st.data(), pages=st.integers(1, 4),
          wait=st.booleans())
    def summary_pages(self, pick, data, pages, wait):
        """
        A summary round from the attacker: pages in order or not (an
        C{after} that is not the last author of the previous page), and
        the next page sent before the node's C{more} or after it.
        """
        attacker = self._attacker(pick)
        after = None
        for index in range(pages):
            final = index == pages - 1
            vv = data.draw(self._page_vv(after, min_size=0 if final else 1))
            if data.draw(st.booleans()):
                # Out of order: any other starting point.
                after = data.draw(st.none() | strategies.node_ids())
                vv = {k: v for k, v in vv.items() if after is None or k > after}
            if not vv and not final:
                continue
            attacker.send_frame(wire.summary_page(after, vv, final))
            if vv:
                after = max(vv)
            if wait:
                self.net.settle()
        self.net.settle()

    @rule(pick=st.integers(0, 7), count=st.integers(1, 3))
    def unasked_more(self, pick, count):
        """
        C{more} frames when no page of the attacker's is unanswered.
        """
        self._send(pick, [{"type": "more"}] * count)

    @rule(pick=st.integers(0, 7), data=st.data(), count=st.integers(1, 30),
          reading=st.booleans())
    def ihave_sync_unknown(self, pick, data, count, reading):
        """
        C{ihave} C{sync} frames naming ids the node lacks, repeated, from a
        peer that may not read (finding 3: each one asked the node for a
        whole version vector, without flow control).
        """
        attacker = self._attacker(pick)
        if not reading:
            attacker.stop_reading()
        ids = data.draw(st.lists(strategies.node_ids(), min_size=1, max_size=20))
        for _ in range(count):
            attacker.send_frame({"type": "ihave", "ids": ids, "sync": True})
        self.net.settle()

    @rule(pick=st.integers(0, 7), data=st.data())
    def mutated_entry(self, pick, data):
        """
        An honest (or the attacker's) entry re-encoded or tampered with:
        re-cased C{sig} (finding 1), NFD text, changed text.
        """
        if self.entry_pool and data.draw(st.booleans()):
            entry = data.draw(st.sampled_from(self.entry_pool))
            wire_entry = dict(entry.to_wire())
            how = data.draw(st.sampled_from(["recase", "tamper", "replay", "replay_sync"]))
            if how == "recase":
                wire_entry["sig"] = wire_entry["sig"].upper()
            elif how == "tamper":
                wire_entry["body"] = dict(wire_entry["body"], name="mallory")
            frame = wire.entry_frame(wire_entry, sync=how == "replay_sync")
            self._send(pick, [frame])
        else:
            _, _, line = data.draw(strategies.encoding_mutations())
            self._attacker(pick).send_line(line)
            self.net.settle()

    @rule(pick=st.integers(0, 7), count=st.integers(1, 300), new_authors=st.booleans(),
          big=st.booleans(), sync=st.booleans())
    def flood(self, pick, count, new_authors, big, sync):
        """
        Valid entries: one new chain, or one entry each by many new authors.
        """
        text = "f" * (MAX_TEXT_BYTES if big else 10)
        entries = []
        author, prev = Identity.generate(), None
        for seq in range(1, count + 1):
            if new_authors:
                author, prev, at = Identity.generate(), None, 1
            else:
                at = seq
            entry = create_entry(author, at, prev, at, at, "chat", {"name": "flood", "text": text})
            prev = entry.id
            entries.append(entry)
        self.entry_pool.extend(entries[:3])
        self._send(pick, [wire.entry_frame(e.to_wire(), sync=sync) for e in entries])

    @rule(pick=st.integers(0, 7), reading=st.booleans())
    def set_reading(self, pick, reading):
        attacker = self._attacker(pick)
        attacker.start_reading() if reading else attacker.stop_reading()
        self.net.settle()

    # Rules: honest activity and time

    @rule(who=st.integers(0, 1), text=_texts())
    def honest_post(self, who, text):
        self.entry_pool.append(self.honest[who].chat.post(text))
        self.net.settle()

    @rule(who=st.integers(0, 1), posts=st.integers(1, 40), ticks=st.integers(1, 25))
    def honest_chatter(self, who, posts, ticks):
        """
        Ordinary traffic over a few seconds, tick by tick: posts to push
        or announce, heartbeats to gossip, also on attacker links that do
        not read.
        """
        node = self.honest[who]
        for i in range(ticks):
            for _ in range(posts):
                self.entry_pool.append(node.chat.post(f"chatter {i}"))
            self.net.tick(seconds=0.2)
        del self.entry_pool[:-500]

    @rule(seconds=st.sampled_from(SIMULATED_STEP_S))
    def advance(self, seconds):
        ticks = max(1, math.ceil(seconds / MAX_TICK_S))
        self.net.tick(seconds=seconds / ticks, times=ticks)

    # Hostile frames

    def _ids(self):
        known = [entry.id for entry in self.entry_pool]
        return (st.sampled_from(known) | strategies.node_ids()) if known else strategies.node_ids()

    def _authors(self):
        known = [node.node_id for node in self.honest] + [e.author for e in self.entry_pool]
        return st.sampled_from(known) | strategies.node_ids()

    def _hostile(self, kind):
        if kind == "summary":
            return st.builds(
                lambda after, final, vv: wire.summary_page(
                    after, {k: v for k, v in vv.items() if after is None or k > after},
                    final),
                st.none() | self._authors(), st.booleans(), self._page_vv(None, 0))
        if kind == "ihave":
            return st.builds(
                lambda ids, sync: {"type": "ihave", "ids": ids, "sync": sync},
                st.lists(self._ids(), min_size=1, max_size=50), st.booleans())
        if kind == "graft":
            return st.builds(
                lambda one, times, more: {"type": "graft", "ids": ([one] * times + more)[:500]},
                self._ids(), st.integers(1, 500), st.lists(self._ids(), max_size=5))
        if kind == "gossip":
            return st.lists(self._forged_row(), min_size=1, max_size=3).map(
                lambda rows: {"type": "gossip", "rows": rows})
        if kind == "error":
            return st.sampled_from(["\x1b[2J\x1b[31mowned", "a\nb\rc", "x" * 10_000]).map(
                wire.error)
        if kind == "hello":
            return st.builds(wire.hello, self._authors(), strategies.names(),
                             st.sampled_from([None, "evil.example:1"]))
        return st.just({"type": kind})

    def _page_vv(self, after, min_size):
        """
        A summary page's C{vv}, in the one accepted form: ascending
        authors after C{after}, each a seq or C{[contiguous, head]}.
        """
        seqs = st.sampled_from([0, 1, 2, 10**6, 2**53])
        holes = st.tuples(seqs, seqs).filter(lambda p: p[0] < p[1]).map(list)
        # Keys at or before C{after} are dropped after drawing, not
        # filtered while drawing: ids are random keys, and hypothesis needs
        # the same draws for the same choices.
        return st.dictionaries(
            self._authors(), seqs | holes, min_size=min_size, max_size=20
        ).map(lambda vv: dict(sorted((k, v) for k, v in vv.items()
                                     if after is None or k > after)))

    def _remember(self, node):
        """
        Keep C{node}'s current signed row: what an attacker on any of its
        links sees, and may replay later.
        """
        row = dict(node.membership.own_row())
        if row not in self.genuine_rows:
            self.genuine_rows.append(row)

    def _genuine(self, node):
        """
        @return: the genuine signed rows of C{node} seen so far: its own
            rows remembered, and its rows the attacker received.
        """
        self._remember(node)
        rows = [row for row in self.genuine_rows if row["id"] == node.node_id]
        for attacker, _ in self.attackers:
            for frame in attacker.frames():
                for row in frame.get("rows") or ():
                    if isinstance(row, dict) and row.get("id") == node.node_id:
                        rows.append(row)
        return rows

    def _forged_row(self):
        """
        A hostile row about an honest member (or, sometimes, a stranger):

          - C{unsigned}: no C{sig};
          - C{own_key}: signed by the attacker's own key for the member's id;
          - C{replay}: one of the member's genuine signed rows, perhaps old
            (before a rename), perhaps as a suspect or dead claim, perhaps
            with a heartbeat far ahead;
          - C{tamper}: a genuine signed row with a changed name, address,
            incarnation or state (C{left}, or C{suspect}/C{dead} one
            incarnation above the signed one);
          - C{stranger}: a new member signed by its own key, in any state.
        """
        def build(target, flavour, pick, state, name, address, inc_delta, hb):
            if flavour == "stranger" or target == 2:
                stranger = Identity.generate()
                inc = 1 + inc_delta
                return {"id": stranger.node_id, "inc": inc, "state": state, "hb": hb,
                        "name": name, "addr": address,
                        "sig": sign_row(stranger.sign, stranger.node_id, inc, name, address,
                                        LEFT if state == LEFT else ALIVE)}
            node = self.honest[target]
            genuine = self._genuine(node)
            row = dict(genuine[pick % len(genuine)])
            if flavour == "unsigned":
                row.update(state=state, name=name, addr=address, hb=hb)
                row["inc"] += inc_delta
                del row["sig"]
            elif flavour == "own_key":
                row.update(state=state, name=name, addr=address, hb=hb)
                row["inc"] += inc_delta
                row["sig"] = sign_row(Identity.generate().sign, node.node_id, row["inc"],
                                      name, address, LEFT if state == LEFT else ALIVE)
            elif flavour == "replay":
                if state in (SUSPECT, DEAD):
                    row["state"] = state
                row["hb"] = max(row["hb"], hb)
            else:  # tamper: one field changed under the genuine signature
                field = pick % 4
                if field == 0:
                    row["name"] = name if name != row["name"] else name + "x"
                elif field == 1:
                    row["addr"] = address if address != row["addr"] else "evil.example:2"
                elif field == 2:
                    row["inc"] += max(1, inc_delta)
                    row["state"] = state
                else:
                    row["state"] = LEFT
            return row

        return st.builds(
            build,
            st.integers(0, 2),
            st.sampled_from(["unsigned", "own_key", "replay", "tamper", "stranger"]),
            st.integers(0, 50),
            st.sampled_from([ALIVE, SUSPECT, DEAD, LEFT]),
            st.sampled_from(["alice", "bob", "mallory"]),
            st.sampled_from([None, "evil.example:1", "alice.example:9090"]),
            st.sampled_from([0, 1, 2**32, 2**40]),
            st.sampled_from([0, 10**6]),
        )

    # Invariants

    @invariant()
    def no_exception_escaped(self):
        assert not self.failures, self.failures[0]

    @invariant()
    def link_buffers_bounded(self):
        for _, server in self.attackers:
            buffered = server.transport.buffered if server.transport else 0
            assert buffered <= LINK_BUFFER_BOUND, (
                f"node holds {buffered} bytes for one link (bound {LINK_BUFFER_BOUND})"
            )

    @invariant()
    def honest_members_shown_as_they_are(self):
        if not self._honest_linked():
            return
        for viewer, subject in ((self.alice, self.bob), (self.bob, self.alice)):
            member = viewer.membership.member(subject.node_id)
            seen, who = viewer.chat.name, subject.chat.name
            assert member is not None, f"{seen} does not know {who}"
            assert member.state not in (DEAD, LEFT), (
                f"{seen} shows {who} {member.state} while alive and linked")
            assert member.name == who, f"{seen} shows {who} renamed to {member.name!r}"
            assert member.address == subject.membership.address, (
                f"{seen} shows {who} at {member.address!r}")

SETTINGS = settings(
    # About 30-40 s of CPU on the 2-core test machine; run more locally
    # with settings(SETTINGS, max_examples=...) (400 x 30 steps were run).
    max_examples=80,
    stateful_step_count=20,
    deadline=None,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class AdversarialTests(SynchronousTestCase):
    """
    Run L{AdversarialNetwork}.
    """

    def test_adversarial_sequences(self):
        """
        No sequence of hostile frames from one peer breaks an invariant.
        The failing sequence (hypothesis's notes) goes into the failure
        message, which trial would not show otherwise.
        """
        try:
            run_state_machine_as_test(AdversarialNetwork, settings=SETTINGS)
        except Exception as e:
            notes = getattr(e, "__notes__", [])
            raise self.failureException("\n".join([repr(e)] + notes)) from e

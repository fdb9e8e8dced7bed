"""
Hostile gossip against one L{Membership} (a L{Clock} and a recording
output): forged rows cannot take a member over, replays cannot revive a
member that left, and strangers cannot fill the table or cut joiners off.
"""

from nacl.signing import SigningKey
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.identity import Identity
from p2pchat.mesh import wire
from p2pchat.mesh.membership import ALIVE, DEAD, SUSPECT, MembershipConfig, intake
from p2pchat.mesh.membership.admission import NEW_MEMBERS_BURST, NEW_MEMBERS_PER_S, VERIFIES_BURST
from p2pchat.mesh.membership.rows import LEFT, row_statement, verify_row
from tests.nodes import Network
from tests.unit.test_membership import BOB, CAROL, DAVE, ME, Harness, gossip, row, signed_left


def strangers(count, start=1000):
    """
    @return: C{count} fresh identities (fixed, so runs repeat).
    """
    return [
        Identity(SigningKey((start + i).to_bytes(4, "big") * 8)) for i in range(count)
    ]


def carol_view(h):
    member = h.membership.member(CAROL.node_id)
    return (member.state, member.incarnation, member.name, member.address, member.signed)


class TakeoverTests(SynchronousTestCase):
    """
    Finding 5: claims about a member cannot outrank its own signed word.
    """

    def setUp(self):
        self.h = Harness()
        self.h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        self.h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 5, name="carol")))
        self.before = carol_view(self.h)
        self.h.output.clear()

    def assertForgeryRejected(self, *rows):
        error = self.assertRaises(
            wire.FrameError, self.h.membership.rx_frame, BOB.node_id, gossip(*rows)
        )
        self.assertIn(CAROL.node_id[:8], str(error))
        self.assertEqual(carol_view(self.h), self.before)
        self.h.advance(0.2)
        self.assertNotIn(CAROL.node_id, [r["id"] for r in self.h.output.sent()])

    def test_two_unsigned_rows_take_over_nobody(self):
        """
        The reported attack: two rows in one frame raise carol's
        incarnation by 2**32 each, renaming, re-addressing and killing
        her.  Unsigned rows are malformed now; nothing changes.
        """
        rows = [
            {k: v for k, v in row(CAROL, inc, state, name="mallory", addr="6.6.6.6:1").items()
             if k != "sig"}
            for inc, state in ((5 + 2**32, ALIVE), (5 + 2**33, DEAD))
        ]
        self.assertForgeryRejected(*rows)

    def test_rows_signed_by_someone_else_rejected(self):
        """
        The same rows signed by the attacker's own key are forgeries.
        """
        self.assertForgeryRejected(
            row(CAROL, 5 + 2**32, name="mallory", addr="6.6.6.6:1", signer=BOB),
            row(CAROL, 5 + 2**33, DEAD, signer=BOB),
        )

    def test_rumour_at_an_unsigned_incarnation_rejected(self):
        """
        A suspect or dead claim must carry the member's signature for the
        incarnation it names: a rumour at a higher one is a forgery.
        """
        real = row(CAROL, 5, DEAD, name="carol")
        self.assertForgeryRejected(dict(real, inc=6))

    def test_forged_rows_about_self_rejected(self):
        """
        Rows about this node raising its incarnation that it did not sign
        are forgeries: the node does not chase them to 2**53.
        """
        for forged in (
            row(ME, 2**33, DEAD, signer=BOB),
            {k: v for k, v in row(ME, 2**32, DEAD).items() if k != "sig"},
        ):
            self.assertRaises(
                wire.FrameError, self.h.membership.rx_frame, BOB.node_id, gossip(forged)
            )
        self.assertEqual(self.h.membership.incarnation, 0)

    def test_refutation_is_signed(self):
        """
        A real rumour about this node (its own signature, state suspect)
        is refuted by a new incarnation whose row this node signed.
        """
        own = self.h.membership.own_row()
        self.h.membership.rx_frame(BOB.node_id, gossip(dict(own, state=SUSPECT)))
        self.h.advance(0.2)
        sent = [r for r in self.h.output.sent(BOB.node_id) if r["id"] == ME.node_id]
        # At once, and its second copy at the next tick.
        self.assertEqual([(r["inc"], r["state"]) for r in sent], [(1, ALIVE)] * 2)
        self.assertTrue(verify_row(sent[0]))

    def test_heartbeat_ahead_of_ours_refuted(self):
        """
        Our own signed row replayed with a heartbeat far ahead (which would
        make our real heartbeats look stale) is refuted the same way.
        """
        own = self.h.membership.own_row()
        self.h.membership.rx_frame(BOB.node_id, gossip(dict(own, hb=2**40)))
        self.assertEqual(self.h.membership.incarnation, 1)


def linked_to_carol():
    """
    @return: a L{Harness} linked to carol and just heard from her at
        incarnation 5, with its output cleared.
    """
    h = Harness()
    h.membership.link_up(CAROL.node_id, "carol", "10.0.0.9:9000", outbound=True)
    h.membership.rx_frame(CAROL.node_id, gossip(row(CAROL, 5)))
    h.output.clear()
    return h


class LifeguardTests(SynchronousTestCase):
    """
    Local confirmation: a node that hears a member does not believe a
    rumour that it is suspect or dead.
    """

    def test_linked_member_stays_alive_and_rumour_goes_to_it_once(self):
        """
        Linked to carol and just heard from her: a dead rumour (with her
        real signature) leaves her alive here, is not relayed, and is
        passed to carol alone, once per incarnation, so she refutes it.
        """
        h = linked_to_carol()
        rumour = row(CAROL, 5, DEAD)
        h.membership.rx_frame(BOB.node_id, gossip(rumour))
        h.membership.rx_frame(BOB.node_id, gossip(rumour))
        self.assertEqual(h.output.calls, [("send", CAROL.node_id, gossip(rumour))])
        self.assertEqual(h.state(CAROL), ALIVE)

    def test_rumour_at_a_new_incarnation_is_still_a_rumour(self):
        """
        Found by the adversarial state machine: carol refutes (signs
        incarnation 6); an attacker who saw that row first sends it here
        as C{dead} before carol's own row arrives.  A claim at a higher
        incarnation brings carol's signed statement, not the claim: linked
        and just heard, she stays alive and the rumour goes to her.
        """
        h = linked_to_carol()
        rumour = row(CAROL, 6, DEAD)
        h.membership.rx_frame(BOB.node_id, gossip(rumour))
        # The rumour goes to carol alone; her new signed row (alive) goes
        # on every link that does not know it yet.
        self.assertEqual(
            h.output.calls,
            [
                ("send", CAROL.node_id, gossip(rumour)),
                ("send", CAROL.node_id, gossip(row(CAROL, 6))),
            ],
        )
        self.assertEqual((h.state(CAROL), carol_view(h)[1]), (ALIVE, 6))

    def test_dead_at_a_new_incarnation_only_suspect_while_fresh(self):
        """
        Not linked, heartbeat fresh: a dead claim at a new incarnation is
        taken only as suspect, as at the current one.
        """
        h = Harness()
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 5, hb=1)))
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 6, DEAD, hb=1)))
        self.assertEqual(h.state(CAROL), SUSPECT)

    def test_dead_rumour_only_suspect_while_heartbeat_fresh(self):
        """
        Not linked, but carol's heartbeat advanced just now: a dead rumour
        makes her only suspect here.
        """
        h = Harness()
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 5, hb=1)))
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 5, DEAD, hb=1)))
        self.assertEqual(h.state(CAROL), SUSPECT)


class ReplayTests(SynchronousTestCase):
    """
    Old signed rows cannot bring back a member that left.
    """

    def test_replayed_alive_after_pruned_leave_ignored(self):
        """
        After carol's signed leave at incarnation 4 is pruned, her genuine
        alive row of incarnation 3 (replayed) is dropped; a new
        incarnation she signs is accepted.
        """
        h = Harness()
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 3)))
        h.membership.rx_frame(BOB.node_id, gossip(signed_left(CAROL, 4)))
        h.advance(h.membership.config.tombstone_s + 1)
        self.assertIsNone(h.membership.member(CAROL.node_id))
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 3, hb=99)))
        self.assertIsNone(h.membership.member(CAROL.node_id))
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 5)))
        self.assertEqual(h.state(CAROL), ALIVE)

    def test_left_row_signature_is_not_an_alive_signature(self):
        """
        The signed statement names the base state: a left signature does
        not make an alive row, nor the reverse.
        """
        left = signed_left(CAROL, 4)
        self.assertFalse(verify_row(dict(left, state=ALIVE)))
        self.assertNotEqual(
            row_statement(CAROL.node_id, 4, "c", None, LEFT),
            row_statement(CAROL.node_id, 4, "c", None, ALIVE),
        )


class TableTests(SynchronousTestCase):
    """
    Finding 8: a table strangers cannot fill, and joiners always gossiped.
    """

    def test_full_table_still_gossips_with_joiner(self):
        """
        With the table full (and nothing unproven to evict), a new link
        still gets per-link gossip state: the whole table at once, then
        this node's changes.
        """
        h = Harness(MembershipConfig(max_members=1))
        h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        h.output.clear()
        h.membership.link_up(DAVE.node_id, "dave", "10.0.0.4:9000", outbound=True)
        sent = h.output.sent(DAVE.node_id)
        self.assertEqual(sorted(r["id"] for r in sent), sorted([ME.node_id]))
        h.output.clear()
        h.membership.set_name("me2")
        h.advance(0.2)
        for peer in (BOB, DAVE):
            self.assertIn(ME.node_id, [r["id"] for r in h.output.sent(peer.node_id)])

    def test_new_members_per_link_budget(self):
        """
        One link may add at most NEW_MEMBERS_BURST members at once; the
        rest are dropped (not fatal) and counted, with one log line; the
        budget refills at NEW_MEMBERS_PER_S.
        """
        logged = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        h = Harness()
        h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        fakes = [row(who) for who in strangers(NEW_MEMBERS_BURST + 50)]
        h.membership.rx_frame(BOB.node_id, gossip(*fakes[:NEW_MEMBERS_BURST]))
        h.clock.advance(1.0)
        h.membership.rx_frame(BOB.node_id, gossip(*fakes[NEW_MEMBERS_BURST:]))
        refilled = int(NEW_MEMBERS_PER_S)
        self.assertEqual(len(h.membership.members()), 1 + NEW_MEMBERS_BURST + refilled)
        self.assertEqual(h.membership.dropped_rows, 50 - refilled)
        self.assertEqual(
            len([e for e in logged if e.get("what") == "new members"
                 and "over its budget" in e.get("log_format", "")]),
            1,
        )

    def test_rows_over_budget_are_owed_then_applied(self):
        """
        Rows over a link's new-member budget are not lost (the sender
        will not send them again): the link owes them, and each tick
        applies as many as the budget refilled, in the order they came
        (each learned member is one C{member_changed}; the link stays).
        """
        h = Harness()
        h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        fakes = [row(who) for who in strangers(NEW_MEMBERS_BURST + 50)]
        h.membership.rx_frame(BOB.node_id, gossip(*fakes[:NEW_MEMBERS_BURST]))
        h.membership.rx_frame(BOB.node_id, gossip(*fakes[NEW_MEMBERS_BURST:]))
        self.assertEqual(len(h.membership.members()), 1 + NEW_MEMBERS_BURST)
        self.assertEqual(h.membership.owed_rows, 50)
        h.output.clear()
        h.advance(1.0)
        learned = [call[1] for call in h.output.of("member_changed")]
        self.assertEqual(
            learned, [r["id"] for r in fakes[NEW_MEMBERS_BURST:][:int(NEW_MEMBERS_PER_S)]]
        )
        self.assertEqual(h.output.of("disconnect"), [])
        self.assertEqual(h.membership.owed_rows, 50 - int(NEW_MEMBERS_PER_S))
        # Rows received earlier are no sign of life of the link now.
        self.assertEqual(h.membership.member(BOB.node_id).last_heard, 0.0)
        h.advance(2.0)
        self.assertEqual(len(h.membership.members()), 1 + NEW_MEMBERS_BURST + 50)
        self.assertEqual(h.membership.owed_rows, 0)
        self.assertEqual(h.state(strangers(1, 1000 + NEW_MEMBERS_BURST + 49)[0]), ALIVE)

    def test_owed_rows_bounded_per_link(self):
        """
        A link owes at most OWED_ROWS_PER_LINK rows: the rest are lost
        (counted), so a hostile link cannot make this node hold more.
        """
        h = Harness()
        h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        extra = 7
        count = NEW_MEMBERS_BURST + intake.OWED_ROWS_PER_LINK + extra
        fakes = [row(who) for who in strangers(count)]
        for start in range(0, count, NEW_MEMBERS_BURST):
            h.membership.rx_frame(
                BOB.node_id, gossip(*fakes[start:start + NEW_MEMBERS_BURST])
            )
        self.assertEqual(h.membership.owed_rows, intake.OWED_ROWS_PER_LINK)
        self.assertEqual(h.membership._intake.lost_rows, extra)

    def test_owed_rows_bounded_in_all(self):
        """
        All links together owe at most OWED_ROWS_IN_ALL rows (here made
        smaller than two links' share).
        """
        self.patch(intake, "OWED_ROWS_PER_LINK", 100)
        self.patch(intake, "OWED_ROWS_IN_ALL", 150)
        h = Harness()
        people = iter(strangers(2 * NEW_MEMBERS_BURST + 200))
        for peer in (BOB, CAROL):
            h.membership.link_up(peer.node_id, "peer", None, outbound=True)
            h.membership.rx_frame(
                peer.node_id, gossip(*[row(next(people)) for _ in range(NEW_MEMBERS_BURST)])
            )
            h.membership.rx_frame(peer.node_id, gossip(*[row(next(people)) for _ in range(100)]))
            h.clock.advance(1.0)  # the budget of checks in all refills (no tick)
        self.assertEqual(h.membership.owed_rows, 150)
        self.assertEqual(h.membership._intake.lost_rows, 50)

    def test_owed_row_not_checked_again(self):
        """
        A row a link owes that comes again (the same row, from any link)
        is not form-checked again (its address parsed again ...): the
        copy checked first is used, even if the new one differs in type
        only (C{True} for C{1}).
        """
        checks = []
        real = intake.check_row

        def counting(row, known):
            checks.append(row["id"])
            return real(row, known)

        self.patch(intake, "check_row", counting)
        h = Harness()
        h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        people = strangers(NEW_MEMBERS_BURST + 1)
        h.membership.rx_frame(
            BOB.node_id, gossip(*[row(who) for who in people[:NEW_MEMBERS_BURST]])
        )
        late = row(people[-1], inc=1)
        h.membership.rx_frame(BOB.node_id, gossip(late))
        again = dict(late, inc=True)
        self.assertEqual(again, late)
        h.membership.rx_frame(BOB.node_id, gossip(again))
        self.assertEqual(checks.count(people[-1].node_id), 1)
        self.assertEqual(h.membership.owed_rows, 1)
        h.advance(1.0)
        self.assertIs(type(h.membership.member(people[-1].node_id).incarnation), int)

    def test_owed_forgery_closes_the_link(self):
        """
        An owed row's signature is checked when it is applied: a forgery
        closes the link then, and nothing of it is learned.
        """
        h = Harness()
        h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        people = strangers(NEW_MEMBERS_BURST + 1)
        h.membership.rx_frame(
            BOB.node_id, gossip(*[row(who) for who in people[:NEW_MEMBERS_BURST]])
        )
        h.membership.rx_frame(BOB.node_id, gossip(row(people[-1], signer=DAVE)))
        self.assertEqual(h.membership.owed_rows, 1)
        h.output.clear()
        h.advance(0.2)
        self.assertEqual(
            [call[:2] for call in h.output.of("disconnect")], [("disconnect", BOB.node_id)]
        )
        self.assertIn("signature is not its member's", h.output.of("disconnect")[0][2])
        self.assertIsNone(h.membership.member(people[-1].node_id))
        self.assertEqual(h.membership.owed_rows, 0)

    def test_owed_rows_forgotten_with_the_link(self):
        """
        When the last link to a peer closes, it owes nothing any more.
        """
        h = Harness()
        h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        people = strangers(NEW_MEMBERS_BURST + 3)
        h.membership.rx_frame(
            BOB.node_id, gossip(*[row(who) for who in people[:NEW_MEMBERS_BURST]])
        )
        h.membership.rx_frame(BOB.node_id, gossip(*[row(who) for who in people[-3:]]))
        self.assertEqual(h.membership.owed_rows, 3)
        h.membership.link_down(BOB.node_id)
        self.assertEqual(h.membership.owed_rows, 0)
        h.advance(1.0)
        self.assertIsNone(h.membership.member(people[-1].node_id))

    def test_received_row_kept_as_received(self):
        """
        A learned member's row is the received dict itself (one dict per
        row, not a copy beside it), unless it says more than the record
        (an unknown field is not passed on).
        """
        h = Harness()
        h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        plain, extended = row(CAROL), row(DAVE, extra_field=1)
        h.membership.rx_frame(BOB.node_id, gossip(plain, extended))
        records = h.membership._table.records
        self.assertIs(records[CAROL.node_id].row(), plain)
        self.assertEqual(records[DAVE.node_id].row(), {
            k: v for k, v in extended.items() if k != "extra_field"
        })

    def test_verifications_per_link_budget(self):
        """
        A link's signature checks are budgeted: a frame costs at most
        VERIFIES_BURST checks, and a second frame at once gets almost none.
        """
        calls = []
        real = intake.verify_row

        def counting(row):
            calls.append(row["id"])
            return real(row)

        self.patch(intake, "verify_row", counting)
        h = Harness()
        h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        people = strangers(VERIFIES_BURST)
        h.membership.rx_frame(BOB.node_id, gossip(*[row(who) for who in people]))
        self.assertEqual(len(calls), VERIFIES_BURST)
        # Each a new signed name: each needs a check.
        h.membership.rx_frame(
            BOB.node_id, gossip(*[row(who, 1, name="renamed") for who in people])
        )
        self.assertEqual(len(calls), VERIFIES_BURST)
        self.assertEqual(h.membership.dropped_rows, VERIFIES_BURST)

    def test_heartbeats_cost_no_verification(self):
        """
        A row whose signed part this node already holds (a heartbeat, or
        a suspect claim about the same incarnation) is not checked again.
        """
        calls = []
        real = intake.verify_row
        self.patch(intake, "verify_row", lambda r: calls.append(1) or real(r))
        h = Harness()
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 5)))
        for hb in range(1, 20):
            h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 5, hb=hb)))
        self.assertEqual(len(calls), 1)

    def test_one_check_per_statement_per_frame(self):
        """
        A frame repeating one new signed row costs one check, not one per
        copy.
        """
        calls = []
        real = intake.verify_row
        self.patch(intake, "verify_row", lambda r: calls.append(1) or real(r))
        h = Harness()
        h.membership.rx_frame(BOB.node_id, gossip(*[row(CAROL, 5)] * 500))
        self.assertEqual((len(calls), h.state(CAROL)), (1, ALIVE))

    def test_unproven_evicted_before_proven(self):
        """
        When the table is full, a new member evicts the oldest unproven
        one; members this node completed a handshake with stay (carol,
        linked once and gone again).
        """
        h = Harness(MembershipConfig(max_members=4))
        h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        h.membership.link_up(DAVE.node_id, "dave", "10.0.0.4:9000", outbound=True)
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 1)))
        h.membership.link_up(CAROL.node_id, "carol", "10.0.0.9:9000", outbound=True)
        h.membership.link_down(CAROL.node_id)
        fakes = strangers(10)
        for who in fakes:
            h.membership.rx_frame(BOB.node_id, gossip(row(who)))
        kept = {m.node_id for m in h.membership.members()}
        self.assertEqual(kept, {BOB.node_id, DAVE.node_id, CAROL.node_id, fakes[-1].node_id})

    def test_ignored_members_leave_no_per_link_state(self):
        """
        Members that did not fit leave nothing behind in the link's
        reconciliation state (else a link could grow it without bound
        while the table is full).
        """
        h = Harness(MembershipConfig(max_members=1))
        h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        h.membership.rx_frame(BOB.node_id, gossip(*[row(who) for who in strangers(50)]))
        knows = h.membership._links.get(BOB.node_id).knows  # the per-link state itself
        self.assertEqual(set(knows), {BOB.node_id, ME.node_id} & set(knows))

    def test_table_full_of_proven_ignores_new(self):
        """
        With nothing unproven to evict, a new member is ignored.
        """
        h = Harness(MembershipConfig(max_members=1))
        h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL)))
        self.assertEqual([m.node_id for m in h.membership.members()], [BOB.node_id])


class ResolveTests(SynchronousTestCase):
    """
    C{/msg NAME} follows only signed names.
    """

    def test_hello_name_never_resolves(self):
        """
        A node whose only claim to the name bob is its hello (it is
        hidden, so it gossips no signed row) does not make C{/msg bob}
        ambiguous or capture it: alice resolves bob to the real bob, and
        the impostor only by its id.
        """
        net = Network(self)
        alice, bob, impostor = net.node("alice"), net.node("bob"), net.node("bob")
        impostor.chat.set_hidden(True)
        net.link(alice, bob)
        net.link(alice, impostor)
        net.tick(times=10)
        self.assertEqual(alice.chat.resolve("bob"), bob.node_id)
        self.assertEqual(alice.chat.resolve(impostor.node_id[:8]), impostor.node_id)
        self.assertEqual(alice.chat.name_of(impostor.node_id), "bob")

"""
Tests for L{p2pchat.log.admission.FeedAdmission} and how a node applies it:
the per-link budget of new feeds, and the certificate gate of TLS
networks.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.admission import (
    CATCH_UP_NEW_FEED_BURST,
    NEW_FEED_BURST,
    NEW_FEEDS_PER_S,
    FeedAdmission,
)
from p2pchat.log.entry import create_entry
from p2pchat.log.identity import Identity
from p2pchat.mesh import wire
from tests.nodes import Network


class Link:
    """
    A stand-in link (weakly referenced by the admission).
    """


class FakeAttestations:
    """
    Believes C{cert} bodies whose C{name} is C{good}.
    """

    def __init__(self):
        self.names = {}

    def learn(self, author, body):
        if body.get("name") != "good":
            return "certificate is not from this network's CA"
        self.names[author] = body["name"]
        return None


def entry_of(identity, kind="chat", seq=1, prev=None, name="x"):
    body = (
        {"name": name, "cert": "-", "proof": "00"}
        if kind == "cert" else {"name": name, "text": f"entry {seq}"}
    )
    return create_entry(identity, seq, prev, seq, 0, kind, body)


class BudgetTests(SynchronousTestCase):
    """
    New authors take tokens from their link's bucket.
    """

    def setUp(self):
        self.clock = Clock()
        self.held = set()
        self.admission = FeedAdmission(self.clock, self.held.__contains__)

    def test_burst_then_dropped(self):
        """
        The first L{NEW_FEED_BURST} new authors on a link are admitted;
        the next one is not (dropped, counted); another link has its own
        budget; one token's time later the link may bring one more.
        """
        link, other = Link(), Link()
        for number in range(NEW_FEED_BURST):
            self.assertTrue(self.admission.admit(f"author{number}", link))
        self.assertFalse(self.admission.admit("one more", link))
        self.assertEqual(self.admission.dropped, 1)
        self.assertTrue(self.admission.admit("elsewhere", other))
        self.clock.advance(1 / NEW_FEEDS_PER_S)
        self.assertTrue(self.admission.admit("later", link))
        self.assertFalse(self.admission.admit("too soon", link))

    def test_admitted_author_is_not_new_again(self):
        """
        An author admitted once is not a new feed for its next entries,
        even before its first one has been verified (verification runs in
        a thread, so they are read meanwhile): a flood of one new author
        costs one token.
        """
        link = Link()
        for number in range(NEW_FEED_BURST - 1):
            self.assertTrue(self.admission.admit(f"author{number}", link))
        self.assertTrue(self.admission.admit("flooder", link))
        for _ in range(100):
            self.assertTrue(self.admission.admit("flooder", link))
        self.assertFalse(self.admission.admit("someone else", link))

    def test_catch_up_has_its_own_larger_budget(self):
        """
        Catch-up this node asked for is charged to a larger bucket of its
        own: a link whose unsolicited budget is spent still brings
        L{CATCH_UP_NEW_FEED_BURST} new authors when asked.
        """
        link = Link()
        for number in range(NEW_FEED_BURST):
            self.admission.admit(f"pushed{number}", link)
        self.assertFalse(self.admission.admit("pushed", link))
        for number in range(CATCH_UP_NEW_FEED_BURST):
            self.assertTrue(self.admission.admit(f"asked{number}", link, solicited=True))
        self.assertFalse(self.admission.admit("asked", link, solicited=True))

    def test_known_authors_free(self):
        """
        Authors this node holds, or admitted lately, are not new: they
        cost nothing even when the link's budget is spent.
        """
        link = Link()
        for number in range(NEW_FEED_BURST):
            self.admission.admit(f"author{number}", link)
        self.held.add("old friend")
        self.assertTrue(self.admission.admit("old friend", link))
        admitted = entry_of(Identity.generate())
        self.assertIsNone(self.admission.refusal(admitted))
        self.assertTrue(self.admission.admit(admitted.author, link))
        self.assertFalse(self.admission.admit("stranger", link))

    def test_open_network_refuses_nothing(self):
        """
        Without attestations every signed entry passes the gate.
        """
        self.assertIsNone(self.admission.refusal(entry_of(Identity.generate())))
        self.assertEqual(self.admission.refused, 0)


class CertificateGateTests(SynchronousTestCase):
    """
    On a TLS network only certified authors get in.
    """

    def setUp(self):
        self.clock = Clock()
        self.attestations = FakeAttestations()
        self.admission = FeedAdmission(self.clock, lambda author: True,
                                       lambda: self.attestations)
        self.dave = Identity.generate()

    def test_uncertified_refused_until_cert(self):
        """
        A chat entry of an author without a verified certificate is
        refused; the author's valid C{cert} entry (not seq 1) admits it,
        and its other entries, before and after the cert, are then
        accepted.
        """
        first = entry_of(self.dave, seq=1)
        cert = entry_of(self.dave, "cert", seq=2, prev=first.id, name="good")
        third = entry_of(self.dave, seq=3, prev=cert.id)
        self.assertIn("no verified certificate", self.admission.refusal(first))
        self.assertIsNone(self.admission.refusal(cert))
        self.assertEqual(self.attestations.names, {self.dave.node_id: "good"})
        self.assertIsNone(self.admission.refusal(third))
        self.assertIsNone(self.admission.refusal(first))
        self.assertEqual(self.admission.refused, 1)

    def test_bad_cert_refused(self):
        """
        A C{cert} entry that does not hold is refused with its reason, and
        admits nothing.
        """
        cert = entry_of(self.dave, "cert", name="forged")
        self.assertIn("does not hold: certificate is not from",
                      self.admission.refusal(cert))
        self.assertIn("no verified certificate",
                      self.admission.refusal(entry_of(self.dave, seq=2, prev=cert.id)))

    def test_uncertified_always_charged(self):
        """
        Even an author this node holds entries of takes a token while it has
        no certificate (on a TLS network nothing uncertified is free).
        """
        link = Link()
        for number in range(NEW_FEED_BURST):
            self.admission.admit(f"author{number}", link)
        self.assertFalse(self.admission.admit(self.dave.node_id, link))


def new_author_frames(count):
    """
    @return: C{count} entry frames, each the seq-1 entry of a new author.
    """
    return [
        wire.entry_frame(entry_of(Identity.generate()).to_wire()) for _ in range(count)
    ]


class NodeBudgetTests(SynchronousTestCase):
    """
    A node drops what a link brings beyond its new-feed budget, keeps
    reading the link, and gets the rest through anti-entropy.
    """

    def test_new_author_flood_dropped_then_caught_up(self):
        """
        Bob pushes C{NEW_FEED_BURST + 200} one-entry authors he holds:
        alice keeps the first L{NEW_FEED_BURST}, drops the rest without
        ever pausing the link (so a chat line behind the flood arrives at
        once), and the next anti-entropy round brings the rest.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        at_alice, at_bob = net.link(alice, bob)
        bob.chat.post("hello")
        net.settle()
        count = NEW_FEED_BURST + 200
        entries = [entry_of(Identity.generate()) for _ in range(count)]
        bob.store.add_entries(entries)
        for entry in entries:
            at_bob.send_frame(wire.entry_frame(entry.to_wire()))
        bob.chat.post("still here")
        net.settle()
        self.assertFalse(at_alice.paused)
        self.assertEqual(alice.view.texts[-1], "still here")
        # Bob's own first post took one token of the burst too.
        self.assertEqual(alice.chat.status()["messages"], NEW_FEED_BURST + 1)
        self.assertEqual(alice.feed.admission.dropped, 201)
        for _ in range(40):
            net.tick(seconds=1)
            if alice.chat.status()["messages"] == count + 2:
                break
        self.assertEqual(alice.chat.status()["digest"], bob.chat.status()["digest"])
        self.assertTrue(at_alice.accepted)

    def test_known_authors_not_dropped(self):
        """
        Many entries of one author are one new feed: none of them is
        dropped.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        at_alice, at_bob = net.link(alice, bob)
        author, prev = Identity.generate(), None
        for seq in range(1, NEW_FEED_BURST + 201):
            entry = entry_of(author, seq=seq, prev=prev)
            prev = entry.id
            at_bob.send_frame(wire.entry_frame(entry.to_wire()))
        net.settle()
        self.assertFalse(at_alice.paused)
        self.assertEqual(alice.chat.status()["messages"], NEW_FEED_BURST + 200)


class NodeCertificateGateTests(SynchronousTestCase):
    """
    A node of a TLS network stores the feeds of certified authors only,
    with real certificates from C{p2pchat-ca}.
    """

    def setUp(self):
        import io
        import os

        from cryptography import x509

        from p2pchat.trust import ca
        from p2pchat.trust.attest import Attestations
        from tests.unit.test_attest import load

        quiet = io.StringIO()
        network, other = os.path.abspath(self.mktemp()), os.path.abspath(self.mktemp())
        for directory in (network, other):
            ca.main(["init", directory], stdout=quiet, stderr=quiet)
            ca.main(["issue", directory, "dave"], stdout=quiet, stderr=quiet)
        with open(os.path.join(network, "ca.pem"), "rb") as f:
            authority = x509.load_pem_x509_certificate(f.read())
        self.member_key = load(network, "dave")
        self.outsider_key = load(other, "dave")
        self.net = Network(self)
        self.alice = self.net.node("alice", attestations=Attestations([authority]))
        self.bob = self.net.node("bob")
        self.events = []
        self.alice.feed.log = type(self.alice.feed.log)(observer=self.events.append)

    def feed(self, key_and_certificate, identity, cert_at=2, length=3):
        """
        @return: a feed of C{identity}, chat entries with its C{cert}
            entry at seq C{cert_at}.
        """
        from p2pchat.trust.attest import attestation_body

        key, certificate = key_and_certificate
        entries, prev = [], None
        for seq in range(1, length + 1):
            if seq == cert_at:
                body = attestation_body(key, certificate, identity.node_id, "dave")
                entry = create_entry(identity, seq, prev, seq, 0, "cert", body)
            else:
                entry = create_entry(identity, seq, prev, seq, 0, "chat",
                                     {"name": "dave", "text": f"dave {seq}"})
            entries.append(entry)
            prev = entry.id
        return entries

    def refusals(self):
        return [e for e in self.events if "not storing entry" in e.get("log_format", "")]

    def test_member_feed_admitted_from_its_cert_on(self):
        """
        A member's feed whose cert entry is seq 2, relayed by bob: seq 1
        is not stored at first (one log line), the cert and seq 3 are, and
        anti-entropy brings seq 1 again once the cert is known; in the end
        alice holds the whole feed and shows dave's certified name.
        """
        dave = Identity.generate()
        feed = self.feed(self.member_key, dave)
        for entry in feed:
            self.bob.feed.rx_entry(entry.to_wire(), None)
        self.net.clock.advance(0)
        # Linking starts catch-up: bob streams seq 1, 2, 3 in order.
        at_alice, at_bob = self.net.link(self.alice, self.bob)
        refused = self.refusals()
        self.assertEqual(len(refused), 1)
        self.assertIn(feed[0].id[:12], refused[0]["id"])
        self.net.tick(0.2, times=40)
        for entry in feed:
            self.assertTrue(self.alice.feed.holds(entry.id), entry.seq)
        self.assertEqual(self.alice.chat.name_of(dave.node_id), "dave")
        self.assertTrue(at_alice.accepted)

    def test_outsiders_cannot_inject_authors(self):
        """
        Entries of an author whose certificate is from another CA, and of
        an author with no certificate at all, are never stored, however
        often they come; the refusals are one rate-limited log line, and
        the link stays up.
        """
        outsider, nobody = Identity.generate(), Identity.generate()
        bad_feed = self.feed(self.outsider_key, outsider, cert_at=1)
        at_alice, at_bob = self.net.link(self.alice, self.bob)
        for _ in range(3):
            for entry in bad_feed + [entry_of(nobody)]:
                at_bob.send_frame(wire.entry_frame(entry.to_wire()))
        self.net.settle()
        self.assertEqual(self.alice.chat.status()["messages"], 0)
        self.assertEqual(self.alice.feed.admission.refused, 12)
        self.assertEqual(len(self.refusals()), 1)
        self.assertNotIn(outsider.node_id, self.alice.feed.attestations.names)
        self.assertTrue(at_alice.accepted)

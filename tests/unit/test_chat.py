"""
Tests for L{p2pchat.chat.service}: the chat API's events, and a local
author that is not the node's mesh identity.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from p2pchat.chat import ChatService, IChatListener, LocalAuthor
from p2pchat.chat.names import Names
from p2pchat.log.feed import IFeedListener
from p2pchat.log.identity import Identity
from tests.nodes import Network


@implementer(IChatListener)
class RecordingListener:
    """
    Records every event as C{(method, value)}: a message by its text.
    """

    def __init__(self):
        self.calls = []

    def message(self, message):
        self.calls.append(("message", message.text, message.direct, message.entry.author))

    def notice(self, text):
        self.calls.append(("notice", text))

    def alert(self, text):
        self.calls.append(("alert", text))


class ChatServiceTests(SynchronousTestCase):
    def setUp(self):
        self.net = Network(self)
        self.node = self.net.node("alice")
        self.listener = RecordingListener()
        self.node.chat.subscribe(self.listener)

    def second_author(self, name):
        """
        @return: a L{ChatService} for another local author on the same node
            (its own identity, not the node's).
        """
        identity = Identity.generate()
        names = Names(
            self.node.membership, None, lambda: {identity.node_id, self.node.node_id}
        )
        chat = ChatService(
            LocalAuthor(identity, name), self.node.feed, self.node.links, names, self.net.clock
        )
        self.node.feed.subscribe(chat)
        return chat

    def test_interfaces(self):
        self.assertTrue(verifyObject(IChatListener, self.listener))
        self.assertTrue(verifyObject(IFeedListener, self.node.chat))

    def test_events_until_unsubscribed(self):
        """
        A subscriber gets each committed message once, then nothing after
        unsubscribing; subscribing twice does not double the events.
        """
        self.node.chat.subscribe(self.listener)
        self.node.chat.post("one")
        self.net.settle()
        self.node.chat.unsubscribe(self.listener)
        self.node.chat.post("two")
        self.net.settle()
        self.assertEqual(
            self.listener.calls, [("message", "one", False, self.node.node_id)]
        )

    def test_notice_reaches_subscribers(self):
        """
        A member that joins, then fails, is announced to every subscriber
        in words.
        """
        bob = self.net.node("bob")
        _, client = self.net.link(self.node, bob)
        client.transport.loseConnection()
        self.net.settle()
        self.net.tick(seconds=0.2, times=50)
        notices = [call for call in self.listener.calls if call[0] == "notice"]
        self.assertEqual(notices[:2], [
            ("notice", f"bob ({bob.identity.short_id}) joined"),
            ("notice", f"bob ({bob.identity.short_id}) seems down"),
        ])

    def test_member_notices_limited(self):
        """
        Beyond a burst of NOTICE_BURST, member notices are counted, and the
        count goes with the next notice shown once the bucket refills.
        """
        from p2pchat.chat.service import NOTICE_BURST, NOTICES_PER_S
        from p2pchat.mesh.membership import Member

        def member(n):
            return Member(f"{n:08x}" + "0" * 56, f"m{n}", None, 1, "alive", False, 0.0)

        for n in range(NOTICE_BURST + 3):
            self.node.chat.member_changed(member(n), None)
        notices = [text for kind, text in self.listener.calls if kind == "notice"]
        self.assertEqual(len(notices), NOTICE_BURST)
        self.assertEqual(notices[0], f"m0 ({0:08x}) joined")
        self.net.clock.advance(1 / NOTICES_PER_S)
        self.node.chat.member_changed(member(1000), None)
        self.assertEqual(
            self.listener.calls[-1],
            ("notice", f"m1000 ({1000:08x}) joined (and 3 more changes not shown; "
                       "/peers lists everyone)"),
        )

    def test_change_words(self):
        """
        Every change of state has its words; a member first heard of in
        another state than alive is told only to the log.
        """
        from p2pchat.mesh.member_words import change_words, log_words
        self.assertEqual(
            [change_words(old, new) for old, new in [
                (None, "alive"), ("suspect", "alive"), ("dead", "alive"), ("left", "alive"),
                ("alive", "suspect"), ("suspect", "dead"), ("alive", "left"),
                (None, "dead"), ("alive", "alive"),
            ]],
            ["joined", "is back", "is back", "is back", "seems down", "is down", "left",
             None, None],
        )
        self.assertEqual(log_words(None, "left"), "is known, left")
        self.assertEqual(log_words(None, "alive"), "joined")

    def test_author_is_not_the_member(self):
        """
        A second local author signs with its own identity on the node's
        feed; the node's author sees its posts, and a direct message to it
        opens only for the two of them.
        """
        carol = self.second_author("carol")
        carol_listener = RecordingListener()
        carol.subscribe(carol_listener)
        entry = carol.post("hello from carol")
        self.assertNotEqual(entry.author, self.node.node_id)
        self.assertEqual(entry.seq, 1)
        self.net.settle()
        self.node.chat.direct(carol.node_id, "psst")
        self.net.settle()
        self.assertEqual(self.listener.calls, [
            ("message", "hello from carol", False, carol.node_id),
            ("message", "psst", True, self.node.node_id),
        ])
        self.assertEqual(carol_listener.calls, [
            ("message", "hello from carol", False, carol.node_id),
            ("message", "psst", True, self.node.node_id),
        ])
        self.assertEqual(self.node.chat.name_of(carol.node_id), "carol")
        self.assertEqual(self.node.chat.resolve("carol"), carol.node_id)
        self.assertEqual(
            [m.text for m in carol.history(10)], ["hello from carol", "psst"]
        )

    def test_renaming_an_author_renames_the_member_only_if_same(self):
        """
        The node's own author renames the node in membership too; another
        local author's new name is its own.
        """
        carol = self.second_author("carol")
        carol.set_name("caz")
        self.assertEqual((carol.name, self.node.membership.name), ("caz", "alice"))
        self.node.chat.set_name("alicia")
        self.assertEqual(self.node.membership.name, "alicia")
        self.assertEqual(carol.post("x").body["name"], "caz")

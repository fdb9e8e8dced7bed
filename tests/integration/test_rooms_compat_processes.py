"""
A node of this build beside a node running p2pchat 0.2.0 (protocol 2) or
0.3.0 (protocol 3), both real processes: the old code is taken from the
C{v0.2.0} or C{v0.3.0} tag of this repository (C{git archive}) and run
with C{PYTHONPATH} pointing at it.

Lobby chat flows both ways; room entries stay on the protocol-3 side and
the link between the two stays up while they exist; a protocol-3 node
is never sent the frames of version 4 (see "Versioning" in
docs/protocol.md).
"""

import os
import re
import shutil
import subprocess
import tarfile

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from p2pchat.bench.processes import child_environment
from p2pchat.log.entry import create_entry
from p2pchat.mesh import wire
from tests.integration.test_abuse_processes import RawPeer
from tests.processes import REPO_ROOT, NodeProcess, NodeTestMixin

OLD_TAG = "v0.2.0"


def extract_release(tag: str, directory: str) -> None:
    """
    Extract the tree of C{tag} of this repository into C{directory}.

    @raise SkipTest: when git, the repository or the tag is unavailable.
    """
    git = shutil.which("git")
    if git is None:
        raise SkipTest("git is not installed: cannot run the protocol-2 code")
    found = subprocess.run(
        [git, "-C", REPO_ROOT, "rev-parse", "--verify", "--quiet", f"{tag}^{{commit}}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    if found.returncode != 0:
        raise SkipTest(f"no tag {tag} in {REPO_ROOT}: cannot run the protocol-2 code")
    archive = os.path.join(directory, "release.tar")
    subprocess.run(
        [git, "-C", REPO_ROOT, "archive", "--format=tar", "-o", archive, tag], check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(os.path.join(directory, "tree"))


class ReleaseNodeMixin(NodeTestMixin):
    """
    Starts nodes of the release tagged C{tag} beside this build's.
    """

    tag = OLD_TAG

    def start_old(self, name, *args):
        """
        Start a node of the release, from a tree extracted in a temporary
        directory, and wait until it is up.
        """
        work = os.path.abspath(self.mktemp())
        os.makedirs(work)
        extract_release(self.tag, work)
        environment = dict(child_environment(), PYTHONPATH=os.path.join(work, "tree"))
        data_dir = os.path.join(work, "data")
        node = NodeProcess(name, data_dir, "--port", "0", "--console",
                           "tcp:0:interface=127.0.0.1", *args, environment=environment)
        node.start()
        self.addCleanup(node.stop)
        return node


class OldNodeTests(ReleaseNodeMixin, SynchronousTestCase):
    """
    p2pchat 0.2.0 linked to this build.
    """

    def test_lobby_flows_rooms_stay(self):
        """
        The old node links to the new one; lobby lines typed on either
        reach the other.  A member of the new side posts room entries and
        then lobby chat: the new node stores them all, the old one only
        the lobby chat (its feed has a hole where the room entries are),
        and the link never closes.
        """
        old = self.start_old("old")
        new = self.start("new", "--peer", old.peer_address)
        new.wait_for_log(rb"link up with old")
        old.wait_for_log(rb"link up with new")
        old_console, new_console = self.console(old), self.console(new)
        new_console.send("hello from the new node")
        old_console.wait_history("hello from the new node")
        old_console.send("hello from the old node")
        new_console.wait_history("hello from the old node")

        raw = RawPeer(new.peer_address, name="rita")
        new.wait_for_log(rb"link up with rita")
        feed, prev = [], None
        bodies = [
            ("chat", {"name": "rita", "text": "rita in the lobby"}),
            ("room.join", {"name": "rita", "room": "#rust"}),
            ("chat", {"name": "rita", "room": "#rust", "text": "rita in rust"}),
            ("room.topic", {"name": "rita", "room": "#rust", "topic": "ownership"}),
            ("chat", {"name": "rita", "text": "rita back in the lobby"}),
        ]
        for seq, (kind, body) in enumerate(bodies, 1):
            entry = create_entry(raw.identity, seq, prev, 100 + seq, 1000 + seq, kind, body)
            feed.append(entry)
            prev = entry.id
            raw.send(wire.entry_frame(entry.to_wire()))
        old_console.wait_history("rita back in the lobby")
        new_console.wait_status("messages", "7")
        old_console.wait_status("messages", "4")
        self.assertNotIn("rita in rust", old_console.reply("/history"))

        new_console.send("still linked after rooms")
        old_console.wait_history("still linked after rooms")
        old_console.send("and back")
        new_console.wait_history("and back")
        for node in (old, new):
            self.assertIsNone(re.search(rb"rejected entry|closing link with (old|new)",
                                        node.output), node.name)
        self.assertEqual(old_console.status()["links"], "1")


class Protocol3NodeTests(ReleaseNodeMixin, SynchronousTestCase):
    """
    p2pchat 0.3.0 (protocol 3: rooms and probes, no digest records) linked
    to this build.
    """

    tag = "v0.3.0"

    def test_rooms_flow_no_new_frames(self):
        """
        Room chat flows both ways; the link is never sent a frame the old
        node does not know (it would close it); /converged here names the
        old node as not reporting.
        """
        old = self.start_old("old")
        new = self.start("new", "--peer", old.peer_address)
        new.wait_for_log(rb"link up with old")
        old.wait_for_log(rb"link up with new")
        old_console, new_console = self.console(old), self.console(new)
        new_console.send("/join #rust")
        new_console.send("hello rust from the new node")
        old_console.send("/join #rust")
        old_console.wait_history("hello rust from the new node")
        old_console.send("hello from the old node")
        new_console.wait_history("hello from the old node")
        reply = new_console.reply("/converged")
        self.assertIn("not reporting", reply)
        for node in (old, new):
            self.assertIsNone(
                re.search(rb"unknown frame|closing link with (old|new)", node.output),
                node.name,
            )
        self.assertEqual(old_console.status()["links"], "1")

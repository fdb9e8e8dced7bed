"""
The fan-out floor's node: a plain Twisted L{LineReceiver} relay, the least
a process can do to pass a chat line on.

C{python -m p2pchat.bench.floor_node PORT [PEER_PORT ...]} listens on
127.0.0.1:PORT, connects to each PEER_PORT on 127.0.0.1, prints
C{ready} once they are all connected, and then relays every line it has
not seen before (by the C{fanout-N-end} token in it) to every connection
but the one it came on.  The bench is one more connection: it writes a
line to the origin and reads each node's copy from its own connection to
that node.  No signing, no store, no JSON: what the same topology costs
with nothing but Twisted's line relaying (L{p2pchat.bench.fanout}).
"""

import re
import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver

TOKEN = re.compile(rb"fanout-(\d+)-end")


class Relay(LineReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 65536

    dialed = False

    def connectionMade(self):
        self.factory.connections.add(self)
        if self.dialed:
            self.factory.connected()

    def connectionLost(self, reason=None):
        self.factory.connections.discard(self)

    def lineReceived(self, line):
        match = TOKEN.search(line)
        key = match.group(1) if match else line
        if key in self.factory.seen:
            return
        self.factory.seen.add(key)
        for other in list(self.factory.connections):
            if other is not self:
                other.sendLine(line)


class RelayFactory(protocol.Factory):
    protocol = Relay

    def __init__(self, dials: int):
        self.connections = set()
        self.seen = set()
        self._waiting = dials

    def connected(self):
        if self._waiting > 0:
            self._waiting -= 1
            if self._waiting == 0:
                print("ready", flush=True)


class DialFactory(protocol.ClientFactory):
    def __init__(self, relays: RelayFactory):
        self._relays = relays

    def buildProtocol(self, addr):
        relay = Relay()
        relay.factory, relay.dialed = self._relays, True
        return relay

    def clientConnectionFailed(self, connector, reason):
        print(f"failed: {reason.getErrorMessage()}", flush=True)
        reactor.stop()


def main(argv) -> None:
    port, peers = int(argv[0]), [int(peer) for peer in argv[1:]]
    relays = RelayFactory(len(peers))
    reactor.listenTCP(port, relays, interface="127.0.0.1")
    for peer in peers:
        reactor.connectTCP("127.0.0.1", peer, DialFactory(relays))
    if not peers:
        print("ready", flush=True)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])

"""
Tests for L{p2pchat.service.NodeService}: what starting and stopping does,
on a L{MemoryReactorClock} (no real sockets).
"""

import os
import signal
import socket
import stat

from twisted.internet import endpoints
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.systemd import ListenFDs
from twisted.trial.unittest import SynchronousTestCase

import p2pchat
from p2pchat import startup
from p2pchat.config import NodeConfig, PeerAddress
from p2pchat.log.identity import KEY_FILE_NAME
from p2pchat.mesh.wire import PROTOCOL_VERSION
from p2pchat.ops import activation
from p2pchat.service import STORE_FILE_NAME, NodeService
from p2pchat.startup import LOCK_FILE_NAME
from tests.tls_network import make_network


def config(data_dir, **overrides):
    """
    @return: a L{NodeConfig} for a test node in C{data_dir}.
    """
    settings = dict(
        name="alice",
        port=9090,
        listen="tcp:9090",
        peers=(),
        data_dir=data_dir,
        console="tcp:9091:interface=127.0.0.1",
        stdio=False,
    )
    settings.update(overrides)
    return NodeConfig(**settings)


class NodeServiceTests(SynchronousTestCase):
    """
    Starting and stopping a node.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.data_dir = os.path.join(os.path.abspath(self.mktemp()), "node")
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_constructor_does_no_io(self):
        """
        Building the service touches neither the disk nor the network.
        """
        NodeService(config(self.data_dir), reactor=self.reactor)
        self.assertFalse(os.path.exists(self.data_dir))
        self.assertEqual(self.reactor.tcpServers, [])

    def test_start_creates_private_data_and_listens(self):
        """
        Starting creates the data dir (0700), the identity key (0600) and
        the store, and listens for peers and consoles where configured.
        """
        service = NodeService(config(self.data_dir), reactor=self.reactor)
        service.startService()
        self.addCleanup(service.stopService)
        mode = lambda path: stat.S_IMODE(os.stat(path).st_mode)  # noqa: E731
        self.assertEqual(mode(self.data_dir), 0o700)
        self.assertEqual(mode(os.path.join(self.data_dir, KEY_FILE_NAME)), 0o600)
        self.assertTrue(os.path.exists(os.path.join(self.data_dir, STORE_FILE_NAME)))
        ports = [(port, interface) for port, _, _, interface in self.reactor.tcpServers]
        self.assertEqual(ports, [(9090, ""), (9091, "127.0.0.1")])
        self.assertEqual(service.node.advertised_address, "127.0.0.1:9090")

    def test_ipv6_advertised_address_in_brackets(self):
        """
        An IPv6 advertise host is sent as [ADDR]:PORT, the form --peer
        accepts.
        """
        settings = config(self.data_dir, advertise_host="::1")
        service = NodeService(settings, reactor=self.reactor)
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(service.node.advertised_address, "[::1]:9090")

    def test_peers_get_reconnecting_links(self):
        """
        Each --peer becomes one reconnecting outbound link; connecting to
        the same address again adds nothing.
        """
        peer = PeerAddress("127.0.0.1", 9999)
        service = NodeService(config(self.data_dir, peers=(peer,)), reactor=self.reactor)
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual([c[:2] for c in self.reactor.tcpClients], [("127.0.0.1", 9999)])
        self.assertFalse(service.node.chat.connect(peer))
        self.assertTrue(service.node.chat.connect(PeerAddress("127.0.0.1", 9998)))

    def test_stop_commits_then_closes(self):
        """
        Stopping commits queued posts, stops listening and closes the
        store; the posts are there when the node starts again.
        """
        service = NodeService(config(self.data_dir), reactor=self.reactor)
        service.startService()
        service.node.chat.post("queued at shutdown")
        self.successResultOf(service.stopService())
        self.assertIsNone(service.store)
        again = NodeService(config(self.data_dir), reactor=MemoryReactorClock())
        again.startService()
        self.addCleanup(again.stopService)
        self.assertEqual([m.text for m in again.node.chat.history(5)], ["queued at shutdown"])

    def test_bad_endpoint_is_one_line_and_exit_1(self):
        """
        An endpoint whose parser fails (here an ssl: key file that does not
        exist) stops the start with exit status 1 and one critical log line
        naming the endpoint.
        """
        listen = "ssl:9090:privateKey=/nonexistent/key.pem"
        service = NodeService(config(self.data_dir, listen=listen), reactor=self.reactor)
        error = self.assertRaises(SystemExit, service.startService)
        self.assertEqual(error.code, 1)
        critical = [e for e in self.events if e.get("log_level").name == "critical"]
        self.assertEqual(len(critical), 1)
        self.assertIn("cannot listen for peers on ssl:9090", critical[0]["reason"])

    def test_unusable_data_dir(self):
        """
        A data dir path under a regular file stops the start with exit
        status 1 and a line saying why.
        """
        parent = os.path.abspath(self.mktemp())
        with open(parent, "w") as f:
            f.write("not a directory")
        service = NodeService(config(os.path.join(parent, "x")), reactor=self.reactor)
        self.assertRaises(SystemExit, service.startService)
        critical = [e for e in self.events if e.get("log_level").name == "critical"]
        self.assertIn("cannot create data dir", critical[0]["reason"])

    def test_open_data_dir_warns(self):
        """
        An existing data dir that others may read is used, with a warning.
        """
        os.makedirs(self.data_dir, mode=0o755)
        os.chmod(self.data_dir, 0o755)
        service = NodeService(config(self.data_dir), reactor=self.reactor)
        service.startService()
        self.addCleanup(service.stopService)
        warnings = [e for e in self.events if e.get("log_level").name == "warn"]
        self.assertTrue(any("chmod 700" in e["log_format"] for e in warnings))


class ServiceTreeTests(SynchronousTestCase):
    """
    The node is a tree of child services that twistd starts in order and
    stops in the reverse one; the data dir is locked while it runs.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.data_dir = os.path.join(os.path.abspath(self.mktemp()), "node")
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def critical(self):
        return [e["reason"] for e in self.events if e.get("log_level").name == "critical"]

    def test_children_in_start_order(self):
        """
        Data dir, store, node, then the peer and console listeners; the
        --peer addresses are the node's dialer's seeds; it stops after the
        node said goodbye.
        """
        peer = PeerAddress("127.0.0.1", 9999)
        service = NodeService(config(self.data_dir, peers=(peer,)), reactor=self.reactor)
        kinds = [type(child).__name__ for child in service]
        self.assertEqual(
            kinds, ["NotifierService", "DataDirService", "StoreService", "NodeHolder",
                    "ListenerService", "ListenerService"],
        )
        self.assertEqual([child.what for child in list(service)[4:]], ["peers", "consoles"])
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(service.holder.dialer.seeds, {peer})
        self.assertTrue(all(child.running for child in service))

    def test_stop_stops_every_child_newest_first(self):
        """
        Stopping stops the listeners before the node and the node before
        the store and the data dir.
        """
        service = NodeService(config(self.data_dir), reactor=self.reactor)
        service.startService()
        stopped = []
        for child in service:
            original = child.stopService

            def record(child=child, original=original):
                stopped.append(type(child).__name__)
                return original()

            child.stopService = record
        self.successResultOf(service.stopService())
        self.assertEqual(
            stopped, ["ListenerService", "ListenerService", "NodeHolder", "StoreService",
                      "DataDirService", "NotifierService"],
        )
        self.assertFalse(any(child.running for child in service))

    def test_second_node_on_one_data_dir_refused(self):
        """
        A second node on a data dir another node holds refuses to start
        with exit status 1 and one line naming the dir and the holder's
        pid; once the first stops, the dir is free again.
        """
        first = NodeService(config(self.data_dir), reactor=self.reactor)
        first.startService()
        second = NodeService(config(self.data_dir, listen=None, console=None),
                             reactor=MemoryReactorClock())
        error = self.assertRaises(SystemExit, second.startService)
        self.assertEqual(error.code, 1)
        self.assertEqual(
            self.critical(),
            [f"data dir {self.data_dir} is in use by another p2pchat node (pid {os.getpid()}); "
             "stop that node or give this one another --data-dir"],
        )
        self.assertFalse(any(child.running for child in second))
        self.successResultOf(first.stopService())
        again = NodeService(config(self.data_dir), reactor=MemoryReactorClock())
        again.startService()
        self.addCleanup(again.stopService)
        self.assertIsNotNone(again.node)

    def test_failed_start_unlocks_and_closes(self):
        """
        A start that fails after the data dir was locked and the store
        opened (here the peer endpoint) closes the store and unlocks the
        dir: the next start succeeds.
        """
        bad = config(self.data_dir, listen="ssl:9090:privateKey=/nonexistent/key.pem")
        service = NodeService(bad, reactor=self.reactor)
        self.assertRaises(SystemExit, service.startService)
        self.assertIsNone(service.store)
        with open(os.path.join(self.data_dir, LOCK_FILE_NAME)) as f:
            self.assertEqual(f.read(), "")
        again = NodeService(config(self.data_dir), reactor=MemoryReactorClock())
        again.startService()
        self.addCleanup(again.stopService)

    def test_start_line_names_versions_and_no_reprs(self):
        """
        Once the reactor runs, the start line names the p2pchat and protocol
        versions and where the node listens, a UNIX socket by its path.
        """
        socket_dir = os.path.abspath(self.mktemp())
        os.makedirs(socket_dir)
        settings = config(self.data_dir, listen=f"unix:{socket_dir}/peers.sock", port=None,
                          console=f"unix:{socket_dir}/console.sock")
        service = NodeService(settings, reactor=self.reactor)
        service.startService()
        self.addCleanup(service.stopService)
        self.addCleanup(service._restore_signal, signal.SIGTERM)
        self.reactor.run()
        lines = [formatEvent(e) for e in self.events if "started" in (e.get("log_format") or "")]
        node_id = service.node.identity.node_id[:8]
        self.assertEqual(
            lines,
            [f"p2pchat node alice ({node_id}) started: peers on {socket_dir}/peers.sock, "
             f"console on {socket_dir}/console.sock, 0 messages in {self.data_dir}; "
             f"p2pchat {p2pchat.__version__}, protocol {PROTOCOL_VERSION}"],
        )

    def test_manhole_that_cannot_listen_refused(self):
        """
        A manhole whose port cannot be had stops the start with one line
        and exit status 1, and what started before it is stopped again.
        """

        class BusyPorts(MemoryReactorClock):
            def listenTCP(self, port, factory, backlog=50, interface=""):
                if port == 9092:
                    raise CannotListenError(interface, port, OSError("address in use"))
                return super().listenTCP(port, factory, backlog, interface)

        passwd = os.path.abspath(self.mktemp())
        with open(passwd, "w") as f:
            f.write("op:pw\n")
        settings = config(self.data_dir, manhole="tcp:9092:interface=127.0.0.1",
                          manhole_passwd=passwd)
        service = NodeService(settings, reactor=BusyPorts())
        error = self.assertRaises(SystemExit, service.startService)
        self.assertEqual(error.code, 1)
        [reason] = self.critical()
        self.assertTrue(reason.startswith("manhole: cannot listen on tcp:9092"), reason)
        self.assertFalse(any(child.running for child in service))

    def test_name_not_in_certificate_refused(self):
        """
        With TLS, a --name the certificate does not name stops the start
        with one line naming both: peers would refuse every link.
        """
        network = make_network(os.path.abspath(self.mktemp()), "bob")
        service = NodeService(
            config(self.data_dir, name="mallory", tls=network["bob"]), reactor=self.reactor
        )
        self.assertRaises(SystemExit, service.startService)
        self.assertEqual(
            self.critical(),
            [f"--name mallory is not a name in the TLS certificate {network['bob'].cert} "
             "(it names bob): peers would refuse every link; give --name as in the "
             "certificate"],
        )
        self.assertEqual(self.reactor.tcpServers, [])


class SocketActivationTests(SynchronousTestCase):
    """
    L{p2pchat.ops.activation}: C{systemd:} endpoints under any activator.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()

    def environ(self, **extra):
        return dict({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "2"}, **extra)

    def test_names_filled_in_when_missing(self):
        """
        Without C{$LISTEN_FDNAMES} each inherited descriptor is named
        C{unknown}; given names, or no C{$LISTEN_FDS}, leave the
        environment as it is.
        """
        self.assertEqual(
            activation.activation_environment(self.environ())["LISTEN_FDNAMES"],
            "unknown:unknown",
        )
        named = self.environ(LISTEN_FDNAMES="peers:console")
        self.assertIs(activation.activation_environment(named), named)
        for environ in ({}, {"LISTEN_FDS": "x"}, {"LISTEN_FDS": "0"}):
            self.assertIs(activation.activation_environment(environ), environ)

    def test_index_without_names(self):
        """
        C{systemd:domain=INET:index=N} adopts descriptor 3 + N when the
        activator set C{$LISTEN_FDS} and C{$LISTEN_PID} but no
        C{$LISTEN_FDNAMES} -- where Twisted alone sees no descriptor.
        """
        environ = self.environ()
        twisted_alone = ListenFDs.fromEnvironment(environ=dict(environ))
        self.assertEqual(twisted_alone.inheritedDescriptors(), [])
        endpoint = activation.systemd_endpoint(
            self.reactor, "systemd:domain=INET:index=1", environ
        )
        self.assertIsInstance(endpoint, endpoints.AdoptedStreamServerEndpoint)
        self.assertEqual((endpoint.fileno, endpoint.addressFamily), (4, socket.AF_INET))
        positional = activation.systemd_endpoint(self.reactor, "systemd:INET6:0", environ)
        self.assertEqual((positional.fileno, positional.addressFamily), (3, socket.AF_INET6))

    def test_names(self):
        """
        C{name=} picks the descriptor of that name; unnamed ones are
        C{unknown}.
        """
        environ = self.environ(LISTEN_FDNAMES="console:peers")
        endpoint = activation.systemd_endpoint(
            self.reactor, "systemd:domain=INET:name=peers", environ
        )
        self.assertEqual(endpoint.fileno, 4)
        unnamed = activation.systemd_endpoint(
            self.reactor, "systemd:domain=INET:name=unknown", self.environ(LISTEN_FDS="1")
        )
        self.assertEqual(unnamed.fileno, 3)

    def test_refusals(self):
        """
        A missing socket (not inherited, another process's, out of range),
        a bad description or an unknown domain is a L{ValueError} saying
        what is wrong.
        """
        cases = [
            ("systemd:domain=INET:index=2", self.environ(), "no inherited socket at index 2"),
            ("systemd:domain=INET:index=0", {}, "0 inherited"),
            ("systemd:domain=INET:index=0",
             dict(self.environ(), LISTEN_PID="1"), "0 inherited"),
            ("systemd:domain=INET:name=www", self.environ(), "no inherited socket named"),
            ("systemd:domain=INET", self.environ(), "exactly one of index= and name="),
            ("systemd:domain=INET:index=0:name=x", self.environ(), "exactly one"),
            ("systemd:index=0", self.environ(), "needs domain="),
            ("systemd:domain=NOPE:index=0", self.environ(), "unknown domain"),
            ("systemd:domain=INET:index=zero", self.environ(), "not a number"),
            ("systemd:domain=INET:port=1", self.environ(), "unknown argument"),
        ]
        for description, environ, message in cases:
            error = self.assertRaises(
                ValueError, activation.systemd_endpoint, self.reactor, description, environ
            )
            self.assertIn(message, str(error), description)

    def test_initial_environment_when_consumed(self):
        """
        Importing Twisted's endpoints deletes C{$LISTEN_FDS} and
        C{$LISTEN_PID} from C{os.environ}; they are then read from the
        environment the process started with.  A current C{$LISTEN_FDS}
        wins, and the environment given is never changed.
        """
        started = dict(self.environ(), PATH="/bin")
        endpoint = activation.systemd_endpoint(
            self.reactor, "systemd:domain=INET:index=1", {}, lambda: started
        )
        self.assertEqual(endpoint.fileno, 4)
        current = self.environ(LISTEN_FDS="1")
        self.assertRaises(
            ValueError, activation.systemd_endpoint,
            self.reactor, "systemd:domain=INET:index=1", current, lambda: started,
        )
        self.assertEqual(current, self.environ(LISTEN_FDS="1"))
        self.assertRaises(
            ValueError, activation.systemd_endpoint,
            self.reactor, "systemd:domain=INET:index=0", {}, dict,
        )

    def test_read_initial_environment(self):
        """
        L{activation.initial_environment} parses a NUL-separated
        C{/proc/self/environ}; an unreadable one is empty.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"LISTEN_FDS=1\0LISTEN_PID=7\0ODD\0A=b=c\0")
        self.assertEqual(
            activation.initial_environment(path),
            {"LISTEN_FDS": "1", "LISTEN_PID": "7", "A": "b=c"},
        )
        self.assertEqual(activation.initial_environment(path + ".missing"), {})

    def test_other_types_unchanged(self):
        """
        Every other endpoint type is Twisted's own.
        """
        endpoint = activation.server_endpoint(self.reactor, "tcp:0:interface=127.0.0.1")
        self.assertIsInstance(endpoint, endpoints.TCP4ServerEndpoint)

    def test_service_listens_on_unnamed_socket(self):
        """
        The node's peer listener adopts an unnamed inherited socket.
        """
        self.patch(os, "environ", self.environ())
        endpoint = startup.server_endpoint(
            self.reactor, "systemd:domain=INET:index=0", "peers"
        )
        self.assertEqual(endpoint.fileno, 3)

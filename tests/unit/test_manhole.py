"""
Tests for L{p2pchat.faces.manhole}: the SSH manhole is built only with
credentials, checks them, and keeps its host key.
"""

import os
import stat

import bcrypt
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.insults import insults
from twisted.conch.interfaces import IConchUser
from twisted.conch.manhole import ColoredManhole
from twisted.conch.ssh import keys
from twisted.cred.credentials import SSHPrivateKey, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.testing import MemoryReactor
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.endpoint_strings import listens_beyond_loopback
from p2pchat.faces import manhole as manhole_module
from p2pchat.faces.manhole import (
    HOST_KEY_FILE_NAME,
    PasswordFileChecker,
    load_or_create_host_key,
    manhole_service,
)

ENDPOINT = "tcp:0:interface=127.0.0.1"


def new_key():
    """
    @return: a fresh Ed25519 SSH private key.
    """
    return keys.Key(ed25519.Ed25519PrivateKey.generate())


class ManholeTestCase(SynchronousTestCase):
    """
    Helpers: a temporary directory for files and the host key.
    """

    def setUp(self):
        self.directory = self.mktemp()
        os.makedirs(self.directory)

    def write(self, name, data, mode=0o600):
        """
        Write C{data} to C{name} in the test directory.

        @return: the path.
        """
        path = os.path.join(self.directory, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return path

    def build(self, **kwargs):
        """
        @return: a manhole service on L{ENDPOINT} with a fresh namespace.
        """
        kwargs.setdefault("host_key_dir", self.directory)
        # Password checks run here, at once, so these tests stay synchronous.
        kwargs.setdefault("defer_to_thread", lambda f, *a: defer.maybeDeferred(f, *a))
        return manhole_service(ENDPOINT, {"answer": 42}, **kwargs)


class CredentialTests(ManholeTestCase):
    """
    The manhole refuses to exist without credentials, and its portal lets
    in exactly the holders of them.
    """

    def test_no_credentials(self):
        """
        Without a keys file and a password file, building fails with a
        L{ValueError} that says credentials are needed.
        """
        error = self.assertRaises(ValueError, self.build)
        self.assertIn("without credentials", str(error))

    def test_no_host_key_dir(self):
        """
        Without a directory for the host key, building fails.
        """
        passwd = self.write("passwd", b"op:secret\n")
        self.assertRaises(ValueError, self.build, passwd_file=passwd, host_key_dir=None)

    def test_unreadable_or_empty_files(self):
        """
        A credential file that is missing, or that holds no usable key or
        password, is refused at build time.
        """
        missing = os.path.join(self.directory, "missing")
        empty = self.write("empty", b"# nothing here\nop:\n")
        self.assertRaises(ValueError, self.build, passwd_file=missing)
        self.assertRaises(ValueError, self.build, keys_file=missing)
        self.assertRaises(ValueError, self.build, passwd_file=empty)
        self.assertRaises(ValueError, self.build, keys_file=empty)

    def test_password(self):
        """
        With a password file, the portal logs in the right user and password
        as an SSH user, and rejects a wrong password and an unknown user.
        """
        passwd = self.write("passwd", b"op:right horse\n")
        portal = self.build(passwd_file=passwd).portal
        interface, avatar, logout = self.successResultOf(
            portal.login(UsernamePassword(b"op", b"right horse"), None, IConchUser)
        )
        self.assertIs(interface, IConchUser)
        for username, password in [(b"op", b"wrong"), (b"op", b"right"), (b"eve", b"right horse")]:
            self.failureResultOf(
                portal.login(UsernamePassword(username, password), None, IConchUser),
                UnauthorizedLogin,
            )

    def test_bcrypt_password(self):
        """
        A bcrypt hash in the password file checks the password it was made
        from, and no other.
        """
        hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4))
        passwd = self.write("passwd", b"op:" + hashed + b"\n")
        portal = self.build(passwd_file=passwd).portal
        self.successResultOf(portal.login(UsernamePassword(b"op", b"s3cret"), None, IConchUser))
        self.failureResultOf(
            portal.login(UsernamePassword(b"op", hashed), None, IConchUser), UnauthorizedLogin
        )

    def test_bcrypt_not_on_calling_thread(self):
        """
        The password checker hands the whole check (file read and bcrypt)
        to C{defer_to_thread} and returns its L{Deferred}: nothing of
        bcrypt runs on the calling (reactor) thread.
        """
        hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4))
        passwd = self.write("passwd", b"op:" + hashed + b"\n")
        checked = []
        real_checkpw = bcrypt.checkpw
        self.patch(bcrypt, "checkpw", lambda *a: checked.append(a) or real_checkpw(*a))
        handed = []

        def defer_to_thread(f, *args):
            handed.append((f, args))
            return defer.Deferred()

        checker = PasswordFileChecker(passwd, defer_to_thread)
        result = checker.requestAvatarId(UsernamePassword(b"op", b"s3cret"))
        self.assertIsInstance(result, defer.Deferred)
        self.assertEqual(checked, [])
        [(f, args)] = handed
        self.assertEqual(f(*args), b"op")
        self.assertEqual(len(checked), 1)
        self.assertRaises(UnauthorizedLogin, f, b"op", b"wrong")
        self.assertRaises(UnauthorizedLogin, f, b"eve", b"s3cret")

    def test_authorized_key(self):
        """
        With a keys file, a key listed in it logs in (under any user name)
        with a valid signature; an unlisted key or a bad signature does not.
        """
        allowed, other = new_key(), new_key()
        keys_file = self.write("authorized_keys", allowed.public().toString("openssh") + b"\n")
        portal = self.build(keys_file=keys_file).portal

        def credentials(key, signed_by):
            blob = key.public().blob()
            return SSHPrivateKey(b"anyone", b"ssh-ed25519", blob, b"data", signed_by.sign(b"data"))

        self.successResultOf(portal.login(credentials(allowed, allowed), None, IConchUser))
        self.failureResultOf(portal.login(credentials(other, other), None, IConchUser))
        self.failureResultOf(portal.login(credentials(allowed, other), None, IConchUser))

    def test_keys_and_password(self):
        """
        Given both files, the portal takes either kind of credential.
        """
        key = new_key()
        keys_file = self.write("authorized_keys", key.public().toString("openssh") + b"\n")
        passwd = self.write("passwd", b"op:pw\n")
        portal = self.build(keys_file=keys_file, passwd_file=passwd).portal
        self.successResultOf(portal.login(UsernamePassword(b"op", b"pw"), None, IConchUser))
        blob = key.public().blob()
        credentials = SSHPrivateKey(b"op", b"ssh-ed25519", blob, b"d", key.sign(b"d"))
        self.successResultOf(portal.login(credentials, None, IConchUser))

    def test_namespace(self):
        """
        A session's REPL is conch's colored manhole over the namespace given
        to L{manhole_service}.
        """
        namespace = {"node": object()}
        passwd = self.write("passwd", b"op:pw\n")
        service = manhole_service(
            ENDPOINT, namespace, passwd_file=passwd, host_key_dir=self.directory
        )
        terminal = service.portal.realm.chainedProtocolFactory()
        self.assertIsInstance(terminal, insults.ServerProtocol)
        self.assertIs(terminal.protocolFactory, ColoredManhole)
        self.assertIs(terminal.protocolArgs[0], namespace)


class HostKeyTests(ManholeTestCase):
    """
    The host key is made on start, kept with mode 0600, and reused.
    """

    def test_created_0600_and_reused(self):
        """
        L{load_or_create_host_key} creates the key file with mode 0600 and
        returns the same key when called again.
        """
        first = load_or_create_host_key(self.directory)
        path = os.path.join(self.directory, HOST_KEY_FILE_NAME)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertFalse(first.isPublic())
        second = load_or_create_host_key(self.directory)
        self.assertEqual(first.public().blob(), second.public().blob())

    def test_bad_host_key(self):
        """
        A host key file that is not a private key is an error, not
        silently replaced.
        """
        self.write(HOST_KEY_FILE_NAME, b"not a key\n")
        self.assertRaises(ValueError, load_or_create_host_key, self.directory)

    def test_service_makes_key_only_on_start(self):
        """
        Building the service writes nothing and listens nowhere; starting
        it creates the host key, serves it, and listens on the endpoint
        (here on a fake reactor).
        """
        passwd = self.write("passwd", b"op:pw\n")
        reactor = MemoryReactor()
        service = manhole_service(
            ENDPOINT, {}, passwd_file=passwd, host_key_dir=self.directory, reactor=reactor
        )
        path = os.path.join(self.directory, HOST_KEY_FILE_NAME)
        self.assertFalse(os.path.exists(path))
        self.assertEqual(reactor.tcpServers, [])
        service.startService()
        self.assertTrue(os.path.exists(path))
        key = load_or_create_host_key(self.directory)
        self.assertEqual(list(service.factory.privateKeys), [b"ssh-ed25519"])
        self.assertEqual(
            service.factory.publicKeys[b"ssh-ed25519"].blob(), key.public().blob()
        )
        [(port, factory, backlog, interface)] = reactor.tcpServers
        self.assertEqual((port, interface), (0, "127.0.0.1"))
        self.assertIs(factory, service.factory)

    def test_exposed_manhole_warns_on_start(self):
        """
        A manhole its builder marks as exposed (listening beyond loopback)
        logs one warning when it starts; an unexposed one logs none.
        """
        passwd = self.write("passwd", b"op:pw\n")
        for exposed, expected in ((False, 0), (True, 1)):
            events = []
            self.patch(manhole_module, "log", Logger(observer=events.append))
            service = manhole_service(
                ENDPOINT, {}, passwd_file=passwd, host_key_dir=self.directory,
                reactor=MemoryReactor(),
            )
            service.exposed = exposed
            service.startService()
            warnings = [e for e in events if "beyond the loopback" in e["log_format"]]
            self.assertEqual(len(warnings), expected)

    def test_factories_do_not_share_keys(self):
        """
        Two manholes never share host key tables (conch keeps them as class
        attributes by default).
        """
        passwd = self.write("passwd", b"op:pw\n")
        one = self.build(passwd_file=passwd)
        two = self.build(passwd_file=passwd)
        self.assertIsNot(one.factory.privateKeys, two.factory.privateKeys)


class LoopbackTests(SynchronousTestCase):
    """
    L{listens_beyond_loopback} tells which endpoints other machines may
    reach.
    """

    def test_local(self):
        """
        Loopback TCP interfaces (IPv4, IPv6, localhost) and UNIX sockets are
        local.
        """
        for description in [
            "tcp:9092:interface=127.0.0.1",
            "tcp:9092:interface=127.0.0.2",
            r"tcp6:9092:interface=\:\:1",
            "tcp:9092:interface=localhost",
            "unix:/run/p2pchat/manhole.sock",
        ]:
            self.assertFalse(listens_beyond_loopback(description), description)

    def test_reachable(self):
        """
        No interface (all interfaces), another address, systemd sockets and
        unparseable strings count as reachable from elsewhere.
        """
        for description in [
            "tcp:9092",
            "tcp:9092:interface=0.0.0.0",
            "tcp:9092:interface=192.168.1.5",
            "ssl:9092",
            "systemd:domain=INET:index=0",
            "",
        ]:
            self.assertTrue(listens_beyond_loopback(description), description)


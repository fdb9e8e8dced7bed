# -*- test-case-name: tests.unit.test_manhole,tests.integration.test_manhole_threads -*-
"""
The operator's manhole: a Python REPL, over SSH only, with the live node in
its namespace (Twisted conch's manhole, as C{twisted/conch/manhole_tap.py}
builds it, minus telnet).

It refuses to be built without credentials: an authorized_keys file (any
user name; the key decides), a C{user:password} file (plain text or bcrypt
C{$2b$...} hashes), or both.  The SSH host key is an Ed25519 key kept in a
directory given by the caller (the node's data directory), created with
mode 0600 on first start and reused afterwards.

Building the service reads the credential files to check them but writes
nothing and opens no socket: the host key is made and the port opened when
the service starts.
"""

import hmac
import os
import stat
from typing import Any, Callable, Dict, List, Optional

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.application.service import Service
from twisted.conch import manhole, manhole_ssh
from twisted.conch.checkers import (
    IAuthorizedKeysDB,
    SSHPublicKeyChecker,
    readAuthorizedKeyFile,
)
from twisted.conch.insults import insults
from twisted.conch.ssh import keys
from twisted.cred import checkers, portal
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, endpoints, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

HOST_KEY_FILE_NAME = "manhole_host_key"

log = Logger()


@implementer(IAuthorizedKeysDB)
class AuthorizedKeysFile:
    """
    The SSH public keys listed in one authorized_keys file, for every user
    name.  The file is read at each login, so editing it takes effect at
    once.
    """

    def __init__(self, path: str):
        self.path = path

    def read_keys(self) -> List[keys.Key]:
        """
        @return: the keys in the file (lines that are not keys are skipped
            and logged by conch).
        @raise OSError: if the file cannot be read.
        """
        with open(self.path, "rb") as f:
            return list(readAuthorizedKeyFile(f))

    def getAuthorizedKeys(self, username: bytes) -> List[keys.Key]:
        """
        @return: the keys that may log in as C{username}: every key in the
            file, or none if the file cannot be read now.
        """
        try:
            return self.read_keys()
        except OSError as e:
            log.warn(
                "manhole: cannot read {path}: {error}", path=self.path, error=e.strerror
            )
            return []


def _password_hash(username: bytes, given: bytes, stored: bytes) -> Optional[bytes]:
    """
    The comparison L{checkers.FilePasswordDB} calls: C{stored} is returned
    (meaning "match") only if C{given} matches it, as a bcrypt hash when it
    looks like one, else as plain text compared in constant time.
    """
    if stored.startswith((b"$2a$", b"$2b$", b"$2y$")):
        import bcrypt

        try:
            return stored if bcrypt.checkpw(given, stored) else None
        except ValueError:
            return None
    return stored if hmac.compare_digest(given, stored) else None


DeferToThread = Callable[..., defer.Deferred]


@implementer(checkers.ICredentialsChecker)
class PasswordFileChecker:
    """
    Checks a user name and password against a C{user:password} file, off
    the reactor thread.

    A bcrypt check costs tens to hundreds of milliseconds of CPU by
    design, and the file is read at each login (so edits take effect at
    once): both run through C{defer_to_thread} (the reactor's thread pool
    by default), so a stream of SSH login attempts never blocks the node.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, path: str, defer_to_thread: Optional[DeferToThread] = None):
        """
        @param path: the password file.
        @param defer_to_thread: runs C{f(*args)} elsewhere and returns a
            L{Deferred} of its result; default
            L{twisted.internet.threads.deferToThread}.
        """
        self._database = checkers.FilePasswordDB(path, cache=False, hash=_password_hash)
        self._defer_to_thread = defer_to_thread or threads.deferToThread

    def _check(self, username: bytes, password: bytes) -> bytes:
        """
        Runs in a worker thread.

        @return: C{username} if C{password} is its password.
        @raise UnauthorizedLogin: otherwise (unknown user, wrong password,
            unreadable file).
        """
        try:
            _, stored = self._database.getUser(username)
        except (KeyError, OSError):
            raise UnauthorizedLogin("bad user name or password") from None
        if _password_hash(username, password, stored) is None:
            raise UnauthorizedLogin("bad user name or password")
        return username

    def requestAvatarId(self, credentials) -> defer.Deferred:
        """
        @return: a L{Deferred} firing with the user name, or failing with
            L{UnauthorizedLogin}; the check runs through C{defer_to_thread}.
        """
        return self._defer_to_thread(
            self._check, credentials.username, credentials.password
        )


def _password_checker(
    path: str, defer_to_thread: Optional[DeferToThread] = None
) -> PasswordFileChecker:
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ValueError(f"manhole: cannot read password file {path}: {e.strerror}") from None
    usable = [
        line
        for line in lines
        if not line.startswith(b"#") and len(line.split(b":")) >= 2 and line.split(b":")[1]
    ]
    if not usable:
        raise ValueError(
            f"manhole: password file {path} has no USER:PASSWORD line with a password"
        )
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        log.warn(
            "manhole: password file {path} has mode {mode:o}; others on this "
            "machine may read it: chmod 600 it",
            path=path,
            mode=mode,
        )
    return PasswordFileChecker(path, defer_to_thread)


def _key_checker(path: str) -> SSHPublicKeyChecker:
    database = AuthorizedKeysFile(path)
    try:
        found = database.read_keys()
    except OSError as e:
        raise ValueError(
            f"manhole: cannot read authorized keys file {path}: {e.strerror}"
        ) from None
    if not found:
        raise ValueError(f"manhole: authorized keys file {path} holds no usable SSH key")
    return SSHPublicKeyChecker(database)


def load_or_create_host_key(directory: str) -> keys.Key:
    """
    Load the manhole's SSH host key from C{directory}, creating it (an
    Ed25519 key, mode 0600, written atomically) on first use.

    @raise ValueError: if the key file exists but is not a private key.
    @raise OSError: if it cannot be read or written.
    """
    path = os.path.join(directory, HOST_KEY_FILE_NAME)
    if os.path.exists(path):
        with open(path, "rb") as f:
            data = f.read()
        try:
            key = keys.Key.fromString(data)
        except keys.BadKeyError as e:
            raise ValueError(f"{path} is not an SSH private key: {e}") from None
        if key.isPublic():
            raise ValueError(f"{path} is not an SSH private key")
        return key
    private = ed25519.Ed25519PrivateKey.generate()
    data = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    temporary = path + ".tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    return keys.Key.fromString(data)


class ManholeFactory(manhole_ssh.ConchFactory):
    """
    The SSH server factory of the manhole; its host keys are set by
    L{ManholeService} when it starts.
    """

    def __init__(self, portal: portal.Portal):
        super().__init__(portal)
        # ConchFactory keeps these as class attributes; never share them.
        self.publicKeys: Dict[bytes, Any] = {}
        self.privateKeys: Dict[bytes, Any] = {}

    def set_host_key(self, key: keys.Key) -> None:
        """
        Serve C{key} as the host key.
        """
        self.publicKeys = {key.sshType(): key.public()}
        self.privateKeys = {key.sshType(): key}


class ManholeService(Service):
    """
    Listens for manhole SSH connections once started.

    Like L{twisted.application.internet.StreamServerEndpointService}, but
    a failure to listen raises from C{privilegedStartService} (that class
    only does so through its private C{_raiseSynchronously}).

    @ivar portal: the portal that checks credentials and hands out REPLs.
    @ivar description: the server endpoint string.
    @ivar host_key_dir: where the host key is kept.
    @ivar port: the listening port while running, else L{None}.
    """

    def __init__(self, description: str, factory: ManholeFactory, host_key_dir: str, reactor):
        self.endpoint = None
        self.factory = factory
        self.description = description
        self.host_key_dir = host_key_dir
        self.portal = factory.portal
        self.port = None
        self._reactor = reactor
        # Set by whoever builds the service: whether the endpoint may
        # accept connections from other machines (then a warning is logged).
        self.exposed = False

    def privilegedStartService(self) -> None:
        """
        Load (or create) the host key and listen.

        @raise ValueError: if the host key is unusable or the endpoint
            cannot listen.
        """
        if self.endpoint is None:
            self.factory.set_host_key(load_or_create_host_key(self.host_key_dir))
            reactor = self._reactor
            if reactor is None:
                from twisted.internet import reactor
            self.endpoint = endpoints.serverFromString(reactor, self.description)
            if self.exposed:
                log.warn(
                    "manhole listens on {endpoint}, beyond the loopback interface: "
                    "anyone who reaches it with the credentials gets a Python shell "
                    "inside this node",
                    endpoint=self.description,
                )
        if self.port is None:
            outcome: List[Any] = []
            self.endpoint.listen(self.factory).addBoth(outcome.append)
            if not outcome or isinstance(outcome[0], Failure):
                reason = outcome[0].getErrorMessage() if outcome else "not at once"
                raise ValueError(f"manhole: cannot listen on {self.description}: {reason}")
            self.port = outcome[0]
        super().privilegedStartService()

    def startService(self) -> None:
        self.privilegedStartService()
        super().startService()

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None


def manhole_service(
    endpoint_description: str,
    namespace: Dict[str, Any],
    keys_file: Optional[str] = None,
    passwd_file: Optional[str] = None,
    reactor=None,
    host_key_dir: Optional[str] = None,
    defer_to_thread: Optional[DeferToThread] = None,
) -> ManholeService:
    """
    Build (without starting) an SSH manhole service.

    @param endpoint_description: a server endpoint string, e.g.
        C{tcp:9092:interface=127.0.0.1}.
    @param namespace: the REPL's globals, e.g. C{{"node": node, "service":
        service}}; shared by all sessions.
    @param keys_file: an authorized_keys file; its keys may log in under any
        user name.
    @param passwd_file: a file of C{user:password} lines (the password in
        plain text or as a bcrypt hash).
    @param reactor: the reactor to listen with (default: the global one,
        imported when the service starts).
    @param host_key_dir: the directory that keeps the SSH host key
        (C{manhole_host_key}, mode 0600).
    @param defer_to_thread: how password checks are run off the reactor
        thread (default L{twisted.internet.threads.deferToThread}).
    @raise ValueError: without credentials, with a credential file that
        cannot be read or holds none, or without C{host_key_dir}.
    """
    if keys_file is None and passwd_file is None:
        raise ValueError(
            "manhole: refusing to start without credentials; give an authorized "
            "keys file (--manhole-keys) or a password file (--manhole-passwd)"
        )
    if host_key_dir is None:
        raise ValueError("manhole: host_key_dir is required to keep the SSH host key")
    credential_checkers = []
    if keys_file is not None:
        credential_checkers.append(_key_checker(keys_file))
    if passwd_file is not None:
        credential_checkers.append(_password_checker(passwd_file, defer_to_thread))
    realm = manhole_ssh.TerminalRealm()
    realm.chainedProtocolFactory = lambda: insults.ServerProtocol(
        manhole.ColoredManhole, namespace
    )
    factory = ManholeFactory(portal.Portal(realm, credential_checkers))
    return ManholeService(endpoint_description, factory, host_key_dir, reactor)

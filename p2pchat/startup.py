# -*- test-case-name: tests.integration.test_service -*-
"""
What a node takes from the machine when it starts, as child services of
L{p2pchat.service.NodeService}: its data directory (created private and
locked, so two nodes never share one) and its listening ports.

Each refuses to start with a L{StartupError} whose C{str} is one line the
operator can act on.
"""

import errno
import fcntl
import os
import stat
from typing import Callable, List, Optional

from twisted.application.service import Service
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2pchat.ops import activation

LOCK_FILE_NAME = "lock"
log = Logger()


class StartupError(Exception):
    """
    The node cannot start; C{str(error)} says why in one line.
    """


def ensure_data_dir(path: str) -> None:
    """
    Create the data directory (mode 0700) if needed and check that it is a
    writable directory.

    @raise StartupError: if it cannot be created or written.
    """
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as e:
        raise StartupError(f"cannot create data dir {path}: {e.strerror}") from None
    if not os.path.isdir(path):
        raise StartupError(f"data dir {path} is not a directory")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise StartupError(f"data dir {path} is not readable and writable")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        log.warn(
            "data dir {path} has mode {mode:o}: others on this machine may read "
            "its messages; chmod 700 it",
            path=path,
            mode=mode,
        )


class DataDirService(Service):
    """
    The node's data directory: created (mode 0700) and locked when the
    service starts, unlocked when it stops.

    The lock is an advisory C{flock} on C{DIR/lock}, held for the node's
    life; the file holds the pid of the node holding it.  Two nodes on one
    directory would share one identity and fork its feed, so the second
    refuses to start, naming the directory and the other node's pid.  The
    kernel drops the lock when the process dies, however it dies.

    @ivar path: the data directory.
    """

    def __init__(self, path: str, getpid: Callable[[], int] = os.getpid):
        self.path = path
        self._getpid = getpid
        self._fd: Optional[int] = None

    def startService(self) -> None:
        """
        @raise StartupError: if the directory is unusable or another node
            holds its lock.
        """
        ensure_data_dir(self.path)
        lock_path = os.path.join(self.path, LOCK_FILE_NAME)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise StartupError(f"cannot open the lock file {lock_path}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StartupError(f"cannot lock data dir {self.path}: {e.strerror}") from None
            raise StartupError(
                f"data dir {self.path} is in use by another p2pchat node (pid {holder}); "
                "stop that node or give this one another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{self._getpid()}\n".encode("ascii"))
        self._fd = fd
        super().startService()

    def stopService(self) -> None:
        super().stopService()
        if self._fd is not None:
            # Empty it first: a pid left behind would name a stopped node.
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def server_endpoint(reactor, description: str, what: str):
    """
    Build a server endpoint, turning whatever its parser raises (a missing
    key file for C{ssl:}, no inherited socket for C{systemd:}) into a
    L{StartupError}.

    @param what: what listens there, for the message (C{"peers"}).
    """
    try:
        return activation.server_endpoint(reactor, description)
    except Exception as e:
        raise StartupError(f"cannot listen for {what} on {description}: {reason(e)}") from None


def reason(error: Exception) -> str:
    """
    @return: C{error}'s message, or its type's name when it has none: words
        for a log line, not a repr.
    """
    return str(error) or type(error).__name__


def describe_port(port) -> str:
    """
    @return: C{host:port} where C{port} listens, the path of a UNIX
        socket, or C{none}.
    """
    if port is None:
        return "none"
    address = port.getHost()
    if hasattr(address, "port"):
        return f"{address.host}:{address.port}"
    name = getattr(address, "name", None)
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return str(name) if name else type(address).__name__


class ListenerService(Service):
    """
    Listen on one server endpoint while running.

    Unlike L{twisted.application.internet.StreamServerEndpointService},
    a failure to listen raises from C{startService} (as L{StartupError},
    through public API only), so the node refuses to start with one line
    instead of running without the port.  The endpoint and factory are
    made when the service starts, by C{make}: they may need what earlier
    services made (the node, the TLS settings).

    @ivar what: what listens, for messages (C{"peers"}, C{"consoles"}).
    @ivar port: the listening port while running, else L{None}.
    """

    def __init__(
        self,
        what: str,
        description: str,
        make: Callable[[], tuple],
        listening: Optional[Callable[[object], None]] = None,
    ):
        """
        @param description: the endpoint string, for messages.
        @param make: returns C{(endpoint, factory)}; may raise
            L{StartupError}.
        @param listening: called with the port once it listens.
        """
        self.what = what
        self.description = description
        self._make = make
        self._listening = listening
        self.port = None

    def startService(self) -> None:
        endpoint, factory = self._make()
        outcome: List[object] = []
        endpoint.listen(factory).addBoth(outcome.append)
        if not outcome:
            raise StartupError(
                f"cannot listen for {self.what} on {self.description}: "
                "the endpoint did not start listening at once"
            )
        if isinstance(outcome[0], Failure):
            raise StartupError(
                f"cannot listen for {self.what} on {self.description}: "
                f"{outcome[0].getErrorMessage()}"
            )
        self.port = outcome[0]
        if self._listening is not None:
            self._listening(self.port)
        super().startService()

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None

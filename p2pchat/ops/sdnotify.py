# -*- test-case-name: tests.integration.test_ops -*-
"""
The systemd notification protocol (C{sd_notify(3)}) without libsystemd.

A service started with C{Type=notify} gets the address of a datagram
socket in C{$NOTIFY_SOCKET}; it tells systemd it is ready (C{READY=1}),
what it is doing (C{STATUS=...}), that it is stopping (C{STOPPING=1}) and
that it is still alive (C{WATCHDOG=1}) by sending one newline-separated
C{KEY=value} datagram per notification.

L{Notifier.from_environ} returns C{None} outside systemd, so the service
can call it unconditionally.  Sending never blocks the reactor: the socket
is non-blocking, and a failed send is logged (once until a send succeeds
again), never raised.
"""

import os
import socket
import stat
from typing import Callable, Mapping, Optional, Union

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"

# systemd truncates nothing, but a status is one line of a few words.
MAX_STATUS_LENGTH = 200


class NotifyError(Exception):
    """
    C{$NOTIFY_SOCKET} (or C{$WATCHDOG_USEC}) is set but cannot be used;
    C{str(error)} says why in one line.
    """


def socket_address(value: str) -> Union[str, bytes]:
    """
    Turn a C{$NOTIFY_SOCKET} value into an C{AF_UNIX} address.

    @param value: a file system path, or C{@name} for a socket in the
        abstract namespace (Linux).
    @return: the address for C{socket.sendto}: the path, or the name
        after a NUL byte for an abstract socket.
    @raise NotifyError: if the value is empty, relative or of a kind this
        module does not speak (e.g. C{vsock:}).
    """
    if value.startswith("@") and len(value) > 1:
        return b"\0" + os.fsencode(value[1:])
    if not value.startswith("/"):
        raise NotifyError(
            f"{NOTIFY_SOCKET}={value}: not an absolute path or @abstract socket name"
        )
    return value


def _check_path(path: str) -> None:
    """
    @raise NotifyError: if C{path} does not exist or is not a socket.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise NotifyError(f"{NOTIFY_SOCKET}={path}: {e.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise NotifyError(f"{NOTIFY_SOCKET}={path}: not a socket")


def _probe(address: Union[str, bytes], display: str) -> None:
    """
    Check that a datagram socket is bound at C{address}: connecting to it
    fails at once (and without sending anything) when nothing listens
    there or when it is a stream socket.

    @raise NotifyError: naming C{display} and the reason.
    """
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.setblocking(False)
        probe.connect(address)
    except OSError as e:
        reason = e.strerror or str(e)
        raise NotifyError(
            f"{NOTIFY_SOCKET}={display}: cannot send to it: {reason}"
        ) from None
    finally:
        probe.close()


def _positive_int(environ: Mapping[str, str], key: str) -> int:
    """
    @return: C{environ[key]} as a positive integer.
    @raise NotifyError: if it is not one.
    """
    text = environ[key]
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise NotifyError(f"{key}={text!r}: not a positive integer")
    return int(text)


class Notifier:
    """
    Sends notifications to the service manager.

    @ivar address: the C{AF_UNIX} address notifications go to.
    @ivar watchdog_interval_s: the seconds between two C{WATCHDOG=1} while
        the watchdog timer runs, else C{None}.
    """

    log = Logger()

    def __init__(
        self,
        address: Union[str, bytes],
        clock: IReactorTime,
        sock: Optional[socket.socket] = None,
    ):
        """
        @param address: where to send (see L{socket_address}).
        @param clock: the clock that drives the watchdog timer.
        @param sock: the datagram socket to send from (for tests); by
            default a new non-blocking C{AF_UNIX} datagram socket.
        """
        self.address = address
        self._clock = clock
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
        self._socket = sock
        self._failing = False
        self._watchdog: Optional[LoopingCall] = None
        self.watchdog_interval_s: Optional[float] = None

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str], clock: IReactorTime
    ) -> Optional["Notifier"]:
        """
        Build a notifier from the environment systemd gives a
        C{Type=notify} service.

        @param environ: the environment, e.g. C{os.environ}.
        @param clock: the clock that drives the watchdog timer.
        @return: a L{Notifier}, or C{None} if C{$NOTIFY_SOCKET} is unset
            or empty (not run by systemd, or not C{Type=notify}).
        @raise NotifyError: if C{$NOTIFY_SOCKET} names something that is not
            a datagram socket one can send to.
        """
        value = environ.get(NOTIFY_SOCKET)
        if not value:
            return None
        address = socket_address(value)
        if isinstance(address, str):
            _check_path(address)
        _probe(address, value)
        return cls(address, clock)

    def send(self, **fields: object) -> bool:
        """
        Send one notification made of C{KEY=value} lines, e.g.
        C{send(READY=1, STATUS="ok")}.

        @return: whether the datagram was sent.  A failure is logged the
            first time (and again only after a send has succeeded).
        """
        lines = [f"{key}={value}" for key, value in fields.items()]
        datagram = "\n".join(lines).encode("utf-8")
        try:
            self._socket.sendto(datagram, self.address)
        except OSError as e:
            if not self._failing:
                self._failing = True
                self.log.warn(
                    "cannot notify systemd ({fields}): {error}; "
                    "further failures are not logged until one succeeds",
                    fields=", ".join(fields),
                    error=e.strerror or str(e),
                )
            return False
        self._failing = False
        return True

    def ready(self, status: Optional[str] = None) -> bool:
        """
        Say the service is ready (C{READY=1}), with a status line if given.
        """
        if status is None:
            return self.send(READY=1)
        return self.send(READY=1, STATUS=_one_line(status))

    def status(self, text: str) -> bool:
        """
        Set the status line C{systemctl status} shows (C{STATUS=}); line
        breaks become spaces and it is cut to L{MAX_STATUS_LENGTH}
        characters.
        """
        return self.send(STATUS=_one_line(text))

    def stopping(self, status: Optional[str] = None) -> bool:
        """
        Say the service is stopping (C{STOPPING=1}).
        """
        if status is None:
            return self.send(STOPPING=1)
        return self.send(STOPPING=1, STATUS=_one_line(status))

    def watchdog(self) -> bool:
        """
        Say the service is alive (C{WATCHDOG=1}).
        """
        return self.send(WATCHDOG=1)

    def start_watchdog(
        self,
        environ: Mapping[str, str],
        getpid: Callable[[], int] = os.getpid,
    ) -> Optional[float]:
        """
        Send C{WATCHDOG=1} now and then every half C{$WATCHDOG_USEC} from a
        reactor timer, so that a blocked reactor misses the deadline and
        systemd restarts the service.

        Nothing happens if C{$WATCHDOG_USEC} is unset, or if
        C{$WATCHDOG_PID} is set to another process's id (the watchdog is
        meant for that process).

        @param environ: the environment, e.g. C{os.environ}.
        @param getpid: returns this process's id.
        @return: the interval in seconds, or C{None} if no watchdog runs.
        @raise NotifyError: if C{$WATCHDOG_USEC} or C{$WATCHDOG_PID} is
            not a positive integer.
        """
        if not environ.get(WATCHDOG_USEC):
            return None
        usec = _positive_int(environ, WATCHDOG_USEC)
        if environ.get(WATCHDOG_PID) and _positive_int(environ, WATCHDOG_PID) != getpid():
            return None
        self.stop_watchdog()
        self.watchdog_interval_s = usec / 2 / 1_000_000
        self._watchdog = LoopingCall(self.watchdog)
        self._watchdog.clock = self._clock
        self._watchdog.start(self.watchdog_interval_s, now=True)
        return self.watchdog_interval_s

    def stop_watchdog(self) -> None:
        """
        Stop sending C{WATCHDOG=1} (safe to call when it is not running).
        """
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
        self._watchdog = None
        self.watchdog_interval_s = None

    def close(self) -> None:
        """
        Stop the watchdog timer and close the socket.
        """
        self.stop_watchdog()
        self._socket.close()


def _one_line(text: str) -> str:
    """
    @return: C{text} on one line, at most L{MAX_STATUS_LENGTH} characters.
    """
    return " ".join(str(text).split())[:MAX_STATUS_LENGTH]


class NotifierService(Service):
    """
    The node's line to systemd, as the first child service: started
    first (a wrong C{$NOTIFY_SOCKET} stops the start before anything else
    happens) and stopped last, so C{WATCHDOG=1} keeps coming while the node
    stops.

    @ivar notifier: the L{Notifier} while running under C{$NOTIFY_SOCKET},
        else L{None}.
    """

    def __init__(self, environ: Mapping[str, str], clock: Callable[[], IReactorTime]):
        """
        @param environ: the environment, e.g. C{os.environ}.
        @param clock: returns the clock for the watchdog timer (called when
            the service starts).
        """
        self._environ = environ
        self._clock = clock
        self.notifier: Optional[Notifier] = None

    def startService(self) -> None:
        """
        @raise NotifyError: see L{Notifier.from_environ}.
        """
        self.notifier = Notifier.from_environ(self._environ, self._clock())
        if self.notifier is not None:
            self.notifier.start_watchdog(self._environ)
        super().startService()

    def stopService(self) -> None:
        super().stopService()
        notifier, self.notifier = self.notifier, None
        if notifier is not None:
            notifier.stop_watchdog()
            notifier.close()

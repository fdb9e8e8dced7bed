"""
Tests for the operations layer: L{p2pchat.ops.sdnotify} against real datagram
sockets, L{p2pchat.ops.metrics} scraped over HTTP, L{p2pchat.ops.logs} with real
twistd processes, the systemd units with C{systemd-analyze verify}, and a
node under C{systemd-socket-activate} and under the kernel's
memory-deny-write-execute (what C{MemoryDenyWriteExecute=yes} enforces).
"""

import configparser
import io
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

import p2pchat
from p2pchat.mesh.wire import PROTOCOL_VERSION
from p2pchat.ops import logs
from p2pchat.ops.metrics import Metrics, metrics_resource, metrics_site
from p2pchat.ops.sdnotify import Notifier, NotifierService, NotifyError, socket_address
from tests.processes import DEADLINE_S, REPO_ROOT, ConsoleClient, twistd_command

UNITS_DIR = os.path.join(REPO_ROOT, "contrib", "systemd")
UNIT_TWISTD = "/opt/p2pchat/bin/twistd"
PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1


def short_temp_dir(test):
    """
    @return: a new directory under the system temp dir, removed after
        C{test}: C{AF_UNIX} paths must stay under 108 bytes, which trial's
        own temp paths may not.
    """
    path = tempfile.mkdtemp(prefix="p2pchat-ops-")
    test.addCleanup(shutil.rmtree, path, True)
    return path


def receiver(test, path=None):
    """
    @return: a datagram socket bound at C{path} (or, if C{None}, at an
        abstract address), closed after C{test}, and its
        C{$NOTIFY_SOCKET} value.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    test.addCleanup(sock.close)
    if path is None:
        name = f"p2pchat-test-{os.getpid()}-{id(sock)}"
        sock.bind(b"\0" + name.encode())
        value = "@" + name
    else:
        sock.bind(path)
        value = path
    sock.settimeout(DEADLINE_S)
    return sock, value


def received(sock):
    """
    @return: every datagram waiting on C{sock}, decoded.
    """
    datagrams = []
    sock.setblocking(False)
    try:
        while True:
            datagrams.append(sock.recv(4096).decode("utf-8"))
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(DEADLINE_S)
    return datagrams


class NotifierTests(SynchronousTestCase):
    """
    L{Notifier} speaks the sd_notify protocol to a real datagram socket.
    """

    def setUp(self):
        self.clock = Clock()
        self.sock, self.value = receiver(self, os.path.join(short_temp_dir(self), "notify"))
        self.notifier = Notifier.from_environ({"NOTIFY_SOCKET": self.value}, self.clock)
        self.addCleanup(self.notifier.close)

    def test_unset_means_no_notifier(self):
        """
        Outside systemd (C{$NOTIFY_SOCKET} unset or empty) there is no
        notifier and no error.
        """
        self.assertIsNone(Notifier.from_environ({}, self.clock))
        self.assertIsNone(Notifier.from_environ({"NOTIFY_SOCKET": ""}, self.clock))

    def test_ready_status_stopping(self):
        """
        C{ready}, C{status} and C{stopping} each send one datagram of
        C{KEY=value} lines, and report that it was sent.
        """
        self.assertTrue(self.notifier.ready())
        self.assertTrue(self.notifier.status("2 peers alive, 17 messages"))
        self.assertTrue(self.notifier.ready("up"))
        self.assertTrue(self.notifier.stopping())
        self.assertEqual(
            received(self.sock),
            ["READY=1", "STATUS=2 peers alive, 17 messages", "READY=1\nSTATUS=up", "STOPPING=1"],
        )

    def test_status_is_one_line(self):
        """
        A status with line breaks (which would start a new C{KEY=value}
        line) is sent on one line, cut to a sane length.
        """
        self.notifier.status("two\nlines\nREADY=1")
        self.notifier.status("x" * 1000)
        first, second = received(self.sock)
        self.assertEqual(first, "STATUS=two lines READY=1")
        self.assertEqual(second, "STATUS=" + "x" * 200)

    def test_abstract_socket(self):
        """
        C{@name} means a socket in the abstract namespace.
        """
        sock, value = receiver(self)
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": value}, self.clock)
        self.addCleanup(notifier.close)
        notifier.ready()
        self.assertEqual(sock.recv(4096), b"READY=1")
        self.assertEqual(socket_address("@abc"), b"\0abc")

    def test_watchdog_timer(self):
        """
        With C{$WATCHDOG_USEC}, C{WATCHDOG=1} is sent at once and then every
        half period from a timer on the injected clock; stopping the
        watchdog stops the datagrams.
        """
        interval = self.notifier.start_watchdog({"WATCHDOG_USEC": "30000000"})
        self.assertEqual(interval, 15.0)
        self.assertEqual(received(self.sock), ["WATCHDOG=1"])
        self.clock.advance(14.9)
        self.assertEqual(received(self.sock), [])
        self.clock.advance(0.1)
        self.assertEqual(received(self.sock), ["WATCHDOG=1"])
        self.clock.advance(15)
        self.assertEqual(received(self.sock), ["WATCHDOG=1"])
        self.notifier.stop_watchdog()
        self.clock.advance(60)
        self.assertEqual(received(self.sock), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_blocked_reactor_misses_watchdog(self):
        """
        The datagrams come from the reactor timer, not a thread: while the
        clock does not run (a blocked reactor) nothing is sent, and when it
        runs again one late C{WATCHDOG=1} follows.
        """
        self.notifier.start_watchdog({"WATCHDOG_USEC": "2000000"})
        received(self.sock)
        self.clock.advance(10)
        self.assertEqual(received(self.sock), ["WATCHDOG=1"])

    def test_watchdog_for_this_process_only(self):
        """
        C{$WATCHDOG_PID} naming another process, or no C{$WATCHDOG_USEC},
        starts no watchdog; this process's id does.
        """
        environ = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "4242"}
        self.assertIsNone(self.notifier.start_watchdog(environ, getpid=lambda: 1))
        self.assertIsNone(self.notifier.start_watchdog({}))
        self.assertEqual(received(self.sock), [])
        self.assertEqual(self.notifier.start_watchdog(environ, getpid=lambda: 4242), 0.5)
        self.assertEqual(received(self.sock), ["WATCHDOG=1"])

    def test_bad_watchdog_settings(self):
        """
        A C{$WATCHDOG_USEC} or C{$WATCHDOG_PID} that is not a positive
        integer is a L{NotifyError} naming the variable.
        """
        for environ in ({"WATCHDOG_USEC": "soon"}, {"WATCHDOG_USEC": "0"},
                        {"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "-1"}):
            error = self.assertRaises(NotifyError, self.notifier.start_watchdog, environ)
            self.assertIn("WATCHDOG_", str(error))

    def test_send_failure_is_logged_once(self):
        """
        When the receiving socket goes away, sending returns C{False} and
        logs one warning, however many sends fail; after a send succeeds
        again, the next failure is logged again.
        """
        events = []
        self.notifier.log = Logger(observer=events.append)
        self.sock.close()
        os.unlink(self.value)
        self.assertFalse(self.notifier.status("a"))
        self.assertFalse(self.notifier.watchdog())
        self.assertEqual(len(events), 1)
        self.assertIn("cannot notify systemd (STATUS)", formatEvent(events[0]))
        self.sock, _ = receiver(self, self.value)
        self.assertTrue(self.notifier.ready())
        self.sock.close()
        self.assertFalse(self.notifier.stopping())
        self.assertEqual(len(events), 2)

    def test_sending_never_blocks(self):
        """
        When the receiver does not read and its queue is full, sending
        fails at once instead of blocking the reactor.
        """
        self.notifier.log = Logger(observer=lambda event: None)
        results = [self.notifier.status(f"status {i}") for i in range(5000)]
        # A blocking send would hang on the full queue instead of failing:
        # getting False back is the proof (no wall-clock bound).
        self.assertIn(False, results)


class NotifierServiceTests(SynchronousTestCase):
    """
    L{NotifierService}: the notifier as a child service of the node.
    """

    def test_no_socket_no_notifier(self):
        """
        Outside systemd the service starts and stops with no notifier.
        """
        service = NotifierService({}, Clock)
        service.startService()
        self.assertIsNone(service.notifier)
        service.stopService()
        self.assertFalse(service.running)

    def test_watchdog_until_stopped(self):
        """
        Under C{$NOTIFY_SOCKET} with C{$WATCHDOG_USEC}, starting sends
        C{WATCHDOG=1} and keeps sending it every half interval until the
        service stops; then the timer is gone and the notifier closed.
        """
        clock = Clock()
        sock, value = receiver(self, os.path.join(short_temp_dir(self), "notify"))
        environ = {"NOTIFY_SOCKET": value, "WATCHDOG_USEC": "2000000"}
        service = NotifierService(environ, lambda: clock)
        service.startService()
        clock.advance(1.0)
        self.assertEqual(received(sock), ["WATCHDOG=1", "WATCHDOG=1"])
        service.stopService()
        self.assertIsNone(service.notifier)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_wrong_socket_refuses_start(self):
        """
        A C{$NOTIFY_SOCKET} nobody listens on stops the start.
        """
        missing = os.path.join(short_temp_dir(self), "missing")
        service = NotifierService({"NOTIFY_SOCKET": missing}, Clock)
        self.assertRaises(NotifyError, service.startService)
        self.assertFalse(service.running)


class WrongNotifySocketTests(SynchronousTestCase):
    """
    A C{$NOTIFY_SOCKET} that cannot be used is a one-line L{NotifyError} at
    start, so the service can exit non-zero with a clear message.
    """

    def setUp(self):
        self.dir = short_temp_dir(self)

    def assertUnusable(self, value, reason):
        error = self.assertRaises(
            NotifyError, Notifier.from_environ, {"NOTIFY_SOCKET": value}, Clock()
        )
        self.assertIn(f"NOTIFY_SOCKET={value}", str(error))
        self.assertIn(reason, str(error))
        self.assertNotIn("\n", str(error))

    def test_missing_path(self):
        """
        A path where nothing exists is named with the OS's reason.
        """
        self.assertUnusable(os.path.join(self.dir, "nothing"), "No such file or directory")

    def test_not_a_socket(self):
        """
        A regular file is not a socket.
        """
        path = os.path.join(self.dir, "file")
        with open(path, "w"):
            pass
        self.assertUnusable(path, "not a socket")

    def test_stale_socket_file(self):
        """
        A socket file nobody listens on any more is refused.
        """
        sock, path = receiver(self, os.path.join(self.dir, "stale"))
        sock.close()
        self.assertUnusable(path, "cannot send to it: Connection refused")

    def test_stream_socket(self):
        """
        A stream socket (e.g. a console socket given by mistake) is not a
        notification socket.
        """
        path = os.path.join(self.dir, "stream")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.bind(path)
        sock.listen(1)
        self.assertUnusable(path, "cannot send to it")

    def test_unknown_abstract_name_and_relative_path(self):
        """
        An abstract name nobody bound, and a relative path, are refused.
        """
        self.assertUnusable("@p2pchat-nobody-binds-this", "cannot send to it")
        self.assertUnusable("run/notify", "not an absolute path")


class MetricsHTTPTests(TestCase):
    """
    The metrics site scraped over real HTTP on the loopback interface.
    """

    @defer.inlineCallbacks
    def get(self, path, headers=None):
        """
        GET C{path} from the listening site.

        @return: a L{Deferred} firing with the response and its body.
        """
        from twisted.internet import reactor
        from twisted.web.client import Agent, HTTPConnectionPool, readBody
        from twisted.web.http_headers import Headers

        pool = HTTPConnectionPool(reactor, persistent=False)
        agent = Agent(reactor, pool=pool)
        url = f"http://127.0.0.1:{self.port.getHost().port}{path}".encode()
        response = yield agent.request(b"GET", url, Headers(headers or {}))
        body = yield readBody(response)
        yield pool.closeCachedConnections()
        return response, body

    @defer.inlineCallbacks
    def setUp(self):
        from twisted.internet import reactor

        self.metrics = Metrics()
        endpoint = endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1")
        self.port = yield endpoint.listen(metrics_site(self.metrics))
        self.addCleanup(self.port.stopListening)

    @defer.inlineCallbacks
    def test_scrape(self):
        """
        C{/metrics} answers in the Prometheus text format with every
        metric and its current value.
        """
        self.metrics.entry_stored(5)
        self.metrics.entry_rejected("invalid_signature")
        self.metrics.set_peer_states({"alive": 2})
        self.metrics.bytes_out(1234)
        response, body = yield self.get("/metrics")
        self.assertEqual(response.code, 200)
        [content_type] = response.headers.getRawHeaders(b"content-type")
        self.assertTrue(content_type.startswith(b"text/plain; version="), content_type)
        text = body.decode("utf-8")
        for line in (
            "p2pchat_entries_stored_total 5.0",
            "p2pchat_entries_relayed_total 0.0",
            'p2pchat_entries_rejected_total{reason="invalid_signature"} 1.0',
            'p2pchat_peers{state="alive"} 2.0',
            'p2pchat_peers{state="dead"} 0.0',
            "p2pchat_links 0.0",
            "p2pchat_replication_lag_entries 0.0",
            "p2pchat_received_bytes_total 0.0",
            "p2pchat_sent_bytes_total 1234.0",
            "p2pchat_reactor_lag_seconds 0.0",
            "p2pchat_entries_held 0.0",
        ):
            self.assertIn(line + "\n", text)
        self.assertIn("# TYPE p2pchat_entries_stored_total counter", text)

    @defer.inlineCallbacks
    def test_openmetrics_and_not_found(self):
        """
        A scraper asking for OpenMetrics gets it; paths other than
        C{/metrics} are 404.
        """
        response, body = yield self.get(
            "/metrics", {b"accept": [b"application/openmetrics-text; version=1.0.0"]}
        )
        [content_type] = response.headers.getRawHeaders(b"content-type")
        self.assertTrue(content_type.startswith(b"application/openmetrics-text"))
        self.assertTrue(body.endswith(b"# EOF\n"))
        response, _ = yield self.get("/")
        self.assertEqual(response.code, 404)

    def test_resource_tree(self):
        """
        L{metrics_resource} has C{metrics} as its only child.
        """
        root = metrics_resource(self.metrics)
        self.assertEqual(list(root.listNames()), [b"metrics"])


class OutputProcess:
    """
    A child process whose standard output (and error) is read without
    blocking until a pattern appears.
    """

    def __init__(self, argv, env=None, cwd=None):
        self.output = b""
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, cwd=cwd,
        )

    def wait_for(self, pattern):
        """
        @return: the first match of C{pattern} (bytes) in the output.
        @raise AssertionError: if it does not appear within the deadline.
        """
        pattern = re.compile(pattern)
        deadline = time.monotonic() + DEADLINE_S
        while True:
            match = pattern.search(self.output)
            if match:
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                raise AssertionError(
                    f"no {pattern.pattern!r} in output:\n" + self.output.decode(errors="replace")
                )

    def _read(self, timeout):
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return False
        data = os.read(self.process.stdout.fileno(), 65536)
        self.output += data
        return bool(data)

    def stop(self, sig=signal.SIGTERM):
        """
        Send C{sig}, read the rest of the output and wait for the exit.

        @return: the exit status.
        """
        if self.process.stdout.closed:
            return self.process.returncode
        if self.process.poll() is None:
            self.process.send_signal(sig)
        deadline = time.monotonic() + DEADLINE_S
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        if self.process.poll() is None:
            self.process.kill()
        status = self.process.wait()
        self.output += self.process.stdout.read()
        self.process.stdout.close()
        return status


def environment(**extra):
    """
    @return: this process's environment with the checkout importable.
    """
    return dict(os.environ, PYTHONPATH=REPO_ROOT, PYTHONUNBUFFERED="1", **extra)


def json_lines(output):
    """
    @return: every line of C{output} parsed as a JSON log record.
    """
    return [json.loads(line) for line in output.decode("utf-8").splitlines()]


TAC = """
from twisted.application import service
from twisted.logger import Logger

from p2pchat.ops import logs


class Chatty(service.Service):
    def setServiceParent(self, parent):
        logs.use_log_format(parent, "json")
        return super().setServiceParent(parent)

    def startService(self):
        Logger().info("peer {peer} said hello", peer="alice (ab12cd34)")


application = service.Application("chatty")
Chatty().setServiceParent(application)
"""


class LogFormatTests(SynchronousTestCase):
    """
    L{p2pchat.ops.logs} writes text or JSON lines.
    """

    def test_json_observer_writes_one_record_per_line(self):
        """
        The JSON observer writes each event as one JSON object per line (no
        record separator): ISO time, the level's name, the rendered
        message, the namespace and the event's own fields, without
        Twisted's bookkeeping.
        """
        stream = io.StringIO()
        log = Logger(observer=logs.observer_for("json", stream), namespace="p2pchat.chat.node")
        log.info("link up with {peer}", peer="alice (ab12cd34)")
        log.warn("second {n}", n=2)
        lines = stream.getvalue().splitlines()
        self.assertEqual(len(lines), 2)
        record = json.loads(lines[0])
        self.assertEqual(
            sorted(record), ["level", "message", "namespace", "peer", "time"]
        )
        self.assertEqual(record["level"], "info")
        self.assertEqual(record["message"], "link up with alice (ab12cd34)")
        self.assertEqual(record["namespace"], "p2pchat.chat.node")
        self.assertEqual(record["peer"], "alice (ab12cd34)")
        self.assertRegex(record["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00$")
        second = json.loads(lines[1])
        self.assertEqual((second["level"], second["message"], second["n"]), ("warn", "second 2", 2))

    def test_json_record_fields_are_json_safe(self):
        """
        Fields JSON cannot hold become strings; a failure becomes a
        C{traceback}; a field named like a record key does not replace it;
        peer text with control characters stays on one escaped line.
        """
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError:
            failure = Failure()
        event = {
            "log_format": "{who} sent {data!r}", "log_level": LogLevel.error,
            "log_namespace": "p2pchat.mesh.peer", "log_time": 0.0, "log_failure": failure,
            "log_logger": object(), "who": "eve\x1b[2J\n", "data": b"\xff",
            "address": IPv4Address("TCP", "127.0.0.1", 9090), "nan": math.nan,
            "time": "not the time", "message": ("legacy",),
        }
        line = logs.json_line(event)
        self.assertEqual(line.count("\n"), 1)
        record = json.loads(line)
        self.assertEqual(record["time"], "1970-01-01T00:00:00+00:00")
        self.assertEqual(record["level"], "error")
        self.assertEqual(record["who"], "eve\x1b[2J\n")
        self.assertEqual(record["data"], "\ufffd")
        self.assertEqual(record["address"], str(IPv4Address("TCP", "127.0.0.1", 9090)))
        self.assertEqual(record["nan"], "nan")
        self.assertIn("ZeroDivisionError", record["traceback"])
        self.assertNotIn("log_logger", record)
        self.assertNotIn("log_format", record)

    def test_text_observer_writes_timestamped_lines(self):
        """
        The text observer writes RFC 3339 timestamp, system and message.
        """
        stream = io.StringIO()
        Logger(observer=logs.observer_for("text", stream), namespace="p2pchat.chat.node").info("hi")
        self.assertRegex(stream.getvalue(), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S* "
                                            r"\[p2pchat\.chat\.node#info\] hi\n$")

    def test_unknown_format(self):
        """
        A format other than text or json is a L{ValueError}.
        """
        self.assertRaises(ValueError, logs.observer_for, "xml", io.StringIO())
        self.assertRaises(ValueError, logs.use_log_format, service.Application("x"), "xml")

    def test_use_log_format_sets_application_observer(self):
        """
        For json the application gets an C{ILogObserver} component (what
        twistd's C{AppLogger} looks for); text, an application that already
        has one, and a parent that is not an application are left alone.
        """
        application = service.Application("p2pchat")
        self.assertFalse(logs.use_log_format(application, "text"))
        self.assertIsNone(application.getComponent(ILogObserver, None))
        stream = io.StringIO()
        self.assertTrue(logs.use_log_format(application, "json", stream))
        observer = application.getComponent(ILogObserver)
        Logger(observer=observer).info("x")
        self.assertEqual(json.loads(stream.getvalue())["message"], "x")
        self.assertFalse(logs.use_log_format(application, "json", io.StringIO()))
        self.assertIs(application.getComponent(ILogObserver), observer)
        self.assertFalse(logs.use_log_format(service.MultiService(), "json"))

    def test_twistd_logger_option(self):
        """
        C{twistd --logger=p2pchat.ops.logs.json_observer} (with any plugin, here
        C{web}) writes only JSON lines on standard output, from twistd's
        first line to its last.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        process = OutputProcess(
            twistd_command() + [
                "--logger=p2pchat.ops.logs.json_observer", "-n", "--pidfile=", "web",
                "--listen", "tcp:0:interface=127.0.0.1", "--path", directory,
            ],
            env=environment(), cwd=directory,
        )
        port = int(process.wait_for(rb"Site starting on (\d+)").group(1))
        # A request is only answered once the reactor runs (and handles
        # SIGTERM): twistd binds the port before.
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as client:
            client.sendall(b"GET / HTTP/1.0\r\n\r\n")
            self.assertTrue(read_line(client).startswith(b"HTTP/1.0 200"))
        self.assertIn(process.stop(), (0, -signal.SIGTERM))
        messages = [record["message"] for record in json_lines(process.output)]
        self.assertTrue(messages[0].startswith("twistd "), messages[0])
        self.assertIn("Received SIGTERM, shutting down.", messages)

    def test_application_component_in_twistd(self):
        """
        A service that calls L{logs.use_log_format} from
        C{setServiceParent} -- as C{NodeService} does for C{--log-format
        json} -- makes twistd write only JSON lines, including its own
        start-up lines.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        with open(os.path.join(directory, "chatty.tac"), "w") as f:
            f.write(TAC)
        process = OutputProcess(
            twistd_command() + ["-n", "--pidfile=", "-y", "chatty.tac"],
            env=environment(), cwd=directory,
        )
        process.wait_for(rb"said hello")
        self.assertIn(process.stop(), (0, -signal.SIGTERM))
        messages = [record["message"] for record in json_lines(process.output)]
        self.assertEqual(messages[0], "Loading chatty.tac...")
        self.assertTrue(any(m.startswith("twistd ") for m in messages), messages)
        self.assertIn("peer alice (ab12cd34) said hello", messages)


def read_unit(name):
    """
    @return: the text of one shipped unit file.
    """
    with open(os.path.join(UNITS_DIR, name)) as f:
        return f.read()


def unit_settings(text):
    """
    @return: the unit's C{Key=value} settings as (key, value) pairs,
        continuation lines joined.
    """
    text = text.replace("\\\n", " ")
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            pairs.append((key, " ".join(value.split())))
    return pairs


class SystemdUnitTests(SynchronousTestCase):
    """
    The shipped units are valid and say what the issue asks.
    """

    def test_verify(self):
        """
        C{systemd-analyze verify} accepts both units without a warning.
        verify checks that C{ExecStart}'s program exists, so the service is
        verified from a copy whose C{/opt/p2pchat/bin/twistd} is this
        environment's twistd.
        """
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            raise SkipTest("systemd-analyze is not installed")
        directory = short_temp_dir(self)
        service_text = read_unit("p2pchat.service")
        self.assertIn(UNIT_TWISTD, service_text)
        with open(os.path.join(directory, "p2pchat.service"), "w") as f:
            f.write(service_text.replace(UNIT_TWISTD, twistd_command()[0]))
        shutil.copy(os.path.join(UNITS_DIR, "p2pchat.socket"), directory)
        result = subprocess.run(
            [analyze, "verify", "p2pchat.socket", "p2pchat.service"],
            cwd=directory, capture_output=True, text=True, timeout=60,
            env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice"),
        )
        self.assertEqual((result.returncode, result.stdout + result.stderr), (0, ""))

    def test_service_settings(self):
        """
        The service is C{Type=notify} with a watchdog, runs twistd in the
        foreground on the socket unit's port, unprivileged with a state
        directory, and hardened.
        """
        settings = unit_settings(read_unit("p2pchat.service"))
        keys = dict(settings)
        exec_start = keys["ExecStart"]
        self.assertTrue(exec_start.startswith(
            f"{UNIT_TWISTD} --nodaemon --pidfile= p2pchat --listen systemd:domain=INET:index=0 "
        ), exec_start)
        for key, value in [
            ("Type", "notify"), ("WatchdogSec", "30"), ("TimeoutStopSec", "10"),
            ("Restart", "on-failure"), ("StateDirectory", "p2pchat"), ("DynamicUser", "yes"),
            ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"), ("PrivateDevices", "yes"), ("ProtectKernelTunables", "yes"),
            ("ProtectKernelModules", "yes"), ("ProtectControlGroups", "yes"),
            ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
            ("RestrictNamespaces", "yes"), ("LockPersonality", "yes"),
            ("MemoryDenyWriteExecute", "yes"), ("SystemCallFilter", "@system-service"),
            ("Environment", "PYTHONUNBUFFERED=1"), ("Requires", "p2pchat.socket"),
        ]:
            self.assertIn((key, value), settings)
        self.assertIn("p2pchat.socket", keys["After"].split())

    def test_documentation_is_installed(self):
        """
        Both units' C{Documentation=} names a file that C{pip install} puts
        under the prefix C{ExecStart} runs from (setup.cfg's
        C{data_files}), and that file is in the checkout.
        """
        config = configparser.ConfigParser()
        config.read(os.path.join(REPO_ROOT, "setup.cfg"))
        installed = {
            f"{directory}/{os.path.basename(path)}": path
            for directory, paths in config.items("options.data_files")
            for path in paths.split()
        }
        prefix = UNIT_TWISTD[: -len("/bin/twistd")]
        for unit in ("p2pchat.service", "p2pchat.socket"):
            documentation = dict(unit_settings(read_unit(unit)))["Documentation"]
            self.assertTrue(documentation.startswith(f"file://{prefix}/"), documentation)
            relative = documentation[len(f"file://{prefix}/"):]
            self.assertIn(relative, installed)
            self.assertTrue(os.path.isfile(os.path.join(REPO_ROOT, installed[relative])))

    def test_env_example_advertises_a_host(self):
        """
        The example settings tell peers where to reach the node: a server
        node left on the default 127.0.0.1 would be unreachable.
        """
        example = [line for line in read_unit("p2pchat.service").splitlines()
                   if "P2PCHAT_OPTIONS=" in line]
        self.assertTrue(example)
        self.assertTrue(all("--advertise-host" in line for line in example), example)
        with open(os.path.join(REPO_ROOT, "docs", "operations.md")) as f:
            docs = [line for line in f if "P2PCHAT_OPTIONS=" in line]
        self.assertTrue(docs)
        self.assertTrue(all("--advertise-host" in line for line in docs), docs)

    def test_socket_settings(self):
        """
        The socket unit listens on the peer port 9090 and is wanted by
        C{sockets.target}.
        """
        settings = unit_settings(read_unit("p2pchat.socket"))
        self.assertIn(("ListenStream", "9090"), settings)
        self.assertIn(("WantedBy", "sockets.target"), settings)


def free_port():
    """
    @return: a TCP port on 127.0.0.1 that was free a moment ago.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_line(sock):
    """
    @return: the first line received on C{sock}.
    """
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


class RealNodeTests(SynchronousTestCase):
    """
    A real C{twistd -n p2pchat} process under the tools systemd uses.
    """

    def node_arguments(self, *args):
        data_dir = os.path.abspath(self.mktemp())
        return twistd_command() + [
            "-n", "--pidfile=", "p2pchat", "--name", "ops", "--data-dir", data_dir,
            "--no-stdio", *args,
        ]

    def activate(self, *tool_options):
        """
        Start a node under C{systemd-socket-activate} (with
        C{tool_options}) with C{--listen systemd:domain=INET:index=0};
        check that it adopts the inherited socket: the connection that
        triggered the start is answered with the node's hello, the node
        advertises the inherited port, and SIGTERM exits 0.
        """
        activate = shutil.which("systemd-socket-activate")
        if activate is None:
            raise SkipTest("systemd-socket-activate is not installed")
        port = free_port()
        process = OutputProcess(
            [activate, *tool_options, "-E", f"PYTHONPATH={REPO_ROOT}",
             "-E", "PYTHONUNBUFFERED=1", "-l", f"127.0.0.1:{port}"]
            + self.node_arguments("--listen", "systemd:domain=INET:index=0",
                                  "--console", "tcp:0:interface=127.0.0.1"),
        )
        self.addCleanup(process.stop, signal.SIGKILL)
        process.wait_for(rb"Listening on 127\.0\.0\.1:\d+")
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as peer:
            hello = json.loads(read_line(peer))
        self.assertEqual((hello["type"], hello["name"]), ("hello", "ops"))
        self.assertEqual(hello["addr"], f"127.0.0.1:{port}")
        process.wait_for(rb"started: peers on 127\.0\.0\.1:%d" % (port,))
        # stop() kills (status -9) if SIGTERM has not ended it within its
        # generous deadline: no wall-clock bound here.
        self.assertEqual(process.stop(), 0)

    def test_socket_activation(self):
        """
        With C{--fdname} the tool sets C{$LISTEN_FDNAMES}, as systemd does:
        the node adopts the inherited socket.
        """
        self.activate("--fdname=peers")

    def test_socket_activation_without_names(self):
        """
        Without C{--fdname} (as the tool's man page shows) there is no
        C{$LISTEN_FDNAMES}, which Twisted's own C{systemd:} endpoint takes
        as "no inherited socket" (IndexError); the node adopts it anyway.
        """
        self.activate()

    def test_memory_deny_write_execute(self):
        """
        The node runs with the kernel's memory-deny-write-execute set (what
        C{MemoryDenyWriteExecute=yes} enforces): it starts, signs and
        stores a message (PyNaCl through cffi) and shows it on its console.
        """
        check = subprocess.run(
            [sys.executable, "-c", MDWE_EXEC, sys.executable, "-c", MDWE_PROBE],
            capture_output=True, text=True, timeout=60,
        )
        if check.returncode != 0:
            raise SkipTest(f"this kernel cannot deny write+execute: {check.stderr.strip()}")
        console_port = free_port()
        process = OutputProcess(
            [sys.executable, "-c", MDWE_EXEC]
            + self.node_arguments("--port", "0", "--console",
                                  f"tcp:{console_port}:interface=127.0.0.1"),
            env=environment(),
        )
        self.addCleanup(process.stop, signal.SIGKILL)
        process.wait_for(rb"started: peers on")
        console = ConsoleClient(console_port)
        self.addCleanup(console.close)
        shown = console.command("signed under W^X", rb"<ops> signed under W\^X\r\n")
        self.assertIn("signed under W^X", shown)
        self.assertEqual(process.stop(), 0)


# Exits 0 if a writable and executable mapping is refused (run after
# MDWE_EXEC: proves the setting survives execve).
MDWE_PROBE = """
import mmap, sys
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except OSError:
    sys.exit(0)
sys.exit("a write+execute mapping was allowed")
"""

# Turns memory-deny-write-execute on (kept across execve) and runs argv.
MDWE_EXEC = f"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_MDWE) failed")
if libc.prctl({PR_GET_MDWE}, 0, 0, 0, 0) != {PR_MDWE_REFUSE_EXEC_GAIN}:
    sys.exit("PR_GET_MDWE does not report the setting")
os.execv(sys.argv[1], sys.argv[1:])
"""


def datagrams_until(sock, pattern, collected):
    """
    Receive datagrams on C{sock} into C{collected} until one matches
    C{pattern} (a regular expression) or the deadline passes.

    @return: the matching datagram.
    """
    deadline = time.monotonic() + DEADLINE_S
    for datagram in collected:
        if re.search(pattern, datagram):
            return datagram
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            datagram = sock.recv(4096).decode("utf-8")
        except socket.timeout:
            break
        collected.append(datagram)
        if re.search(pattern, datagram):
            return datagram
    raise AssertionError(f"no datagram matching {pattern!r} in {collected!r}")


class WiredNodeTests(SynchronousTestCase):
    """
    The operations layer in a real C{twistd -n p2pchat} process, once
    C{NodeService} uses it (issue 6): these tests describe the wiring.
    """


    def start(self, *args, env=None, data_dir=None):
        data_dir = data_dir or os.path.abspath(self.mktemp())
        process = OutputProcess(
            twistd_command() + [
                "-n", "--pidfile=", "p2pchat", "--name", "ops", "--data-dir", data_dir,
                "--no-stdio", "--port", "0", "--console", "tcp:0:interface=127.0.0.1", *args,
            ],
            env=env or environment(),
        )
        self.addCleanup(process.stop, signal.SIGKILL)
        return process

    def test_notify_lifecycle(self):
        """
        Under C{$NOTIFY_SOCKET}, the node sends C{READY=1} once it listens,
        a C{STATUS=} naming peers and messages, C{WATCHDOG=1} every half
        C{$WATCHDOG_USEC}, and C{STOPPING=1} on SIGTERM, after which it
        exits 0.
        """
        sock, value = receiver(self, os.path.join(short_temp_dir(self), "notify"))
        process = self.start(env=environment(NOTIFY_SOCKET=value, WATCHDOG_USEC="1000000"))
        collected = []
        datagrams_until(sock, r"(^|\n)READY=1(\n|$)", collected)
        process.wait_for(rb"started: peers on")
        status = datagrams_until(sock, r"(^|\n)STATUS=.*peer.*message", collected)
        self.assertNotIn("\n", status.split("STATUS=", 1)[1])
        datagrams_until(sock, r"^WATCHDOG=1$", collected)
        datagrams_until(sock, r"^WATCHDOG=1$", [])
        process.process.send_signal(signal.SIGTERM)
        datagrams_until(sock, r"(^|\n)STOPPING=1(\n|$)", collected)
        # stop() kills (status -9) after its generous deadline: exiting 0 is
        # the check, not how fast.
        self.assertEqual(process.stop(), 0)

    def test_second_node_on_one_data_dir(self):
        """
        A second node started on the data dir of a running one exits 1
        with one line naming the dir and the running node's pid; the
        first keeps running.
        """
        data_dir = os.path.abspath(self.mktemp())
        first = self.start(data_dir=data_dir)
        first.wait_for(rb"started: peers on")
        second = self.start(data_dir=data_dir)
        second.wait_for(rb"cannot start: .* another --data-dir")
        self.assertEqual(second.process.wait(DEADLINE_S), 1)
        self.assertIn(
            f"p2pchat cannot start: data dir {data_dir} is in use by another p2pchat "
            f"node (pid {first.process.pid}); stop that node or give this one another "
            "--data-dir",
            second.output.decode(),
        )
        self.assertIsNone(first.process.poll())
        self.assertEqual(first.stop(), 0)

    def test_wrong_notify_socket(self):
        """
        A C{$NOTIFY_SOCKET} that is not a socket stops the start with one
        line naming it and exit status 1.
        """
        missing = os.path.join(short_temp_dir(self), "missing")
        process = self.start(env=environment(NOTIFY_SOCKET=missing))
        deadline = time.monotonic() + DEADLINE_S
        while process.process.poll() is None and time.monotonic() < deadline:
            process._read(0.1)
        self.assertEqual(process.stop(), 1)
        output = process.output.decode()
        self.assertIn(f"NOTIFY_SOCKET={missing}", output)
        self.assertNotIn("Traceback", output)

    def test_log_format_json(self):
        """
        C{--log-format json} makes every line on standard output a JSON
        event, from twistd's first line on.
        """
        process = self.start("--log-format", "json")
        process.wait_for(rb"started: peers on")
        self.assertEqual(process.stop(), 0)
        messages = [record["message"] for record in json_lines(process.output)]
        self.assertTrue(
            any(m.startswith("p2pchat node ops (")
                and m.endswith(f"; p2pchat {p2pchat.__version__}, protocol {PROTOCOL_VERSION}")
                for m in messages),
            messages,
        )

    def test_metrics_endpoint(self):
        """
        C{--metrics PORT} serves the node's metrics at C{/metrics} on
        127.0.0.1.
        """
        from urllib.request import urlopen

        port = free_port()
        process = self.start("--metrics", str(port))
        process.wait_for(rb"started: peers on")
        with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=DEADLINE_S) as response:
            text = response.read().decode()
        for name in ("p2pchat_entries_stored_total", "p2pchat_links", "p2pchat_peers",
                     "p2pchat_reactor_lag_seconds", "p2pchat_received_bytes_total",
                     "p2pchat_longest_reactor_turn_seconds"):
            self.assertIn(name, text)
        self.assertEqual(process.stop(), 0)

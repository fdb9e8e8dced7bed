# -*- test-case-name: tests.unit.test_metrics,tests.integration.test_ops -*-
"""
Prometheus metrics of one node, served at C{/metrics} when C{--metrics
ENDPOINT} is given.

L{Metrics} keeps its metrics in a private C{CollectorRegistry}, never
prometheus_client's global one, so several nodes (or tests) in one process
do not collide.  The node reports events through plain methods
(L{Metrics.entry_stored}, L{Metrics.bytes_in}, ...); levels that the node
already knows (entries held, links, peers by state) can instead be read at
each scrape from a callable given to L{Metrics.collect_from}.

L{metrics_resource} renders the registry in the reactor thread: rendering a
few dozen samples takes microseconds, and it lets the scrape read the
node's state without locks.  (prometheus_client's own
C{prometheus_client.twisted.MetricsResource} runs the WSGI exposition app in
the reactor's thread pool and imports the global reactor.)
"""

import math
from typing import Callable, Mapping, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import choose_encoder
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import IResource, Resource
from twisted.web.server import Site

LAG_INTERVAL_S = 1.0
PEER_STATES = ("alive", "suspect", "dead", "left")

StatusSource = Callable[[], Mapping[str, object]]


class Metrics:
    """
    The metrics of one node.

    Counters only go up; gauges are levels set by the node (or read at
    scrape time through L{collect_from}).

    @ivar registry: the private registry holding every metric.
    """

    log = Logger()

    def __init__(self, namespace: str = "p2pchat") -> None:
        """
        @param namespace: the prefix of every metric name.
        """
        self.registry = CollectorRegistry()
        registry = self.registry
        self._entries_stored = Counter(
            "entries_stored", "Entries committed to the local store (own and received).",
            namespace=namespace, registry=registry,
        )
        self._entries_relayed = Counter(
            "entries_relayed", "Entries sent on to peer links (one per entry per link).",
            namespace=namespace, registry=registry,
        )
        self._entries_rejected = Counter(
            "entries_rejected", "Entries refused, by reason.",
            ["reason"], namespace=namespace, registry=registry,
        )
        self._entries_held = Gauge(
            "entries_held", "Entries in the local store.",
            namespace=namespace, registry=registry,
        )
        self._peers = Gauge(
            "peers", "Members by membership state (alive, suspect, dead, left).",
            ["state"], namespace=namespace, registry=registry,
        )
        self._links = Gauge(
            "links", "Open peer links (after the hello exchange).",
            namespace=namespace, registry=registry,
        )
        self._replication_lag = Gauge(
            "replication_lag_entries",
            "Entries known to exist at peers but not yet held here.",
            namespace=namespace, registry=registry,
        )
        self._bytes_in = Counter(
            "received_bytes", "Bytes received on peer links.",
            namespace=namespace, registry=registry,
        )
        self._bytes_out = Counter(
            "sent_bytes", "Bytes sent on peer links.",
            namespace=namespace, registry=registry,
        )
        self._reactor_lag = Gauge(
            "reactor_lag_seconds",
            "How late the last once-a-second reactor timer ran.",
            namespace=namespace, registry=registry,
        )
        self._longest_turn = Gauge(
            "longest_reactor_turn_seconds",
            "The longest the reactor thread was kept from its timers since start "
            "(see p2pchat.ops.stall).",
            namespace=namespace, registry=registry,
        )
        for state in PEER_STATES:
            self._peers.labels(state=state).set(0)
        self._peer_states = set(PEER_STATES)
        self._sources: list = []
        self._lag_call: Optional[LoopingCall] = None
        self._lag_clock: Optional[IReactorTime] = None
        self._lag_start = 0.0
        self._lag_interval_s = LAG_INTERVAL_S
        self._lag_due = 0.0

    # Events

    def entry_stored(self, count: int = 1) -> None:
        """
        Count C{count} entries committed to the store.
        """
        self._entries_stored.inc(count)

    def entry_relayed(self, count: int = 1) -> None:
        """
        Count C{count} entry frames sent on to peer links.
        """
        self._entries_relayed.inc(count)

    def entry_rejected(self, reason: str, count: int = 1) -> None:
        """
        Count C{count} entries refused for C{reason}.

        @param reason: a short fixed word such as C{invalid_signature},
            C{fork} or C{store_failed} -- not a free-text message, since
            every distinct reason becomes its own time series.
        """
        self._entries_rejected.labels(reason=reason).inc(count)

    def bytes_in(self, count: int) -> None:
        """
        Count C{count} bytes received on a peer link.
        """
        self._bytes_in.inc(count)

    def bytes_out(self, count: int) -> None:
        """
        Count C{count} bytes sent on a peer link.
        """
        self._bytes_out.inc(count)

    # Levels

    def set_entries_held(self, count: int) -> None:
        """
        Set the number of entries in the store.
        """
        self._entries_held.set(count)

    def set_links(self, count: int) -> None:
        """
        Set the number of open peer links.
        """
        self._links.set(count)

    def set_peer_states(self, counts: Mapping[str, int]) -> None:
        """
        Set how many known peers are in each state.  A state seen before
        but missing from C{counts} drops to 0, so a series never sticks at
        a stale value.

        @param counts: members by state, e.g. C{{"alive": 2, "dead": 1}}.
        """
        for state in self._peer_states - set(counts):
            self._peers.labels(state=state).set(0)
        for state, count in counts.items():
            self._peers.labels(state=state).set(count)
            self._peer_states.add(state)

    def set_replication_lag(self, entries: int) -> None:
        """
        Set the replication lag: the number of entries known to exist at
        peers (from their summaries, see L{p2pchat.log.progress}) but not
        yet held here.  0 when in sync.
        """
        self._replication_lag.set(max(0, entries))

    # Scrape-time collection

    def collect_from(self, source: StatusSource) -> None:
        """
        Read levels from C{source} at every scrape (in the reactor thread,
        just before rendering).

        @param source: returns a mapping with any of the keys C{messages}
            (entries held), C{links}, C{peer_states} (a mapping of state
            to count), C{replication_lag} and C{longest_reactor_turn_s};
            C{ChatNode.metrics_status} fits.
            Unknown keys are ignored.
        """
        self._sources.append(source)

    def refresh(self) -> None:
        """
        Read every L{collect_from} source now.  A source that raises is
        logged and skipped: a broken scrape must not stop the node.
        """
        for source in self._sources:
            try:
                status = source()
            except Exception:
                self.log.failure("cannot read metrics from {source!r}", source=source)
                continue
            if "messages" in status:
                self.set_entries_held(int(status["messages"]))
            if "links" in status:
                self.set_links(int(status["links"]))
            if "peer_states" in status:
                self.set_peer_states(status["peer_states"])
            if "replication_lag" in status:
                self.set_replication_lag(int(status["replication_lag"]))
            if "longest_reactor_turn_s" in status:
                self._longest_turn.set(float(status["longest_reactor_turn_s"]))

    # Reactor lag

    def start_lag_monitor(
        self, clock: IReactorTime, interval_s: float = LAG_INTERVAL_S
    ) -> None:
        """
        Measure reactor lag: run a timer every C{interval_s} seconds on
        C{clock} and record how much later than due it ran.  A reactor
        blocked for 3 s shows a lag of about 3 s at the next tick.
        """
        self.stop_lag_monitor()
        self._lag_clock = clock
        self._lag_interval_s = interval_s
        self._lag_start = clock.seconds()
        self._lag_due = self._lag_start + interval_s
        self._lag_call = LoopingCall(self._lag_tick)
        self._lag_call.clock = clock
        self._lag_call.start(interval_s, now=False)

    def _lag_tick(self) -> None:
        """
        Record how late this tick ran, and when the next one is due: like
        L{LoopingCall}, at the first multiple of the interval (counted from
        the start) after now.
        """
        now = self._lag_clock.seconds()
        self._reactor_lag.set(max(0.0, now - self._lag_due))
        intervals = math.floor((now - self._lag_start) / self._lag_interval_s) + 1
        self._lag_due = self._lag_start + intervals * self._lag_interval_s

    def stop_lag_monitor(self) -> None:
        """
        Stop measuring reactor lag (safe to call when not running).
        """
        if self._lag_call is not None and self._lag_call.running:
            self._lag_call.stop()
        self._lag_call = None

    def render(self, accept: str = "") -> "tuple[bytes, str]":
        """
        Refresh and render every metric.

        @param accept: the scraper's C{Accept} header (OpenMetrics or the
            Prometheus text format).
        @return: the body and its content type.
        """
        self.refresh()
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class MetricsPage(Resource):
    """
    The C{/metrics} page: L{Metrics.render} for every GET.
    """

    isLeaf = True

    def __init__(self, metrics: Metrics):
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request) -> bytes:
        """
        @return: the metrics in the format the C{Accept} header asks for.
        """
        accept = request.getHeader(b"accept") or b""
        body, content_type = self.metrics.render(accept.decode("latin-1"))
        request.setHeader(b"content-type", content_type.encode("ascii"))
        return body

    render_HEAD = render_GET


def metrics_resource(metrics: Metrics) -> IResource:
    """
    @return: a resource tree serving C{metrics} at C{/metrics} (and 404
        elsewhere).
    """
    root = Resource()
    root.putChild(b"metrics", MetricsPage(metrics))
    return root


class _QuietSite(Site):
    """
    A L{Site} that writes no access log line per request: a scraper calls
    every few seconds, and those lines would drown the node's own log.
    """

    noisy = False

    def log(self, request) -> None:
        """
        Write nothing.
        """


def metrics_site(metrics: Metrics) -> Site:
    """
    @return: an HTTP site for L{metrics_resource}, without access log;
        listen it on the C{--metrics} endpoint.
    """
    return _QuietSite(metrics_resource(metrics))

"""
The chat node's logic: authoring, ingesting, storing, showing and relaying
entries, and the table of known peers.

L{ChatNode} is a plain object.  It does no socket I/O of its own: peer links
(L{p2pchat.mesh.peer.PeerProtocol}) and consoles report to it and it answers
through their C{send_frame} / C{show} methods; time comes from an injected
clock; the store is injected and opened by the service.
"""

import base64
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Set

from nacl.exceptions import CryptoError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from p2pchat.addresses import AddressError, parse_peer_address
from p2pchat.config import PeerAddress
from p2pchat.log.admission import FeedAdmission
from p2pchat.log.entry import (
    MAX_INTEGER,
    Entry,
    InvalidEntry,
    UnverifiedEntry,
    create_entry,
    parse_entry,
)
from p2pchat.log.identity import Identity, is_node_id, seal_to, short_id
from p2pchat.log.replication import FRAME_TYPES as REPLICATION_FRAMES
from p2pchat.log.replication import IReplicationOutput, ReplicationConfig, Replicator, wanted
from p2pchat.log.store.core import Store, StoreError
from p2pchat.log.streaming import EntryStreamer
from p2pchat.log.verifier import InlineVerifier
from p2pchat.mesh import wire
from p2pchat.mesh.membership import IMembershipOutput, Member, Membership, MembershipConfig
from p2pchat.mesh.peer import IPeerHandler, PeerProtocol
from p2pchat.mesh.wire import FrameError
from p2pchat.ops.metrics import Metrics
from p2pchat.ops.stall import StallMonitor
from p2pchat.ratelimit import TokenBucket
from p2pchat.safe import LogLimiter, printable
from p2pchat.trust import binding, tls
from p2pchat.trust.attest import Attestations

MAX_BATCH_ENTRIES = 1000
MAX_LINKS = 64
# Peer records kept in memory: the linked ones always, and the most
# recently heard others up to this many (ids are free, so an open network
# can hold any number of authors; their names stay in the store).
MAX_PEER_RECORDS = 65_536
MAX_LAMPORT_LEAD = 1_000_000
PENALTY_S = 60.0
# How long entries marked sync still count as catch-up after this node's
# summary round with a link ended.
SYNC_GRACE_S = 5.0
MAX_PENALTY_S = 3600.0
# Membership changes logged before they are rate-limited (see
# _MembershipOutput.member_changed).
MEMBER_LOG_BURST = 100


class UnknownPeer(LookupError):
    """
    No known peer matches a name or id; C{str(error)} says so.
    """


class AmbiguousPeer(LookupError):
    """
    Several known peers match a name; C{str(error)} lists their short ids.
    """


@dataclass
class PeerRecord:
    """
    What this node knows about another node.

    @ivar node_id: the peer's id.
    @ivar name: its latest known display name.
    @ivar address: the address it advertised, or C{None}.
    @ivar links: how many open links this node has to it.
    @ivar last_seen: clock time it was last heard from (a hello or one of
        its own entries).
    @ivar name_lamport: the Lamport time of the entry C{name} came from (a
        late, older entry must not bring back an old name).
    """

    node_id: str
    name: str
    address: Optional[str]
    links: int = 0
    last_seen: float = 0.0
    name_lamport: int = 0

    @property
    def state(self) -> str:
        """
        C{alive} while linked; C{unlinked} otherwise (it is known through
        earlier links or its entries).
        """
        return "alive" if self.links else "unlinked"


@dataclass(frozen=True)
class Message:
    """
    A log entry as one node shows it to its user.

    @ivar entry: the entry.
    @ivar text: the plain text (decrypted, for a direct message).
    @ivar direct: whether it is a direct message.
    @ivar recipient: for a direct message, the recipient's id.
    """

    entry: Entry
    text: str
    direct: bool
    recipient: Optional[str] = None


@implementer(IPeerHandler, IReplicationOutput)
class ChatNode:
    """
    One p2pchat node.

    @ivar identity: this node's L{Identity}.
    @ivar name: this node's display name.
    @ivar links: the accepted peer links.
    @ivar peers: known peers by id.
    @ivar forks: how many forked entries were detected (and not stored);
        each is logged with its author and seq.
    @ivar replicator: decides which links carry which entries.
    @ivar entries_received: entry frames received from peers.
    @ivar duplicates_received: of those, entries already held.
    """

    log = Logger()

    def __init__(
        self,
        identity: Identity,
        store: Store,
        name: str,
        clock: IReactorTime,
        advertised_address: Optional[str],
        port: Optional[int] = None,
        connect: Optional[Callable[[PeerAddress], bool]] = None,
        wall_clock: Callable[[], float] = time.time,
        replication: Optional[ReplicationConfig] = None,
        metrics: Optional[Metrics] = None,
        membership: Optional[MembershipConfig] = None,
        dial: Optional[Callable[[PeerAddress], None]] = None,
        attestations: Optional[Attestations] = None,
        attest: Optional[Callable[[str, str], dict]] = None,
        verifier: Callable[[Callable], object] = InlineVerifier,
    ):
        self.identity = identity
        self.name = name
        self.port = port
        self._store = store
        self._clock = clock
        self._wall_clock = wall_clock
        self._connect = connect
        self._dial = dial
        self.links: Set[PeerProtocol] = set()
        self.peers: Dict[str, PeerRecord] = OrderedDict()
        self.forks = 0
        self._views: Set[object] = set()
        self._batch: List[Entry] = []
        self._batch_ids: Set[str] = set()
        self._batch_sources: Dict[str, tuple] = {}
        self._flush_call = None
        self.verifier = verifier(self._verified)
        self.longest_store_call_s = 0.0
        self.stalls = StallMonitor(clock)
        self.stopping = False
        self.entries_received = 0
        self.duplicates_received = 0
        self.metrics = metrics or Metrics()
        self.on_change: Callable[[], None] = lambda: None
        self._closed_traffic = [0, 0]
        self._counted_traffic = [0, 0]
        replication = replication or ReplicationConfig()
        self.replicator = Replicator(clock, self, replication)
        self.membership = Membership(
            identity.node_id,
            name,
            advertised_address,
            clock,
            _MembershipOutput(self, clock),
            membership or MembershipConfig(),
            incarnation=int(wall_clock()),
            signer=identity.sign,
        )
        self._streamers: Dict[PeerProtocol, EntryStreamer] = {}
        self._ticker: Optional[LoopingCall] = None
        self._replication = replication
        self._blocked: Set[str] = set(store.blocked())
        self.attestations = attestations
        self._attest = attest
        if attestations is not None:
            for entry in store.attestations():
                attestations.learn(entry.author, entry.body)
        self._penalties: Dict[str, tuple] = {}
        self.admission = FeedAdmission(
            clock, lambda author: self._store.max_seq(author) > 0, lambda: self.attestations
        )
        self._admission_log = LogLimiter(clock)
        head = store.head(identity.node_id)
        self._own_seq, self._own_head = head if head else (0, None)
        self._lamport = store.max_lamport(at_most=self._plausible_lamport())

    @property
    def node_id(self) -> str:
        """
        This node's id.
        """
        return self.identity.node_id

    @property
    def advertised_address(self) -> Optional[str]:
        """
        The C{host:port} this node tells peers to reach it at, or C{None}.
        """
        return self.membership.address

    @advertised_address.setter
    def advertised_address(self, address: Optional[str]) -> None:
        self.membership.address = address

    def start(self) -> None:
        """
        Start the periodic work: membership gossip and failure detection,
        replication announcements, grafts and anti-entropy, every
        C{announce_interval_s}.
        """
        if self._attest is not None and (
            self.attestations.names.get(self.node_id) != self.name
        ):
            # Post this node's certificate once (again after a new one), so
            # nodes that never link to it can check its name.
            self._author("cert", self._attest(self.node_id, self.name))
        self.stalls.start()
        self._ticker = LoopingCall(self.tick)
        self._ticker.clock = self._clock
        self._ticker.start(self._replication.announce_interval_s, now=False)

    def tick(self) -> None:
        """
        One round of periodic work.
        """
        for link in self.links:
            if link.held:
                # We are not reading it: its silence is ours, not its.
                self.membership.heard_from(link.remote_id)
        self.membership.tick()
        self.replicator.tick()
        if self._penalties:
            now = self._clock.seconds()
            # Keep the strike count for an hour after a penalty ends, so a
            # repeat offender's back-off still grows; then forget it.
            self._penalties = {
                node_id: (until, strikes)
                for node_id, (until, strikes) in self._penalties.items()
                if now < until + MAX_PENALTY_S
            }

    # Consoles

    def attach(self, view) -> None:
        """
        Start showing new messages on C{view} (anything with C{show(message:
        Message)} and C{alert(text: str)}).
        """
        self._views.add(view)

    def detach(self, view) -> None:
        """
        Stop showing messages on C{view}.
        """
        self._views.discard(view)

    # The peer handler interface

    def local_hello(self) -> dict:
        return wire.hello(self.node_id, self.name, self.advertised_address, len(self.links))

    def sign_binding(self, material: bytes) -> str:
        return binding.sign_binding(self.identity, material)

    def link_misbehaved(self, link: PeerProtocol) -> None:
        """
        Refuse the peer's id for L{PENALTY_S}, doubling at each repeat up
        to L{MAX_PENALTY_S}: a peer that keeps sending invalid input is
        backed off, not re-admitted at once.  Only on TLS links, where the
        hello's id is proven (see L{p2pchat.trust.binding.check_hello}): on plain
        TCP an id is a claim, and penalising it would let anyone get
        another node refused.
        """
        if tls.tls_connection(link.transport) is None:
            return
        _, strikes = self._penalties.get(link.remote_id, (0.0, 0))
        penalty_s = min(PENALTY_S * 2**strikes, MAX_PENALTY_S)
        self._penalties[link.remote_id] = (self._clock.seconds() + penalty_s, strikes + 1)
        self.log.warn(
            "refusing {peer} for {seconds:.0f} s after invalid input",
            peer=link.describe(),
            seconds=penalty_s,
        )

    def link_up(self, link: PeerProtocol) -> Optional[str]:
        if self.stopping:
            return "node is stopping"
        if link.remote_id == self.node_id:
            return "connected to self"
        until = self._penalties.get(link.remote_id, (0.0, 0))[0]
        if self._clock.seconds() < until:
            return f"refused for {until - self._clock.seconds():.0f} s more after invalid input"
        if len(self.links) >= MAX_LINKS:
            return f"too many links (at most {MAX_LINKS})"
        config = self.membership.config
        if (
            not link.outbound
            and link.remote_links > 0
            and len(self.links) >= config.max_links + config.link_slack
        ):
            # HyParView's rule: a full node takes no new neighbour that
            # already has links (it would only have to drop another one),
            # but always takes a joiner, which has none.
            return "this node has all the links it wants; try another member"
        record = self._record(link.remote_id, link.remote_name)
        if record.name_lamport == 0:
            # A hello's name proves nothing: it never replaces a name from
            # the node's own signed entries.
            record.name = link.remote_name
        if link.remote_address is not None:
            record.address = link.remote_address
        record.links += 1
        record.last_seen = self._clock.seconds()
        self.links.add(link)
        streamer = EntryStreamer(
            link, self._store.entries_after, self._clock, get=self._store.get,
            feeds_page=self._store.feeds_page, wanted=wanted,
        )
        self._streamers[link] = streamer
        link.set_producer(streamer)
        self.replicator.link_up(link)
        self.membership.link_up(
            link.remote_id, link.remote_name, link.remote_address, link.outbound
        )
        self.on_change()
        return None

    def link_down(self, link: PeerProtocol) -> None:
        self.links.discard(link)
        self.replicator.link_down(link)
        self.membership.link_down(link.remote_id)
        streamer = self._streamers.pop(link, None)
        if streamer is not None:
            streamer.stopProducing()
        record = self.peers.get(link.remote_id)
        if record is not None:
            record.links = max(0, record.links - 1)
        self._closed_traffic[0] += link.bytes_in
        self._closed_traffic[1] += link.bytes_out
        self.on_change()

    def rx_frame(self, link: PeerProtocol, frame: dict) -> None:
        self.membership.heard_from(link.remote_id)
        frame_type = frame["type"]
        if frame_type == "entry":
            self.rx_entry(frame["entry"], link, live=not frame.get("sync", False))
        elif frame_type in REPLICATION_FRAMES:
            try:
                self.replicator.rx_frame(link, frame)
            except FrameError as e:
                link.close(f"bad frame: {e}", misbehaved=True)
        elif frame_type in Membership.frame_types:
            try:
                self.membership.rx_frame(link.remote_id, frame)
            except FrameError as e:
                link.close(f"bad frame: {e}", misbehaved=True)

    # The replication output interface

    def send(self, link: PeerProtocol, frame: dict) -> None:
        link.send_frame(frame)

    def solicit(self, link: PeerProtocol) -> None:
        link.expect_sync()

    def settle(self, link: PeerProtocol) -> None:
        link.expect_sync(SYNC_GRACE_S)

    def when_ready(self, link: PeerProtocol, action: Callable[[], None]) -> None:
        streamer = self._streamers.get(link)
        if streamer is not None:
            streamer.when_ready(action)

    def answer(self, link: PeerProtocol, after, upto, vv: dict, done) -> None:
        self.flush()
        streamer = self._streamers.get(link)
        if streamer is not None:
            streamer.answer(after, upto, vv, done)

    def graft(self, link: PeerProtocol, entry_ids: List[str]) -> int:
        self.flush()
        streamer = self._streamers.get(link)
        return streamer.graft(entry_ids) if streamer is not None else 0

    def holds(self, entry_id: str) -> bool:
        return entry_id in self._batch_ids or self._store.has(entry_id)

    def feeds_page(self, after: Optional[str], limit: int) -> List[tuple]:
        self.flush()
        return self._timed(self._store.feeds_page, after, limit)

    def _record(self, node_id: str, name: str) -> PeerRecord:
        """
        @return: the record of C{node_id}, made if needed, and now the most
            recently used one.  Beyond L{MAX_PEER_RECORDS} the least
            recently used unlinked record is forgotten, so the table costs
            at most that many records (about 300 bytes each) whatever
            number of authors peers invent.
        """
        peers = self.peers
        record = peers.get(node_id)
        if record is not None:
            peers.move_to_end(node_id)
            return record
        record = peers[node_id] = PeerRecord(node_id, name, None)
        if len(peers) > MAX_PEER_RECORDS:
            for old_id, old in peers.items():
                if not old.links:
                    del peers[old_id]
                    break
        return record

    # Entries in

    def rx_entry(
        self, wire_entry: dict, source: Optional[PeerProtocol], live: bool = True
    ) -> bool:
        """
        Check an entry received from C{source}; C{self.verifier} checks its
        signature and calls L{_verified}.  An entry whose id is held, queued
        or being verified is dropped unverified (the id hashes the whole
        signed entry).  A I{live} copy of an entry already held tells the
        replicator that the link is redundant for live delivery.

        @return: whether it was valid and new (or taken for verification).
        """
        if self.stopping:
            return False
        if source is not None:
            self.entries_received += 1
        try:
            candidate = parse_entry(wire_entry)
            known = self._known(candidate)
            if not known and source is not None and not self._admit_feed(
                source, candidate.author, live
            ):
                return False
        except InvalidEntry as e:
            return self._verified(None, None, e, source, live)
        if known:
            if source is not None:
                self.duplicates_received += 1
                if live:
                    self.replicator.entry_duplicate(source)
            return False
        return self.verifier.submit(candidate, source, live)

    def _verified(self, candidate, entry: Optional[Entry], error, source, live: bool) -> bool:
        """
        Queue a verified C{entry} for storing, or close the link of one
        whose L{InvalidEntry} is C{error}.  Called in arrival order.
        """
        if self.stopping:
            return False
        if error is not None:
            self.metrics.entry_rejected("invalid")
            if source is not None:
                source.close(f"rejected entry: {error}", misbehaved=True)
            else:
                self.log.warn("rejected entry: {reason}", reason=str(error))
            return False
        refusal = None if source is None else self.admission.refusal(entry)
        if refusal is not None:
            self.metrics.entry_rejected("uncertified")
            self._admission_log.log(
                "uncertified", self.log.info,
                "not storing entry {id} of {author} from {peer}: {reason}; it comes "
                "again once the certificate is known",
                id=entry.id[:12], author=short_id(entry.author),
                peer=printable(source.describe()), reason=refusal,
            )
            return False
        self._queue(entry, source, live)
        return True

    def _admit_feed(self, source: PeerProtocol, author: str, live: bool) -> bool:
        """
        A new author costs its link a token before it costs us CPU; with
        none left the entry is dropped (it comes again through
        anti-entropy), and the link keeps being read.

        @return: whether to go on with the entry.
        """
        solicited = not live and source.catching_up
        if self.admission.admit(author, source, solicited):
            return True
        self.metrics.entry_rejected("new_feed_budget")
        self._admission_log.log(
            "new-feeds", self.log.info,
            "dropping entries of new authors from {peer}: more than its budget "
            "({rate}/s); they come again through anti-entropy",
            peer=printable(source.describe()), rate=self.admission.rate_per_s,
        )
        return False

    def _known(self, candidate: UnverifiedEntry) -> bool:
        """
        @return: whether an entry with the id of C{candidate} is stored
            or queued.  One above its author's highest stored seq is not
            stored, which the store answers without a query.
        """
        if candidate.id in self._batch_ids or self.verifier.verifying(candidate.id):
            return True
        if candidate.seq > self._store.max_seq(candidate.author):
            return False
        return self._store.has(candidate.id)

    def _queue(self, entry: Entry, source: Optional[PeerProtocol], live: bool = True) -> None:
        self._batch.append(entry)
        self._batch_ids.add(entry.id)
        self._batch_sources[entry.id] = (source, live)
        if len(self._batch) >= MAX_BATCH_ENTRIES:
            self.flush()
        elif self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self.flush)

    def flush(self) -> None:
        """
        Store every queued entry in one transaction, then show and relay
        the ones that were new.  Nothing is shown or relayed before it is
        committed.
        """
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        batch, sources = self._batch, self._batch_sources
        self._batch, self._batch_ids, self._batch_sources = [], set(), {}
        if not batch:
            return
        try:
            result = self._timed(self._store.add_entries, batch)
        except StoreError as e:
            self._store_failed(batch, e)
            return
        self.metrics.entry_stored(len(result.added))
        for entry, existing_id in result.forks:
            self.metrics.entry_rejected("fork")
            self.forks += 1
            self.log.warn(
                "fork detected in the feed of {author} at seq {seq}: "
                "entries {new} and {old}; keeping the first",
                author=f"{entry.name} ({short_id(entry.author)})",
                seq=entry.seq,
                new=entry.id[:12],
                old=existing_id[:12],
            )
        for entry, reason in result.rejected:
            self.metrics.entry_rejected("chain")
            self.log.warn(
                "rejected entry {id} of {author}: {reason}",
                id=entry.id[:12],
                author=f"{entry.name} ({short_id(entry.author)})",
                reason=reason,
            )
        for entry in result.added:
            self._follow_clock(entry)
            if entry.kind == "cert" and self.attestations is not None:
                reason = self.attestations.learn(entry.author, entry.body)
                if reason is not None:
                    self.log.warn(
                        "not believing the name attestation of {author}: {reason}",
                        author=short_id(entry.author),
                        reason=reason,
                    )
            if entry.author != self.node_id:
                self._heard_from(entry)
            elif entry.seq > self._own_seq:
                self._own_seq, self._own_head = entry.seq, entry.id
            message = self.message(entry)
            if message is not None:
                for view in list(self._views):
                    view.show(message)
            source, live = sources[entry.id]
            self._relay(entry, source, live)
            if source is not None and result.contiguous[entry.author] < entry.seq:
                self.replicator.gap_seen(source)
        if result.added:
            self.on_change()

    def _heard_from(self, entry: Entry) -> None:
        """
        Note a committed entry of another node in the peer table: it is
        known (so C{/msg} can reach it), and its name is the one on its
        newest entry.
        """
        record = self._record(entry.author, entry.name)
        record.last_seen = self._clock.seconds()
        if entry.lamport >= record.name_lamport:
            record.name, record.name_lamport = entry.name, entry.lamport

    def _plausible_lamport(self) -> int:
        """
        @return: the highest Lamport time this node's clock will follow.

        An honest entry with Lamport time L implies a causal chain of L
        entries, so L cannot be far above the number of entries in the
        network.  Holding C{count} entries, a node follows times up to
        C{count + MAX_LAMPORT_LEAD}; one signed entry claiming a time
        near the maximum cannot drag every later post up there (which
        would freeze ordering, and once made every post invalid).
        """
        return self._store.count() + MAX_LAMPORT_LEAD

    def _follow_clock(self, entry: Entry) -> None:
        """
        Advance this node's Lamport clock past C{entry} if its time is
        plausible (see L{_plausible_lamport}).  An implausible entry is
        still stored, shown and relayed, so every node converges; it just
        sorts late.
        """
        if entry.lamport <= self._lamport:
            return
        if entry.lamport > self._plausible_lamport():
            self.log.warn(
                "entry {id} of {author} claims Lamport time {claimed}, far ahead "
                "of the {count} entries held; not advancing our clock to it",
                id=entry.id[:12],
                author=f"{entry.name} ({short_id(entry.author)})",
                claimed=entry.lamport,
                count=self._store.count(),
            )
            return
        self._lamport = entry.lamport

    def _store_failed(self, batch: List[Entry], error: StoreError) -> None:
        """
        A batch could not be committed (a full disk, an I/O error): nothing
        of it was shown or relayed.  Say so once, and rewind this node's
        own feed to what is really stored so the next post chains onto it.
        """
        own = sum(1 for entry in batch if entry.author == self.node_id)
        self.metrics.entry_rejected("store_error", len(batch))
        self.log.critical(
            "store write failed, {count} entries not stored ({own} of ours): {error}",
            count=len(batch),
            own=own,
            error=str(error),
        )
        for view in list(self._views):
            view.alert(f"could not store {len(batch)} message(s), not sent: {error}")
        try:
            head = self._store.head(self.node_id)
        except StoreError:
            return
        self._own_seq, self._own_head = head if head else (0, None)

    def _timed(self, call: Callable, *args):
        """
        Run a store call, keeping the longest time one took (the longest
        the reactor was blocked by the store), for C{/status}.
        """
        started = time.perf_counter()
        try:
            return call(*args)
        finally:
            elapsed = time.perf_counter() - started
            self.longest_store_call_s = max(self.longest_store_call_s, elapsed)

    def _relay(self, entry: Entry, source: Optional[PeerProtocol], live: bool) -> None:
        """
        Push a committed entry in full on the replicator's eager links;
        the other links get it announced at the next tick (all of them,
        for an entry that arrived to catch this node up).
        """
        links = self.replicator.entry_added(entry.id, source, live)
        frame = None
        for link in links:
            streamer = self._streamers.get(link)
            if streamer is not None and streamer.paused:
                # The link's transport buffer is full (it paused our
                # producer): announce instead of adding the whole entry,
                # so a slow reader cannot make this node buffer without
                # bound; the peer grafts it when it catches up.
                self.replicator.announce(link, entry.id)
                continue
            frame = frame or wire.entry_frame(entry.to_wire())
            link.send_frame(frame)
            self.metrics.entry_relayed(1)

    # Entries out

    def _author(self, kind: str, body: dict) -> Entry:
        self._lamport = min(self._lamport + 1, MAX_INTEGER)
        entry = create_entry(
            self.identity,
            seq=self._own_seq + 1,
            prev=self._own_head,
            lamport=self._lamport,
            ts=int(self._wall_clock() * 1000),
            kind=kind,
            body=body,
        )
        self._own_seq, self._own_head = entry.seq, entry.id
        self._queue(entry, None)
        return entry

    def post(self, text: str) -> Entry:
        """
        Broadcast C{text} to everyone.

        @raise InvalidEntry: if the text is empty or too long.
        """
        return self._author("chat", {"name": self.name, "text": text})

    def send_direct(self, recipient: str, text: str) -> Entry:
        """
        Send C{text} to the node C{recipient} only (a name, short id or id).

        The text is sealed to the recipient (and, so the sender can read
        its own history, to the sender); relays store only ciphertext.

        @raise UnknownPeer: if no known peer matches.
        @raise AmbiguousPeer: if several known peers have that name.
        @raise InvalidEntry: if the text is empty or too long.
        """
        target = self.resolve(recipient)
        plaintext = text.encode("utf-8")
        if not text:
            raise InvalidEntry("message is empty")
        body = {
            "name": self.name,
            "to": target,
            "box": base64.b64encode(seal_to(target, plaintext)).decode("ascii"),
            "self_box": base64.b64encode(seal_to(self.node_id, plaintext)).decode("ascii"),
        }
        return self._author("dm", body)

    def resolve(self, who: str) -> str:
        """
        Find a peer's id from a full id, a short id (a unique prefix of at
        least 4 hex digits of a known id) or a display name.

        Ids win over names: nobody can capture messages meant for a short
        id by choosing that short id as a name.  A text that is one peer's
        short id and another peer's name is ambiguous.

        Names come only from signed sources: a member's own signed
        membership row, the name on its own signed entries, or (on TLS)
        its certificate.  A plain-TCP hello proves nothing and is never
        used, so nobody can take a name by saying it.

        @raise UnknownPeer: if nothing matches.
        @raise AmbiguousPeer: if several peers match.
        """
        if is_node_id(who):
            return who
        names = {
            node_id: record.name if record.name_lamport else ""
            for node_id, record in self.peers.items()
        }
        for member in self.membership.members():
            if member.signed:
                names[member.node_id] = member.name
            else:
                names.setdefault(member.node_id, "")
        if self.attestations is not None:
            # On a TLS network only certified names count; other known
            # nodes stay reachable by id.
            names = {node_id: "" for node_id in names}
            names.update(self.attestations.names)
            names.pop(self.node_id, None)
        by_id = []
        if len(who) >= 4 and all(c in "0123456789abcdef" for c in who.lower()):
            by_id = [n for n in names if n.startswith(who.lower())]
        by_name = [node_id for node_id, name in names.items() if name == who]
        matches = set(by_id) | set(by_name)
        if len(matches) == 1:
            return matches.pop()
        if len(matches) > 1:
            ids = ", ".join(sorted(short_id(node_id) for node_id in matches))
            raise AmbiguousPeer(f"several peers match {who}: {ids}; use a longer id")
        raise UnknownPeer(f"no known peer called {who}")

    def connect(self, address: PeerAddress) -> bool:
        """
        Open (and keep open) a link to C{address}.

        @return: C{False} if a link to C{address} is already kept.
        """
        if self._connect is None:
            raise RuntimeError("this node cannot open links")
        return self._connect(address) is not False

    def set_name(self, name: str) -> None:
        """
        Change this node's display name for new entries, new links and
        membership gossip.
        """
        if self.attestations is not None and name != self.name:
            raise InvalidEntry(
                "on a TLS network your name is the one in your certificate; not changed"
            )
        self.name = name
        self.membership.set_name(name)

    def set_hidden(self, hidden: bool) -> None:
        """
        Stop (or start again) advertising this node in membership gossip.
        It still reads and posts.
        """
        self.membership.set_hidden(hidden)

    def display_name(self, entry: Entry) -> str:
        """
        @return: the name to show for the author of C{entry}: on a TLS
            network the name in the author's verified certificate (the
            name the entry claims, with C{?}, when none is known yet);
            elsewhere the name the entry claims.
        """
        if self.attestations is None:
            return entry.name
        if entry.author == self.node_id:
            return self.name
        return self.attestations.names.get(entry.author) or f"{entry.name}?"

    def name_of(self, node_id: str) -> Optional[str]:
        """
        @return: the best name known for C{node_id}: certified (TLS), else
            the one in its signed membership row, else the one on its
            entries, else the one in its hello; or C{None}.
        """
        if self.attestations is not None and node_id in self.attestations.names:
            return self.attestations.names[node_id]
        member = self.membership.member(node_id)
        if member is not None and member.signed:
            return member.name
        record = self.peers.get(node_id)
        if record is not None:
            return record.name
        return member.name if member is not None else None

    def link_to(self, node_id: str) -> Optional[PeerProtocol]:
        """
        @return: an accepted link to C{node_id}, or C{None}.
        """
        for link in self.links:
            if link.remote_id == node_id:
                return link
        return None

    # Reading

    def message(self, entry: Entry) -> Optional[Message]:
        """
        @return: how this node shows C{entry}, or C{None} if it is a
            direct message for someone else (or one it cannot open).
        """
        if entry.author in self._blocked or entry.kind == "cert":
            return None
        if entry.kind == "chat":
            return Message(entry, entry.body["text"], direct=False)
        recipient = entry.body["to"]
        if entry.author == self.node_id:
            box = entry.body["self_box"]
        elif recipient == self.node_id:
            box = entry.body["box"]
        else:
            return None
        try:
            text = self.identity.unseal(base64.b64decode(box)).decode("utf-8")
        except (CryptoError, ValueError):
            self.log.warn(
                "cannot open direct message {id} from {author}",
                id=entry.id[:12],
                author=short_id(entry.author),
            )
            return None
        return Message(entry, text, direct=True, recipient=recipient)

    def history(self, limit: int) -> List[Message]:
        """
        @return: the last C{limit} messages this node can show, oldest
            first, in display order (Lamport time, then author id).
        """
        self.flush()
        entries = self._timed(self._store.history, limit, self.node_id, self._blocked)
        return [m for m in map(self.message, entries) if m is not None]

    def search(self, text: str, limit: int = 50) -> List[Message]:
        """
        @return: broadcast messages containing every word of C{text}.
        """
        self.flush()
        found = self._timed(self._store.search, text, limit)
        return [m for m in map(self.message, found) if m is not None]

    def status(self) -> Dict[str, object]:
        """
        Pending entries are committed first, so the answer includes
        everything this node has already accepted.

        @return: the node's status as ordered key/value pairs.
        """
        self.flush()
        return {
            "id": self.node_id,
            "name": self.name,
            "port": self.port if self.port is not None else "none",
            "messages": self._store.count(),
            "peers": self.membership.alive_count(),
            "links": len(self.links),
            "digest": self._store.digest(),
            "forks": self.forks,
            "blocked": len(self._blocked),
            "entries_received": self.entries_received,
            "duplicates_received": self.duplicates_received,
            "longest_reactor_turn_ms": round(self.stalls.longest_s * 1000, 1),
            "longest_store_call_ms": round(self.longest_store_call_s * 1000, 1),
        }

    def block(self, who: str) -> str:
        """
        Stop showing the messages of C{who} (a name or id) on this node.
        They are still stored and relayed, so other nodes converge.

        @return: the blocked id.
        """
        node_id = self.resolve(who)
        if node_id == self.node_id:
            raise UnknownPeer("you cannot block yourself")
        self._store.block(node_id)
        self._blocked.add(node_id)
        return node_id

    def unblock(self, who: str) -> str:
        """
        Show the messages of C{who} again.

        @return: the unblocked id.
        """
        node_id = self.resolve(who)
        self._store.unblock(node_id)
        self._blocked.discard(node_id)
        return node_id

    def blocked(self) -> List[str]:
        """
        @return: the blocked ids, sorted.
        """
        return sorted(self._blocked)

    def metrics_status(self) -> Dict[str, object]:
        """
        The levels Prometheus scrapes (cheap: no flush, no digest), and the
        traffic counters brought up to date.
        """
        live = [sum(link.bytes_in for link in self.links),
                sum(link.bytes_out for link in self.links)]
        totals = [closed + now for closed, now in zip(self._closed_traffic, live)]
        self.metrics.bytes_in(max(0, totals[0] - self._counted_traffic[0]))
        self.metrics.bytes_out(max(0, totals[1] - self._counted_traffic[1]))
        self._counted_traffic = totals
        states: Dict[str, int] = {}
        for member in self.membership.members():
            states[member.state] = states.get(member.state, 0) + 1
        return {
            "messages": self._store.count(),
            "links": len(self.links),
            "peer_states": states,
            "replication_lag": len(self.replicator.missing),
            "longest_reactor_turn_s": self.stalls.longest_s,
        }

    def stop(self) -> None:
        """
        Stop taking entries and links, commit what is queued, and say
        goodbye on every link.  The store can be closed afterwards.
        """
        self.stopping = True
        self.stalls.stop()
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        # Entries still being verified were never acknowledged: dropped.
        self.verifier.stop()
        self.flush()
        self.membership.leave()
        for link in list(self.links):
            link.leave()


@implementer(IMembershipOutput)
class _MembershipOutput:
    """
    Carries out what a node's L{Membership} asks for, over its links.
    """

    log = Logger()

    def __init__(self, node: ChatNode, clock: IReactorTime):
        self._node = node
        # A flood of fake members changes state by the thousand: the
        # first lines (refilled at 1/s) are logged, then one per kind of
        # change per 10 s with the count held back.
        self._lines = TokenBucket(1.0, MEMBER_LOG_BURST, clock)
        self._limiter = LogLimiter(clock)

    def send(self, peer_id: str, frame: dict) -> None:
        link = self._node.link_to(peer_id)
        if link is not None:
            link.send_frame(frame)

    def ready(self, peer_id: str) -> bool:
        link = self._node.link_to(peer_id)
        streamer = self._node._streamers.get(link) if link is not None else None
        return streamer is None or not streamer.paused

    def connect(self, address: str) -> None:
        if self._node._dial is None:
            return
        try:
            target = parse_peer_address(address)
        except AddressError as e:
            self.log.info(
                "not connecting to {address}: {reason}",
                address=printable(address), reason=printable(str(e)),
            )
            return
        self._node._dial(target)

    def disconnect(self, peer_id: str, reason: str) -> None:
        for link in [link for link in self._node.links if link.remote_id == peer_id]:
            self.log.info(
                "closing link with {peer}: {reason}",
                peer=printable(link.describe()), reason=printable(reason),
            )
            link.leave()

    def member_changed(self, member: Member, old_state: Optional[str]) -> None:
        who = f"{printable(member.name)} ({short_id(member.node_id)})"
        if self._lines.take():
            self.log.info(
                "member {who} is {state} (was {old})", who=who, state=member.state, old=old_state
            )
        else:
            # Kinds: a fixed set of state pairs (rows carry only known states).
            self._limiter.log(
                f"{old_state}>{member.state}", self.log.info,
                "member {who} is {state} (was {old})", who=who, state=member.state, old=old_state,
            )
        if old_state is not None and old_state != member.state:
            for view in list(self._node._views):
                view.notice(f"{who} is {member.state}")


# -*- test-case-name: tests.unit.test_peer -*-
"""
The hello handshake's parts that are not framing: what this node says in
its hello (signed with the TLS session on a TLS link), what a failed TLS
handshake is reported as, and the outcome a dialer waits on (which
versions it takes is L{wire.link_version}).
L{p2pchat.mesh.peer.PeerProtocol} runs the exchange.
"""

from typing import Any, Callable, Dict, Optional, Union

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from p2pchat.trust import binding, refusals


class HandshakeFailed(Exception):
    """
    The link closed, or the peer misbehaved, before the hello exchange
    finished.

    @ivar peer_id: the id the peer's hello gave, if one came.
    """

    def __init__(self, message: str, peer_id: Optional[str] = None):
        super().__init__(message)
        self.peer_id = peer_id


def signed_hello(handler, transport) -> Dict[str, Any]:
    """
    @param handler: the link's L{p2pchat.mesh.handler.IPeerHandler}.
    @return: the handler's hello, with the TLS session's exporter value
        signed in its C{bind} field on a TLS link.
    """
    hello = handler.local_hello()
    material = binding.binding_material(transport)
    if material is not None:
        hello[binding.BINDING_FIELD] = handler.sign_binding(material)
    return hello


def tls_failure_reason(failure: Failure) -> str:
    """
    @return: what OpenSSL said about a failed TLS handshake, briefly (for
        example C{certificate verify failed}).
    """
    errors = getattr(failure.value, "args", [None])[0]
    if isinstance(errors, list) and errors and isinstance(errors[0], tuple):
        return refusals.explain_tls_failure("; ".join(str(error[-1]) for error in errors))
    return refusals.explain_tls_failure(failure.getErrorMessage())


class HandshakeOutcome:
    """
    How one link's handshake ended, once: the link, or a L{Failure} of
    L{HandshakeFailed}.  The L{Deferred} that reports it is made only when
    asked for, so a failed inbound handshake that nobody waits on leaves
    no unhandled error behind.  Also the deadline for the peer's hello.
    """

    def __init__(self):
        self._outcome: Union[None, object, Failure] = None
        self._waiter: Optional[Deferred] = None
        self._deadline: Optional[IDelayedCall] = None

    def start_deadline(
        self, clock: IReactorTime, timeout_s: float, expire: Callable[[str], None]
    ) -> None:
        """
        Call C{expire(reason)} if the hello does not arrive within
        C{timeout_s} (unless L{cancel_deadline} is called first).
        """
        self._deadline = clock.callLater(timeout_s, self._expire, expire, timeout_s)

    def _expire(self, expire: Callable[[str], None], timeout_s: float) -> None:
        self._deadline = None
        expire(f"no hello within {timeout_s:g} s")

    def cancel_deadline(self) -> None:
        """
        The hello arrived, or the link closed: no deadline any more.
        """
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    @property
    def decided(self) -> bool:
        return self._outcome is not None

    def decide(self, outcome: Union[object, Failure]) -> None:
        """
        The handshake ended with C{outcome}.
        """
        self._outcome = outcome
        if self._waiter is not None:
            self._waiter.callback(outcome)

    def wait(self) -> Deferred:
        """
        @return: a L{Deferred} that fires with the outcome (at once if
            decided); the same one every time.
        """
        if self._waiter is None:
            self._waiter = Deferred()
            if self._outcome is not None:
                self._waiter.callback(self._outcome)
        return self._waiter

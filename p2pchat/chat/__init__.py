"""
The chat floor: the application API faces call.

Faces import only from here.  Besides the API (L{ChatService}, L{Message},
L{Peer}, the errors) this re-exports the small pure helpers and limits a
face needs to check input and print output safely.
"""

from p2pchat.addresses import AddressError, parse_peer_address
from p2pchat.canonical import nfc
from p2pchat.chat.convergence import describe as describe_convergence
from p2pchat.chat.messages import (
    AmbiguousPeer,
    IChatListener,
    Message,
    Peer,
    RoomInfo,
    RoomMember,
    UnknownPeer,
)
from p2pchat.chat.rooms import LOBBY, RoomNameError, Rooms, normalise_room
from p2pchat.chat.service import ChatService, LocalAuthor
from p2pchat.config import PeerAddress
from p2pchat.log.entry import MAX_TEXT_BYTES, InvalidEntry, validate_name
from p2pchat.log.identity import short_id
from p2pchat.log.store import SearchRefused
from p2pchat.ratelimit import TokenBucket
from p2pchat.safe import printable
from p2pchat.throttle import ReadThrottle

__all__ = [
    "AddressError", "AmbiguousPeer", "ChatService", "IChatListener", "InvalidEntry",
    "LOBBY", "LocalAuthor", "MAX_TEXT_BYTES", "Message", "Peer", "PeerAddress", "ReadThrottle",
    "RoomInfo", "RoomMember", "RoomNameError", "Rooms", "SearchRefused", "TokenBucket",
    "UnknownPeer", "describe_convergence", "nfc", "normalise_room", "parse_peer_address",
    "printable", "short_id", "validate_name",
]

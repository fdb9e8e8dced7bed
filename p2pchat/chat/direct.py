"""
Direct messages: sealing a text to one recipient, and opening one.

The text is sealed to the recipient and, so the sender can read its own
history, to the sender; relays store only ciphertext.
"""

import base64
from typing import Optional, Tuple

from nacl.exceptions import CryptoError

from p2pchat.log.entry import Entry, InvalidEntry
from p2pchat.log.identity import Identity, seal_to


def seal(sender: Identity, name: str, recipient: str, text: str) -> dict:
    """
    @return: the body of a C{dm} entry from C{sender} (called C{name}) to
        the node id C{recipient}.
    @raise InvalidEntry: if the text is empty.
    """
    if not text:
        raise InvalidEntry("message is empty")
    plaintext = text.encode("utf-8")
    return {
        "name": name,
        "to": recipient,
        "box": base64.b64encode(seal_to(recipient, plaintext)).decode("ascii"),
        "self_box": base64.b64encode(seal_to(sender.node_id, plaintext)).decode("ascii"),
    }


def open_box(reader: Identity, entry: Entry) -> Optional[Tuple[str, str]]:
    """
    @return: C{(text, recipient)} of the C{dm} C{entry} for C{reader} (its
        sender or recipient), or C{None} if it is for someone else.
    @raise CryptoError: if the box does not open.
    @raise ValueError: if it is not base64 or not UTF-8.
    """
    recipient = entry.body["to"]
    if entry.author == reader.node_id:
        box = entry.body["self_box"]
    elif recipient == reader.node_id:
        box = entry.body["box"]
    else:
        return None
    return reader.unseal(base64.b64decode(box)).decode("utf-8"), recipient


__all__ = ["seal", "open_box", "CryptoError"]

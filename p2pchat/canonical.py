"""
The one accepted text form of each kind of value in a signed or hashed
field.

A field that a relay could re-encode without the author's key (hex in
another case, base64 with other padding, Unicode in another normal form)
would give one signed statement several ids, so each kind of value has
exactly one form here and every other form is refused, not normalised, on
receipt.  Authors normalise before signing (L{nfc}), so an honest node
never produces a refused form.

Pure functions of their argument; no imports from the rest of p2pchat.
"""

import binascii
import unicodedata

LOWER_HEX_DIGITS = "0123456789abcdef"


def is_lower_hex(value: object, length: int) -> bool:
    """
    @return: whether C{value} is a string of exactly C{length} lowercase
        hex digits (no upper case, no whitespace, no sign).
    """
    return isinstance(value, str) and len(value) == length and not value.strip(LOWER_HEX_DIGITS)


def is_nfc(text: str) -> bool:
    """
    @return: whether C{text} is in Unicode Normalization Form C (the form
        authors normalise to before signing).
    """
    return unicodedata.is_normalized("NFC", text)


def nfc(value: object) -> object:
    """
    @return: C{value} in Normalization Form C if it is a string, else
        C{value} unchanged (to be refused by the validation that follows).
    """
    if isinstance(value, str):
        try:
            return unicodedata.normalize("NFC", value)
        except UnicodeError:
            return value
    return value


def is_canonical_base64(value: object) -> bool:
    """
    @return: whether C{value} is standard base64 (RFC 4648 alphabet, with
        padding) exactly as C{base64.b64encode} writes it: decoding is
        strict and encoding the result again gives the same text, so the
        unused bits of the last digit are zero and there are no line breaks
        or stray characters.
    """
    if not isinstance(value, str) or not value.isascii() or len(value) % 4:
        return False
    try:
        # Lenient decoding skips stray characters; the comparison below
        # refuses them, as it refuses non-zero unused bits.
        raw = binascii.a2b_base64(value)
    except (binascii.Error, ValueError):
        return False
    return binascii.b2a_base64(raw, newline=False).decode("ascii") == value

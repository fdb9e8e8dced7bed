"""
Hypothesis strategies for p2pchat's codecs: entries, frames and garbage.

Identities are fixed (generated once at import) so that examples are cheap
and shrink well: a strategy picks one of L{IDENTITIES} instead of making a
new key pair per example.
"""

import json

from hypothesis import strategies as st

from p2pchat import wire
from p2pchat.entry import MAX_INTEGER, MAX_TEXT_BYTES, create_entry
from p2pchat.identity import Identity

IDENTITIES = tuple(Identity.generate() for _ in range(3))
"""
A few fixed identities that generated entries are authored by.
"""


def identities():
    """
    One of the fixed L{IDENTITIES}.
    """
    return st.sampled_from(IDENTITIES)


def node_ids():
    """
    A syntactically valid node id: 64 lowercase hex digits (not necessarily
    a usable Ed25519 key).
    """
    return st.binary(min_size=32, max_size=32).map(bytes.hex)


def names():
    """
    A valid display name: 1-32 printable characters, none of them
    whitespace (any script, not just ASCII).
    """
    return st.text(
        alphabet=st.characters(
            codec="utf-8",
            exclude_categories=("Cc", "Cf", "Co", "Cs", "Cn", "Zs", "Zl", "Zp"),
        ).filter(lambda c: c.isprintable() and not c.isspace()),
        min_size=1,
        max_size=32,
    )


def chat_texts():
    """
    A valid chat text: non-empty Unicode (no lone surrogates) that fits in
    L{MAX_TEXT_BYTES} once UTF-8 encoded.
    """
    return st.text(
        alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300
    ).filter(lambda t: len(t.encode("utf-8")) <= MAX_TEXT_BYTES)


def chat_bodies():
    """
    A valid C{chat} body: C{{"name": NAME, "text": TEXT}}.
    """
    return st.fixed_dictionaries({"name": names(), "text": chat_texts()})


def positive_ints():
    """
    An integer in the range decode_entry accepts for seq and lamport.
    """
    return st.integers(min_value=1, max_value=MAX_INTEGER)


def timestamps():
    """
    A valid C{ts}: integer milliseconds, 0 to L{MAX_INTEGER}.
    """
    return st.integers(min_value=0, max_value=MAX_INTEGER)


@st.composite
def entries(draw, identity=None):
    """
    A valid signed chat L{p2pchat.entry.Entry} by one of the fixed
    identities (or C{identity}), with any seq (a random C{prev} when seq is
    not 1), lamport and ts in range.
    """
    author = identity if identity is not None else draw(identities())
    seq = draw(st.one_of(st.just(1), positive_ints()))
    prev = None if seq == 1 else draw(node_ids())
    return create_entry(
        author,
        seq,
        prev,
        draw(positive_ints()),
        draw(timestamps()),
        "chat",
        draw(chat_bodies()),
    )


def json_values():
    """
    Any JSON value that C{json.dumps} writes as standard JSON: null,
    booleans, integers, finite floats, strings (some with lone surrogates,
    which JSON can carry as C{\\ud800} escapes), and nested arrays and
    objects of them.
    """
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**64), max_value=2**64)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
        | st.builds(
            "{}{}".format, st.text(max_size=3), st.characters(categories=["Cs"])
        )
    )
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=12,
    )


def awkward_strings():
    """
    Strings near the edges of what entries and frames accept: empty,
    whitespace, lone surrogates, upper-case hex, and text around
    L{MAX_TEXT_BYTES} bytes.
    """
    return st.one_of(
        st.sampled_from(["", " ", "\t", "\x00", "A" * 64, "a" * 33, "x" * 4097]),
        st.builds(
            "{}{}".format, st.text(max_size=3), st.characters(categories=["Cs"])
        ),
        st.integers(min_value=MAX_TEXT_BYTES - 2, max_value=MAX_TEXT_BYTES + 2).map(
            lambda n: "\u00e9" * (n // 2) + "x" * (n % 2)
        ),
    )


def frame_types():
    """
    A frame C{type}: usually a known one, sometimes any short string.
    """
    return st.sampled_from(sorted(wire.FRAME_CHECKS)) | st.text(max_size=10)


@st.composite
def json_objects_with_type(draw):
    """
    A JSON object (as a dict) with a random C{type} and random other
    fields: the shape of frames a confused or hostile peer might send.
    """
    fields = draw(st.dictionaries(st.text(max_size=8), json_values(), max_size=5))
    fields["type"] = draw(frame_types() | json_values())
    return fields


def json_lines():
    """
    The JSON text of a L{json_objects_with_type} object, as one line of
    bytes: either ASCII with escapes, or UTF-8 (where a lone surrogate
    becomes bytes that are not valid UTF-8).
    """
    return st.builds(
        lambda value, ascii_only: json.dumps(value, ensure_ascii=ascii_only).encode(
            "utf-8", "surrogatepass"
        ),
        json_objects_with_type(),
        st.booleans(),
    )


def garbage_bytes():
    """
    Arbitrary bytes, biased towards JSON-ish fragments and line breaks so
    that some of them get past the first checks.
    """
    fragments = st.sampled_from(
        [b"{", b"}", b'"type"', b":", b'"entry"', b'"hello"', b"\n", b"\r\n",
         b"null", b"[", b"]", b",", b"\xff", b"\xc3", b"NaN", b'"\\ud800"']
    )
    return st.one_of(
        st.binary(max_size=200),
        st.lists(fragments | st.binary(max_size=8), max_size=30).map(b"".join),
    )

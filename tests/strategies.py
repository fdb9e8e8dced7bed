"""
Hypothesis strategies for p2pchat's codecs: entries, frames and garbage.

Identities are fixed (generated once at import) so that examples are cheap
and shrink well: a strategy picks one of L{IDENTITIES} instead of making a
new key pair per example.
"""

import base64
import json
import unicodedata

from hypothesis import strategies as st

from p2pchat.log.entry import MAX_INTEGER, MAX_TEXT_BYTES, create_entry, validate_name
from p2pchat.log.identity import Identity
from p2pchat.mesh import wire

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
    whitespace (any script, not just ASCII), in Unicode NFC.
    """
    return st.text(
        alphabet=st.characters(
            codec="utf-8",
            exclude_categories=("Cc", "Cf", "Co", "Cs", "Cn", "Zs", "Zl", "Zp"),
        ).filter(lambda c: c.isprintable() and not c.isspace()),
        min_size=1,
        max_size=32,
    ).map(lambda name: unicodedata.normalize("NFC", name)).filter(validate_name)


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
    A valid signed chat L{p2pchat.log.entry.Entry} by one of the fixed
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


def composable_texts():
    """
    A chat text in NFC that has a different NFD form (it holds at least
    one precomposed character), so that an NFC<->NFD mutation changes it.
    """
    return st.builds(
        "{}{}{}".format,
        st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
        st.sampled_from(["\u00e9", "\u00c5", "\uac00", "\u1e9b\u0323", "\u00f1"]),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    ).map(lambda text: unicodedata.normalize("NFC", text))


def base64_texts():
    """
    Canonical base64 of 1-60 random bytes, as a dm box would be.
    """
    return st.binary(min_size=1, max_size=60).map(
        lambda raw: base64.b64encode(raw).decode("ascii")
    )


@st.composite
def varied_entries(draw):
    """
    A valid signed entry of any kind whose text fields are worth mutating:
    a chat entry (often with precomposed characters), or a dm with
    canonical base64 boxes.
    """
    author = draw(identities())
    seq = draw(st.one_of(st.just(1), st.integers(min_value=2, max_value=5), positive_ints()))
    prev = None if seq == 1 else draw(node_ids())
    kind = draw(st.sampled_from(["chat", "dm"]))
    name = draw(names() | st.sampled_from(["Ren\u00e9e", "\u00c5sa"]))
    if kind == "chat":
        body = {"name": name, "text": draw(composable_texts() | chat_texts())}
    else:
        body = {"name": name, "to": draw(identities()).node_id,
                "box": draw(base64_texts()), "self_box": draw(base64_texts())}
    lamport = draw(st.integers(min_value=1, max_value=3) | positive_ints())
    ts = draw(st.integers(min_value=0, max_value=1) | timestamps())
    return create_entry(author, seq, prev, lamport, ts, kind, body)


HEX_FIELDS = ("author", "prev", "sig", "body.to")
MUTATIONS = ("hex_case", "nfd", "number_form", "layout", "escapes", "base64")


def _flip_case(text, random):
    flipped = [c.upper() if c.isalpha() and random.random() < 0.5 else c for c in text]
    if flipped == list(text):
        index = next((i for i, c in enumerate(text) if c.isalpha()), None)
        if index is not None:
            flipped[index] = text[index].upper()
    return "".join(flipped)


def _noncanonical_base64(text, random):
    choices = [text.rstrip("="), text[:4] + "\n" + text[4:], text + "\n",
               text.replace("+", "-").replace("/", "_"), " " + text]
    last = text.rstrip("=")
    if text.endswith("="):
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        bumped = alphabet[(alphabet.index(last[-1]) + 1) % 64]
        choices.append(last[:-1] + bumped + text[len(last):])
    return random.choice(choices)


def _number_forms(number):
    forms = [str(number), f"{number}.0", f"{number}e0", f"{number}E+0", f"{number}.000e0"]
    if number == 0:
        forms += ["-0", "-0.0", "false"]
    if number == 1:
        forms += ["true"]
    if number >= 10:
        forms += [f"{number / 10!r}e1"]
    return forms


def _render_string(text, random, escapes):
    out = ['"']
    for c in text:
        code = ord(c)
        if escapes and random.random() < 0.3:
            if code > 0xFFFF:
                high = 0xD800 + ((code - 0x10000) >> 10)
                low = 0xDC00 + ((code - 0x10000) & 0x3FF)
                out.append(f"\\u{high:04x}\\u{low:04X}")
            else:
                out.append(random.choice([f"\\u{code:04x}", f"\\u{code:04X}"]))
        elif c == '"' or c == "\\" or code < 0x20:
            out.append(json.dumps(c)[1:-1])
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def render_json(value, random, numbers=False, layout=False, escapes=False):
    """
    Write C{value} as JSON text the way a hostile peer might: keys in any
    order, whitespace anywhere between tokens (C{layout}), integers in
    other number forms (C{numbers}: C{1.0}, C{1e0}, C{-0}, C{true}),
    characters as C{\\uXXXX} escapes (C{escapes}).
    """
    def space():
        return random.choice(["", " ", "\t", "\r\n ", "  "]) if layout else ""

    if isinstance(value, dict):
        keys = list(value)
        if layout:
            random.shuffle(keys)
        items = [
            space() + _render_string(key, random, escapes) + space() + ":" + space()
            + render_json(value[key], random, numbers, layout, escapes) + space()
            for key in keys
        ]
        return "{" + ",".join(items) + "}"
    if isinstance(value, str):
        return _render_string(value, random, escapes)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return random.choice(_number_forms(value)) if numbers else str(value)
    return json.dumps(value)


@st.composite
def encoding_mutations(draw):
    """
    An entry and the raw line of an C{entry} frame carrying it, re-encoded
    by one or more encoding mutations: hex case flips of a hex field
    (C{author}, C{prev}, C{sig}, dm C{to}), NFC->NFD of the name or text,
    other JSON number forms, key order and whitespace, C{\\u} escapes,
    non-canonical base64 of a dm box.

    @return: C{(entry, mutations, line)}.
    """
    entry = draw(varied_entries())
    random = draw(st.randoms(use_true_random=False))
    mutations = draw(st.sets(st.sampled_from(MUTATIONS), min_size=1))
    wire_entry = json.loads(json.dumps(entry.to_wire()))
    body = wire_entry["body"]
    if "hex_case" in mutations:
        for field in draw(st.sets(st.sampled_from(HEX_FIELDS), min_size=1)):
            holder, key = (body, field[5:]) if field.startswith("body.") else (wire_entry, field)
            if isinstance(holder.get(key), str):
                holder[key] = _flip_case(holder[key], random)
    if "nfd" in mutations:
        for key in ("name", "text"):
            if key in body and random.random() < 0.7:
                body[key] = unicodedata.normalize("NFD", body[key])
    if "base64" in mutations and "box" in body:
        key = random.choice(["box", "self_box"])
        body[key] = _noncanonical_base64(body[key], random)
    frame = {"type": "entry", "entry": wire_entry}
    text = render_json(
        frame, random,
        numbers="number_form" in mutations,
        layout="layout" in mutations,
        escapes="escapes" in mutations,
    )
    return entry, sorted(mutations), text.encode("utf-8", "surrogatepass")

"""
Tests for L{p2pchat.log.entry} and L{p2pchat.log.identity}.
"""

import hashlib
import json
import os
import re
import stat
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.exceptions import CryptoError
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log import entry as entry_module
from p2pchat.log.bodies import body_json
from p2pchat.log.entry import (
    MAX_TEXT_BYTES,
    SIGNING_CONTEXT,
    InvalidEntry,
    _body_json,
    _encode_checked,
    canonical_json,
    create_entry,
    decode_entry,
    entry_id,
    parse_entry,
    validate_name,
)
from p2pchat.log.identity import KEY_FILE_NAME, Identity, is_node_id, seal_to
from tests import strategies

ALICE, BOB = strategies.IDENTITIES[:2]


def make_entry(identity=ALICE, seq=1, prev=None, lamport=1, ts=1000,
               kind="chat", body=None):
    """
    @return: a valid signed entry with sensible defaults.
    """
    if body is None:
        body = {"name": "alice", "text": "hello"}
    return create_entry(identity, seq, prev, lamport, ts, kind, body)


def resign(identity, wire):
    """
    @return: a copy of C{wire} with a fresh signature by C{identity} over its
        (possibly invalid) fields, so that a test reaches the field checks
        and not just the signature check.
    """
    unsigned = {key: value for key, value in wire.items() if key != "sig"}
    sig = identity.sign(SIGNING_CONTEXT + canonical_json(unsigned)).hex()
    return dict(unsigned, sig=sig)


def flip_hex_bit(hex_text, index):
    """
    @return: C{hex_text} with one bit of the byte at C{index} flipped.
    """
    raw = bytearray(bytes.fromhex(hex_text))
    raw[index % len(raw)] ^= 1
    return raw.hex()


class RoundTripTests(SynchronousTestCase):
    """
    Entries survive the trip to the wire and back.
    """

    @settings(max_examples=150, deadline=None)
    @given(strategies.entries())
    def test_wire_round_trip(self, entry):
        """
        An entry made by L{create_entry}, turned into JSON text and parsed
        back, decodes to an equal L{Entry} with the same id.
        """
        received = json.loads(json.dumps(entry.to_wire()))
        decoded = decode_entry(received)
        self.assertEqual(decoded, entry)
        self.assertEqual(decoded.id, entry.id)

    @settings(max_examples=100, deadline=None)
    @given(strategies.entries(), st.randoms(use_true_random=False))
    def test_canonical_key_order(self, entry, random):
        """
        The canonical encoding, and so the id and signature check, do not
        depend on the order of keys in the entry or its body.
        """
        wire = entry.to_wire()
        items = list(wire.items())
        random.shuffle(items)
        body_items = list(wire["body"].items())
        random.shuffle(body_items)
        shuffled = dict(items)
        shuffled["body"] = dict(body_items)
        self.assertEqual(canonical_json(shuffled), canonical_json(wire))
        self.assertEqual(decode_entry(shuffled).id, entry.id)

    def test_id_is_sha256_of_canonical_encoding(self):
        """
        The id is the SHA-256 hex digest of the canonical encoding of the
        whole entry, signature included.
        """
        entry = make_entry(body={"name": "alice", "text": "h\u00e9llo \U0001f600"})
        wire = entry.to_wire()
        self.assertIn("sig", canonical_json(wire).decode("utf-8"))
        self.assertEqual(entry.id, hashlib.sha256(canonical_json(wire)).hexdigest())
        self.assertEqual(entry.id, entry_id(wire))
        unsigned = {key: value for key, value in wire.items() if key != "sig"}
        self.assertNotEqual(
            entry.id, hashlib.sha256(canonical_json(unsigned)).hexdigest()
        )

    def test_canonical_encoding_form(self):
        """
        The canonical encoding sorts keys, has no spaces and keeps
        non-ASCII characters as UTF-8 rather than escapes.
        """
        self.assertEqual(
            canonical_json({"b": 1, "a": ["\u00e9", None]}),
            '{"a":["\u00e9",null],"b":1}'.encode("utf-8"),
        )

    def test_name_property(self):
        """
        L{Entry.name} is the author's display name from the body.
        """
        self.assertEqual(make_entry().name, "alice")

    def test_dm_round_trip(self):
        """
        A well-formed dm entry decodes to an equal entry.
        """
        body = {
            "name": "alice",
            "to": BOB.node_id,
            "box": "Ym94",
            "self_box": "c2VsZg==",
        }
        entry = make_entry(kind="dm", body=body)
        self.assertEqual(decode_entry(json.loads(json.dumps(entry.to_wire()))), entry)


class TamperTests(SynchronousTestCase):
    """
    Any change to a signed entry is detected.
    """

    def setUp(self):
        self.first = make_entry()
        self.entry = make_entry(seq=2, prev=self.first.id, lamport=2, ts=2000)
        self.wire = self.entry.to_wire()

    def assertBadSignature(self, field, value):
        tampered = dict(self.wire, **{field: value})
        with self.assertRaises(InvalidEntry) as caught:
            decode_entry(tampered)
        self.assertEqual(str(caught.exception), "bad signature")

    def test_tamper_text(self):
        """
        Changing the text breaks the signature.
        """
        self.assertBadSignature("body", {"name": "alice", "text": "hellO"})

    def test_tamper_name(self):
        """
        Changing the author's display name breaks the signature.
        """
        self.assertBadSignature("body", {"name": "mallory", "text": "hello"})

    def test_tamper_seq(self):
        """
        Changing seq breaks the signature.
        """
        self.assertBadSignature("seq", 3)

    def test_tamper_lamport(self):
        """
        Changing the Lamport time breaks the signature.
        """
        self.assertBadSignature("lamport", 3)

    def test_tamper_ts(self):
        """
        Changing the timestamp breaks the signature.
        """
        self.assertBadSignature("ts", 2001)

    def test_tamper_author(self):
        """
        Claiming another valid author breaks the signature.
        """
        self.assertBadSignature("author", BOB.node_id)

    def test_tamper_prev(self):
        """
        Pointing prev at another entry breaks the signature.
        """
        self.assertBadSignature("prev", flip_hex_bit(self.wire["prev"], 0))

    def test_tamper_sig(self):
        """
        Flipping any one bit of the signature makes it invalid.
        """
        for index in (0, 31, 32, 63):
            self.assertBadSignature("sig", flip_hex_bit(self.wire["sig"], index))

    def test_tamper_kind(self):
        """
        Changing the kind of a chat entry is caught by the body check.
        """
        self.assertRaises(InvalidEntry, decode_entry, dict(self.wire, kind="dm"))

    @settings(max_examples=200, deadline=None)
    @given(
        strategies.entries(),
        st.sampled_from(
            ["author", "seq", "prev", "lamport", "ts", "kind", "body", "sig",
             "body.name", "body.text"]
        ),
        strategies.json_values() | strategies.awkward_strings(),
    )
    def test_any_mutation(self, entry, field, value):
        """
        Setting any one field (or body field) to any JSON value either
        leaves the entry unchanged (and it still decodes) or makes
        L{decode_entry} raise L{InvalidEntry}, never another exception.
        """
        wire = json.loads(json.dumps(entry.to_wire()))
        if field.startswith("body."):
            wire["body"] = dict(wire["body"], **{field[5:]: value})
        else:
            wire[field] = value
        try:
            decoded = decode_entry(wire)
        except InvalidEntry:
            return
        self.assertEqual(canonical_json(wire), canonical_json(entry.to_wire()))
        self.assertEqual(decoded.id, entry.id)

    @settings(max_examples=100, deadline=None)
    @given(strategies.json_values())
    def test_not_an_entry(self, value):
        """
        Any JSON value that is not a well-formed entry raises only
        L{InvalidEntry}.
        """
        self.assertRaises(InvalidEntry, decode_entry, value)


class FieldValidationTests(SynchronousTestCase):
    """
    L{decode_entry} checks every field, even with a valid signature.
    """

    def setUp(self):
        self.first = make_entry().to_wire()
        self.second = make_entry(seq=2, prev=make_entry().id, lamport=2).to_wire()

    def assertRejected(self, wire, reason_part, **changes):
        """
        Re-sign C{wire} with C{changes} applied and check that
        L{decode_entry} rejects it with a reason containing C{reason_part}.
        """
        changed = resign(ALICE, dict(wire, **changes))
        with self.assertRaises(InvalidEntry) as caught:
            decode_entry(changed)
        self.assertIn(reason_part, str(caught.exception))

    def test_valid_baseline(self):
        """
        The unmodified entries used below are valid (so each rejection is
        caused by the one change it makes).
        """
        decode_entry(self.first)
        decode_entry(self.second)
        decode_entry(resign(ALICE, self.second))

    def test_missing_field(self):
        """
        An entry lacking any one field is rejected.
        """
        for field in list(self.first):
            wire = {k: v for k, v in self.first.items() if k != field}
            with self.assertRaises(InvalidEntry) as caught:
                decode_entry(wire)
            self.assertIn("missing or unknown", str(caught.exception))

    def test_extra_field(self):
        """
        An entry with an extra field is rejected, even if signed.
        """
        self.assertRejected(self.first, "missing or unknown", extra=1)

    def test_bool_as_int(self):
        """
        C{true} is not accepted where an integer is required.
        """
        self.assertRejected(self.first, "seq", seq=True)
        self.assertRejected(self.first, "lamport", lamport=True)
        self.assertRejected(self.first, "ts", ts=False)

    def test_float_seq(self):
        """
        A float seq, even an integral one, is rejected.
        """
        self.assertRejected(self.first, "seq", seq=1.0)
        self.assertRejected(self.second, "seq", seq=2.0)

    def test_seq_zero(self):
        """
        seq starts at 1.
        """
        self.assertRejected(self.first, "seq", seq=0)
        self.assertRejected(self.first, "seq", seq=-1)

    def test_lamport_zero(self):
        """
        Lamport times are positive.
        """
        self.assertRejected(self.first, "lamport", lamport=0)

    def test_integers_too_large(self):
        """
        Integers above 2**53 (not exact in JavaScript) are rejected.
        """
        self.assertRejected(self.second, "seq", seq=2**53 + 1)
        self.assertRejected(self.first, "lamport", lamport=2**53 + 1)
        self.assertRejected(self.first, "ts", ts=2**53 + 1)

    def test_negative_ts(self):
        """
        A negative timestamp is rejected; zero is allowed.
        """
        self.assertRejected(self.first, "ts", ts=-1)
        decode_entry(resign(ALICE, dict(self.first, ts=0)))

    def test_first_entry_with_prev(self):
        """
        An entry with seq 1 must have a null prev.
        """
        self.assertRejected(self.first, "prev null", prev=self.second["prev"])

    def test_later_entry_without_prev(self):
        """
        An entry with seq 2 must name its predecessor.
        """
        self.assertRejected(self.second, "prev", prev=None)

    def test_bad_prev(self):
        """
        prev must be 64 lowercase hex digits.
        """
        self.assertRejected(self.second, "prev", prev=self.second["prev"].upper())
        self.assertRejected(self.second, "prev", prev=self.second["prev"][:-1])

    def test_bad_author(self):
        """
        The author must be 64 lowercase hex digits.
        """
        self.assertRejected(self.first, "author", author=ALICE.node_id.upper())

    def test_bad_sig_form(self):
        """
        A signature that is not 128 hex digits is rejected as such.
        """
        with self.assertRaises(InvalidEntry) as caught:
            decode_entry(dict(self.first, sig="zz" * 64))
        self.assertIn("hex", str(caught.exception))
        with self.assertRaises(InvalidEntry) as caught:
            decode_entry(dict(self.first, sig=self.first["sig"][:-2]))
        self.assertIn("sig", str(caught.exception))

    def test_oversized_text(self):
        """
        Text over L{MAX_TEXT_BYTES} UTF-8 bytes is rejected; exactly that
        many (counted in bytes, not characters) is allowed.
        """
        exact = "\u00e9" * (MAX_TEXT_BYTES // 2)
        decode_entry(resign(ALICE, dict(self.first, body={"name": "a", "text": exact})))
        self.assertRejected(
            self.first, "text", body={"name": "a", "text": exact + "x"}
        )
        self.assertRaises(
            InvalidEntry, make_entry, body={"name": "a", "text": exact + "x"}
        )

    def test_empty_text(self):
        """
        Empty chat text is rejected.
        """
        self.assertRejected(self.first, "text", body={"name": "a", "text": ""})
        self.assertRaises(InvalidEntry, make_entry, body={"name": "a", "text": ""})

    def test_text_not_string(self):
        """
        Chat text must be a string.
        """
        self.assertRejected(self.first, "text", body={"name": "a", "text": 5})

    def test_lone_surrogate_text(self):
        """
        Text with a lone surrogate (valid JSON escape, invalid Unicode)
        raises L{InvalidEntry}, not an encoding error.
        """
        wire = dict(self.first)
        wire["body"] = json.loads('{"name": "a", "text": "x\\ud800"}')
        self.assertRaises(InvalidEntry, decode_entry, wire)
        self.assertRaises(
            InvalidEntry, make_entry, body={"name": "a", "text": "x\ud800"}
        )

    def test_chat_body_shape(self):
        """
        A chat body has exactly name and text.
        """
        self.assertRejected(self.first, "exactly", body={"name": "a"})
        self.assertRejected(
            self.first, "exactly", body={"name": "a", "text": "t", "x": 1}
        )
        self.assertRejected(self.first, "body", body=["a", "t"])

    def test_bad_kind(self):
        """
        Only the kinds chat and dm exist.
        """
        self.assertRejected(self.first, "kind", kind="poll")
        self.assertRejected(self.first, "kind", kind=None)
        self.assertRaises(
            InvalidEntry, make_entry, kind="poll", body={"name": "a", "text": "t"}
        )

    def test_bad_name(self):
        """
        A name with whitespace, an unprintable character, none or more than
        32 characters is rejected; 32 characters are allowed.
        """
        for name in ("al ice", "a\tb", "a\x00", "", "x" * 33, None, 7):
            self.assertRejected(self.first, "name", body={"name": name, "text": "t"})
        longest = {"name": "x" * 32, "text": "t"}
        decode_entry(resign(ALICE, dict(self.first, body=longest)))

    def test_dm_body_shape(self):
        """
        A dm body has exactly name, to (a node id), box and self_box (strings).
        """
        good = {"name": "a", "to": BOB.node_id, "box": "Ym94", "self_box": "c2Vs"}
        decode_entry(resign(ALICE, dict(self.first, kind="dm", body=good)))
        bad_bodies = [
            {"name": "a", "text": "t"},
            {k: v for k, v in good.items() if k != "self_box"},
            dict(good, extra=1),
            dict(good, to="bob"),
            dict(good, box=5),
            dict(good, self_box="x" * 8193),
        ]
        for body in bad_bodies:
            self.assertRaises(
                InvalidEntry,
                decode_entry,
                resign(ALICE, dict(self.first, kind="dm", body=body)),
            )

    def test_create_rejects_invalid_fields(self):
        """
        L{create_entry} refuses to sign fields that L{decode_entry} would
        reject, as documented, instead of producing an undecodable entry.
        """
        bad_arguments = [
            dict(seq=0),
            dict(seq=2, prev=None),
            dict(seq=1, prev="ab" * 32),
            dict(lamport=0),
            dict(ts=-1),
        ]
        for arguments in bad_arguments:
            self.assertRaises(InvalidEntry, make_entry, **arguments)


class IdentityTests(SynchronousTestCase):
    """
    Tests for L{Identity}.
    """

    def test_load_or_create(self):
        """
        The first call creates C{identity.key} with mode 0600; the next call
        loads the same identity from it.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        created = Identity.load_or_create(directory)
        path = os.path.join(directory, KEY_FILE_NAME)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(os.listdir(directory), [KEY_FILE_NAME])
        loaded = Identity.load_or_create(directory)
        self.assertEqual(loaded.node_id, created.node_id)
        self.assertEqual(len(created.node_id), 64)
        self.assertEqual(created.short_id, created.node_id[:8])
        entry = make_entry(identity=created)
        self.assertEqual(entry.sig, make_entry(identity=loaded).sig)

    def test_corrupt_key_file(self):
        """
        A key file that is not 32 bytes of hex raises L{ValueError}.
        """
        for content in ("not hex at all", "abcd", "ab" * 33, ""):
            directory = self.mktemp()
            os.makedirs(directory)
            with open(os.path.join(directory, KEY_FILE_NAME), "w") as f:
                f.write(content)
            self.assertRaises(ValueError, Identity.load_or_create, directory)

    def test_seal_round_trip(self):
        """
        A box sealed to an identity's node id opens with that identity.
        """
        box = seal_to(ALICE.node_id, "secret \u00e9".encode("utf-8"))
        self.assertEqual(ALICE.unseal(box), "secret \u00e9".encode("utf-8"))

    def test_seal_for_someone_else(self):
        """
        A box sealed to one identity cannot be opened by another.
        """
        box = seal_to(ALICE.node_id, b"secret")
        self.assertRaises(CryptoError, BOB.unseal, box)

    def test_sealed_box_tampered(self):
        """
        A box with a flipped bit does not open.
        """
        box = bytearray(seal_to(ALICE.node_id, b"secret"))
        box[-1] ^= 1
        self.assertRaises(CryptoError, ALICE.unseal, bytes(box))


class FastPathTests(SynchronousTestCase):
    """
    The shortcuts L{decode_entry} takes (one canonical encoding per entry,
    hex checks without a loop, cached verify keys) give exactly the
    answers of the plain definitions.
    """

    @settings(max_examples=150, deadline=None)
    @given(strategies.entries())
    def test_encodings_match_canonical_json(self, entry):
        """
        L{parse_entry} computes the id from the canonical encoding of the
        whole entry, and L{_encode_checked} builds the same bytes as
        C{canonical_json} for the signed and the unsigned entry.
        """
        wire = json.loads(json.dumps(entry.to_wire()))
        unsigned = {key: value for key, value in wire.items() if key != "sig"}
        body_text = _body_json(wire["kind"], wire["body"])
        self.assertEqual(body_text.encode("utf-8"), canonical_json(wire["body"]))
        self.assertEqual(
            _encode_checked(wire, body_text),
            (canonical_json(unsigned), canonical_json(wire)),
        )
        self.assertEqual(_encode_checked(unsigned, body_text), (canonical_json(unsigned), None))
        candidate = parse_entry(wire)
        self.assertEqual(candidate.id, entry_id(wire))
        self.assertEqual((candidate.author, candidate.seq), (entry.author, entry.seq))
        self.assertEqual(candidate.verify(), entry)

    def test_dm_encoding_matches_canonical_json(self):
        """
        A direct message body, with non-ASCII and escaped characters in its
        name, is encoded as C{canonical_json} encodes it.
        """
        body = {"name": "\u00e9\"\\x", "to": BOB.node_id, "box": "Ym94", "self_box": "c2VsZg=="}
        entry = make_entry(kind="dm", body=body)
        wire = entry.to_wire()
        body_text = _body_json("dm", body)
        self.assertEqual(body_text.encode("utf-8"), canonical_json(body))
        self.assertEqual(_encode_checked(wire, body_text)[1], canonical_json(wire))
        self.assertEqual(decode_entry(wire).id, entry_id(wire))

    def test_body_json(self):
        """
        L{body_json} is C{canonical_json} as text, for chat bodies (the
        direct path) and for any other object (the general one).
        """
        for body in [
            {"name": "a", "text": "h\u00e9llo \"q\" \\ \n \x01 \u2028"},
            {"text": "t", "name": "n"},
            {"name": "a", "to": "b", "box": "c", "self_box": "d"},
            {"name": 1, "text": "x"},
            {"name": "a", "text": "x", "extra": [1, None]},
        ]:
            self.assertEqual(body_json(body), canonical_json(body).decode("utf-8"))

    def test_is_node_id_is_64_lowercase_hex(self):
        """
        L{is_node_id} (which checks without a Python loop over the
        characters) accepts exactly the strings of 64 lowercase hex digits.
        """
        values = [
            ALICE.node_id,
            "a" * 64,
            "A" * 64,
            "a" * 63,
            "a" * 65,
            "g" + "a" * 63,
            "a" * 63 + " ",
            " " + "a" * 63,
            "a" * 31 + "-" + "a" * 32,
            "\u0661" * 64,
            b"a" * 64,
            None,
            64,
            ["a"] * 64,
        ]
        for value in values:
            expected = isinstance(value, str) and re.fullmatch("[0-9a-f]{64}", value) is not None
            self.assertEqual(is_node_id(value), expected, repr(value))

    def test_name_whitespace_matches_isspace(self):
        """
        L{validate_name} rejects a name holding any character for which
        C{str.isspace} holds, wherever it is, and accepts the others.
        """
        for code in range(0x3000 + 1):
            c = chr(code)
            for name in (c, "a" + c, c + "b", "a" + c + "b"):
                expected = (
                    name.isprintable()
                    and not any(x.isspace() for x in name)
                    and unicodedata.is_normalized("NFC", name)
                )
                self.assertEqual(validate_name(name), expected, repr(name))

    def test_cached_verify_key_still_checks(self):
        """
        Once an author's verify key is cached, a bad signature by that
        author is still refused, and a full cache starts over.
        """
        # An empty cache: what earlier tests in this process cached (which
        # differs with hypothesis's draws and with trial -j's split) must
        # not decide whether BOB's key is new.
        self.patch(entry_module, "_VERIFY_KEYS", {})
        good = make_entry()
        self.assertEqual(decode_entry(good.to_wire()), good)
        self.assertIn(ALICE.node_id, entry_module._VERIFY_KEYS)
        tampered = dict(good.to_wire(), ts=good.ts + 1)
        with self.assertRaises(InvalidEntry) as caught:
            decode_entry(tampered)
        self.assertEqual(str(caught.exception), "bad signature")
        self.patch(entry_module, "_VERIFY_KEYS_MAX", len(entry_module._VERIFY_KEYS))
        self.assertEqual(decode_entry(make_entry(identity=BOB).to_wire()).author, BOB.node_id)
        self.assertEqual(list(entry_module._VERIFY_KEYS), [BOB.node_id])

    def test_parse_entry_does_not_verify(self):
        """
        L{parse_entry} checks the fields and the form of the signature but
        not the signature itself; L{UnverifiedEntry.verify} does.
        """
        wire = dict(make_entry().to_wire(), ts=5)
        candidate = parse_entry(wire)
        self.assertEqual(candidate.id, entry_id(wire))
        self.assertRaises(InvalidEntry, candidate.verify)
        self.assertRaises(InvalidEntry, parse_entry, dict(wire, seq=0))
        self.assertRaises(InvalidEntry, parse_entry, dict(wire, sig="zz" * 64))

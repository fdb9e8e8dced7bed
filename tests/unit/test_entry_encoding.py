"""
One accepted encoding for every signed or hashed field of an entry
(L{p2pchat.canonical}, L{p2pchat.log.entry}): a relay cannot re-encode an
author's entry into a second valid entry with another id.

Kept apart from C{tests/unit/test_entry.py}, which is already long.
"""

import base64
import json
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.canonical import is_canonical_base64, is_lower_hex
from p2pchat.faces.console import parse_command
from p2pchat.log.entry import (
    SIGNING_CONTEXT,
    InvalidEntry,
    canonical_json,
    create_entry,
    decode_entry,
    parse_entry,
    validate_name,
)
from p2pchat.log.identity import verify_signature
from p2pchat.mesh import wire
from p2pchat.mesh.membership.rows import check_row
from p2pchat.options_checks import sanitize_name
from p2pchat.tap import Options
from p2pchat.trust.binding import sign_binding, verify_binding
from tests import strategies

ALICE, BOB = strategies.IDENTITIES[:2]
# The order of the Ed25519 base point's group (RFC 8032, "L").
ED25519_L = 2**252 + 27742317777372353535851937790883648493


def chat(seq=1, prev=None, text="hello", name="alice", identity=ALICE):
    return create_entry(identity, seq, prev, seq, 1000 * seq, "chat",
                        {"name": name, "text": text})


def dm(box="Ym94", self_box="c2VsZg=="):
    return create_entry(ALICE, 1, None, 1, 0, "dm",
                        {"name": "alice", "to": BOB.node_id, "box": box, "self_box": self_box})


def line_of(wire_entry):
    return json.dumps({"type": "entry", "entry": wire_entry}).encode("utf-8")


def receive(line):
    """
    What a node does with a received line: parse the frame, then the entry.

    @return: the L{p2pchat.log.entry.UnverifiedEntry}.
    """
    return parse_entry(wire.parse_frame(line)["entry"])


class HexCaseTests(SynchronousTestCase):
    """
    Hex is lower case only, in every hex field.
    """

    def test_upper_case_sig_rejected(self):
        """
        The attack of finding 1: the same valid signature in upper case
        (whole or one digit) is refused, not given a second id.
        """
        entry = chat()
        for sig in (entry.sig.upper(), entry.sig[:-1] + entry.sig[-1].upper()
                    if entry.sig[-1].isalpha() else "A" + entry.sig[1:]):
            if sig == entry.sig:
                continue
            with self.assertRaises(InvalidEntry) as caught:
                parse_entry(dict(entry.to_wire(), sig=sig))
            self.assertIn("lowercase hex", str(caught.exception))

    def test_sig_whitespace_rejected(self):
        """
        C{bytes.fromhex} skips spaces; the signature form does not.
        """
        entry = chat()
        spaced = entry.sig[:2] + " " + entry.sig[3:]
        self.assertRaises(InvalidEntry, parse_entry, dict(entry.to_wire(), sig=spaced))

    def test_upper_case_prev_and_to_rejected(self):
        """
        C{prev} and a dm's C{to} are lowercase hex like C{author}.
        """
        first = chat()
        second = chat(seq=2, prev=first.id)
        self.assertRaises(InvalidEntry, parse_entry,
                          dict(second.to_wire(), prev=first.id.upper()))
        message = dm()
        body = dict(message.body, to=BOB.node_id.upper())
        self.assertRaises(InvalidEntry, parse_entry, dict(message.to_wire(), body=body))

    def test_cert_proof_lowercase_whole_bytes(self):
        """
        A cert entry's C{proof} is lowercase hex of whole bytes.
        """
        body = {"name": "alice", "cert": "-----BEGIN CERTIFICATE-----", "proof": "ab01"}
        create_entry(ALICE, 1, None, 1, 0, "cert", body)
        for proof in ("AB01", "ab0", "ab 01", ""):
            self.assertRaises(InvalidEntry, create_entry, ALICE, 1, None, 1, 0, "cert",
                              dict(body, proof=proof))

    def test_is_lower_hex(self):
        """
        L{is_lower_hex} accepts exactly C{length} lowercase hex digits.
        """
        self.assertTrue(is_lower_hex("0a" * 4, 8))
        for value in ("0A" * 4, "0a" * 3, "0a" * 5, " 0a0a0a0", "0a0a0a0g", b"0a0a0a0a", None):
            self.assertFalse(is_lower_hex(value, 8), repr(value))

    def test_binding_signature_lowercase(self):
        """
        A hello's TLS binding signature is accepted in lowercase hex only.
        """
        signature = sign_binding(ALICE, b"material")
        self.assertTrue(verify_binding(ALICE.node_id, b"material", signature))
        self.assertFalse(verify_binding(ALICE.node_id, b"material", signature.upper()))


class NumberFormTests(SynchronousTestCase):
    """
    Integers are JSON integers; other number forms are refused, and the
    forms JSON gives the same integer for (C{-0}) re-encode identically.
    """

    def test_other_number_forms_rejected(self):
        entry = chat()
        canonical = line_of(entry.to_wire())
        for form in (b"1.0", b"1e0", b"1E+0", b"true", b"1.000e0"):
            line = canonical.replace(b'"seq": 1,', b'"seq": ' + form + b",")
            self.assertNotEqual(line, canonical)
            self.assertRaises((InvalidEntry, wire.FrameError), receive, line)

    def test_minus_zero_is_zero(self):
        """
        C{-0} is JSON's integer 0: accepted, with the same id and canonical
        bytes as C{0}, because the id hashes our re-encoding.
        """
        entry = create_entry(ALICE, 1, None, 1, 0, "chat", {"name": "a", "text": "t"})
        line = line_of(entry.to_wire()).replace(b'"ts": 0', b'"ts": -0')
        self.assertIn(b"-0", line)
        received = receive(line)
        self.assertEqual(received.id, entry.id)
        self.assertEqual(received.verify(), entry)


class LayoutTests(SynchronousTestCase):
    """
    Key order, whitespace and string escapes in the received line never
    reach the id: it hashes the canonical re-encoding.
    """

    def test_key_order_whitespace_and_escapes(self):
        entry = chat(text="A caf\u00e9 \U0001F600")
        wire_entry = entry.to_wire()
        reordered = dict(reversed(list(wire_entry.items())))
        line = json.dumps({"entry": reordered, "type": "entry"}, indent=3,
                          ensure_ascii=True).encode("ascii")
        self.assertIn(b"\\u00e9", line)
        self.assertIn(b"\\ud83d\\ude00", line)
        line = line.replace(b'"A caf', b'"\\u0041 caf')
        received = receive(line)
        self.assertEqual(received.id, entry.id)
        self.assertEqual(received.verify(), entry)

    def test_escaped_upper_case_hex_rejected(self):
        """
        C{\\u0041} is "A": an escape cannot smuggle upper-case hex in.
        """
        entry = chat()
        line = line_of(entry.to_wire())
        index = next(i for i, c in enumerate(entry.sig) if c in "abcdef")
        sig = entry.sig[:index] + "\\u%04x" % ord(entry.sig[index].upper()) + entry.sig[index + 1:]
        line = line.replace(entry.sig.encode(), sig.encode())
        self.assertRaises(InvalidEntry, receive, line)


class UnicodeTests(SynchronousTestCase):
    """
    Names and chat text are NFC: authors normalise, receivers refuse
    anything else.
    """

    def test_create_normalises_to_nfc(self):
        """
        An author who types NFD text and name signs the NFC form, which
        every receiver accepts.
        """
        entry = chat(text="cafe\u0301", name="Rene\u0301e")
        self.assertEqual(entry.body, {"name": "Ren\u00e9e", "text": "caf\u00e9"})
        self.assertEqual(decode_entry(json.loads(json.dumps(entry.to_wire()))), entry)

    def test_nfd_rejected(self):
        """
        A received entry whose text or name is not NFC is refused, even
        signed by its author (so no author can have two spellings either).
        """
        entry = chat(text="caf\u00e9")
        for body in ({"name": "alice", "text": "cafe\u0301"},
                     {"name": "Rene\u0301e", "text": "caf\u00e9"},
                     {"name": "alice", "text": "\u2126"}):
            unsigned = dict(entry.to_wire(), body=body)
            del unsigned["sig"]
            sig = ALICE.sign(SIGNING_CONTEXT + canonical_json(unsigned)).hex()
            signed = dict(unsigned, sig=sig)
            self.assertRaises(InvalidEntry, parse_entry, signed)

    def test_names_everywhere_nfc(self):
        """
        One definition of a name: a hello's name must be NFC too.
        """
        self.assertTrue(validate_name("Ren\u00e9e"))
        self.assertFalse(validate_name("Rene\u0301e"))
        hello = wire.hello(ALICE.node_id, "Rene\u0301e", None)
        self.assertRaises(wire.FrameError, wire.parse_frame, wire.encode_frame(hello))


class Base64Tests(SynchronousTestCase):
    """
    A dm's C{box} and C{self_box} are canonical standard base64.
    """

    def test_canonical_accepted(self):
        raw = bytes(range(256))
        for n in (1, 2, 3, 47):
            self.assertTrue(is_canonical_base64(base64.b64encode(raw[:n]).decode()))
        dm()

    def test_non_canonical_rejected(self):
        for box in ("Ym8", "Ym9=", "Ym94\n", "Ym\n94", " Ym94", "Ym94Yg", "-_-_", "Ym94====",
                    "Ym\u00e994", None, 5):
            self.assertFalse(is_canonical_base64(box), repr(box))
            self.assertRaises(InvalidEntry, dm, box=box)
        self.assertRaises(InvalidEntry, dm, self_box="c2VsZg")


class SignatureMalleabilityTests(SynchronousTestCase):
    """
    Ed25519 signatures are not malleable under libsodium: we rely on that,
    knowingly, for the uniqueness of an entry's C{sig}.
    """

    def test_s_plus_l_rejected(self):
        """
        The signature (R, S + L) verifies the same equation as (R, S); it
        must still be refused, else a relay could mint a second valid
        C{sig}, hence a second id, for any entry.
        """
        entry = chat()
        signature = bytes.fromhex(entry.sig)
        s = int.from_bytes(signature[32:], "little")
        self.assertLess(s, ED25519_L)
        forged = signature[:32] + (s + ED25519_L).to_bytes(32, "little")
        message = SIGNING_CONTEXT + canonical_json(
            {k: v for k, v in entry.to_wire().items() if k != "sig"})
        self.assertTrue(verify_signature(ALICE.node_id, message, signature))
        self.assertFalse(verify_signature(ALICE.node_id, message, forged))
        with self.assertRaises(InvalidEntry) as caught:
            decode_entry(dict(entry.to_wire(), sig=forged.hex()))
        self.assertEqual(str(caught.exception), "bad signature")


class EncodingMutationTests(SynchronousTestCase):
    """
    The "encoding mutations" class of the mutation test: re-encoding an
    entry's line never gives it a second id.
    """

    @settings(max_examples=300, deadline=None)
    @given(strategies.encoding_mutations())
    def test_encoding_mutation(self, example):
        """
        After C{wire.parse_frame} and C{entry.parse_entry}, a re-encoded
        line is either refused or yields exactly the original's id and
        canonical bytes (and then verifies).
        """
        entry, mutations, line = example
        try:
            frame = wire.parse_frame(line)
            received = parse_entry(frame["entry"])
        except (wire.FrameError, InvalidEntry):
            return
        self.assertEqual(received.id, entry.id, (mutations, line))
        self.assertEqual(canonical_json(frame["entry"]), canonical_json(entry.to_wire()))
        self.assertEqual(received.verify(), entry)

    @settings(max_examples=50, deadline=None)
    @given(strategies.varied_entries(), st.randoms(use_true_random=False))
    def test_layout_only_always_accepted(self, entry, random):
        """
        Mutations that only change layout (key order, whitespace, escapes)
        are always accepted, so the property above is not met by refusing
        everything.
        """
        text = strategies.render_json({"type": "entry", "entry": entry.to_wire()}, random,
                                      layout=True, escapes=True)
        received = receive(text.encode("utf-8"))
        self.assertEqual(received.id, entry.id)
        self.assertEqual(unicodedata.normalize("NFC", entry.body["name"]), entry.body["name"])


class MembershipHexTests(SynchronousTestCase):
    """
    A membership row signature shares the one hex form.
    """

    def test_leave_sig_lowercase_only(self):
        """
        A row C{sig} in upper case is a bad row, like an entry's.
        """
        row = {"id": ALICE.node_id, "inc": 1, "state": "left", "hb": 0,
               "name": "alice", "addr": None, "sig": "ab" * 64}
        check_row(row, {})
        with self.assertRaises(wire.FrameError):
            check_row(dict(row, sig="AB" * 64), {})


class LocalNameTests(SynchronousTestCase):
    """
    Names a user types are normalised to NFC before they are checked, so
    NFC validation never refuses an honest user's name.
    """

    def test_nick_normalised(self):
        self.assertEqual(parse_command("/nick Rene\u0301e").args, ("Ren\u00e9e",))

    def test_login_and_option_names_normalised(self):
        self.assertEqual(sanitize_name("Rene\u0301e"), "Ren\u00e9e")
        options = Options()
        options["name"] = "Rene\u0301e"
        self.assertEqual(options._name(), "Ren\u00e9e")

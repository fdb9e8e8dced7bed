"""
Tests for L{p2pchat.addresses}: the one C{HOST:PORT} parser.
"""

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.addresses import (
    AddressError,
    format_address,
    is_canonical_address,
    parse_address,
)
from p2pchat.options_checks import parse_peer


class ParseAddressTests(SynchronousTestCase):
    """
    L{parse_address} and L{is_canonical_address}.
    """

    def test_valid(self):
        """
        A host name, an IPv4 address and a bracketed IPv6 address, each
        with a port, parse into host and port and format back unchanged.
        """
        for text, parsed in [
            ("alice.example:9090", ("alice.example", 9090)),
            ("127.0.0.1:1", ("127.0.0.1", 1)),
            ("[::1]:65535", ("::1", 65535)),
        ]:
            self.assertEqual(parse_address(text), parsed)
            self.assertEqual(format_address(*parsed), text)
            self.assertTrue(is_canonical_address(text))

    def test_invalid(self):
        """
        Anything else raises L{AddressError} saying what is wrong, and is
        not a canonical address.
        """
        for text, why in [
            ("alice", "expected HOST:PORT"),
            ("::1:9090", "brackets"),
            ("[::1]9090", "[IPV6]:PORT"),
            ("[alice]:9090", "IPv6"),
            ("al ice:9090", "host name"),
            ("alice:9090 x", "65535"),
            ("alice:0", "65535"),
        ]:
            with self.assertRaises(AddressError) as caught:
                parse_address(text)
            self.assertIn(why, str(caught.exception))
            self.assertFalse(is_canonical_address(text))

    def test_leading_zero_port_is_not_canonical(self):
        """
        C{alice:09090} parses (the command line takes it) but is not the
        one accepted spelling on the wire.
        """
        self.assertEqual(parse_address("alice:09090"), ("alice", 9090))
        self.assertFalse(is_canonical_address("alice:09090"))
        self.assertFalse(is_canonical_address(None))

    def test_command_line_uses_it(self):
        """
        L{parse_peer} reports the same reason, naming the option.
        """
        self.assertEqual(str(parse_peer("[::1]:9090")), "[::1]:9090")
        with self.assertRaises(Exception) as caught:
            parse_peer("al ice:9090", "/connect")
        self.assertIn("/connect: not a valid host name", str(caught.exception))

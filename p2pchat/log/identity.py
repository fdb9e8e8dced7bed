"""
A node's Ed25519 identity: the key that signs its log entries.

The node id is the lowercase hex encoding of the 32-byte Ed25519 public
key.  It is self-certifying: anyone holding an entry can check its signature
with nothing but the author id, and nobody can pick an id without holding
its private key.  The I{short id} (first 8 hex digits) is for display only.
"""

import os

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.signing import SigningKey, VerifyKey

from p2pchat.canonical import LOWER_HEX_DIGITS, is_lower_hex

SHORT_ID_LENGTH = 8
# Lower case only: the one accepted form of hex in a signed or hashed field.
HEX_DIGITS = LOWER_HEX_DIGITS
KEY_FILE_NAME = "identity.key"


def short_id(node_id: str) -> str:
    """
    @return: the display form of C{node_id}: its first 8 hex digits.
    """
    return node_id[:SHORT_ID_LENGTH]


def is_node_id(value: object) -> bool:
    """
    @return: whether C{value} has the form of a node id (64 lowercase hex
        digits).
    """
    return is_lower_hex(value, 64)


def verify_signature(node_id: str, message: bytes, signature: bytes) -> bool:
    """
    Check an Ed25519 signature made by the holder of C{node_id}'s key.

    @return: C{True} if C{signature} is valid for C{message}.
    """
    try:
        VerifyKey(bytes.fromhex(node_id)).verify(message, signature)
    except (BadSignatureError, ValueError, CryptoError):
        return False
    return True


def seal_to(node_id: str, plaintext: bytes) -> bytes:
    """
    Encrypt C{plaintext} so that only the holder of C{node_id}'s key can
    read it: an X25519 sealed box to the Curve25519 form of the Ed25519 key.
    """
    public = VerifyKey(bytes.fromhex(node_id)).to_curve25519_public_key()
    return SealedBox(PublicKey(bytes(public))).encrypt(plaintext)


class Identity:
    """
    An Ed25519 key pair.

    @ivar node_id: the hex public key; the node's stable identity.
    """

    def __init__(self, signing_key: SigningKey):
        self._signing_key = signing_key
        self.node_id = signing_key.verify_key.encode().hex()
        self._box_key = PrivateKey(bytes(signing_key.to_curve25519_private_key()))

    @property
    def short_id(self) -> str:
        """
        The first 8 hex digits of the node id.
        """
        return short_id(self.node_id)

    @classmethod
    def generate(cls) -> "Identity":
        """
        @return: a new random identity (not saved anywhere).
        """
        return cls(SigningKey.generate())

    @classmethod
    def load_or_create(cls, directory: str) -> "Identity":
        """
        Load the identity kept in C{directory}, creating it on first use.

        The key file holds the 32-byte seed in hex and is created with mode
        0600, atomically, so a crash never leaves a half-written key.

        @raise ValueError: if the key file exists but is not a valid key.
        """
        path = os.path.join(directory, KEY_FILE_NAME)
        if os.path.exists(path):
            with open(path, "r", encoding="ascii") as f:
                text = f.read().strip()
            try:
                seed = bytes.fromhex(text)
            except ValueError:
                seed = b""
            if len(seed) != 32:
                raise ValueError(f"{path} is not a p2pchat identity key")
            return cls(SigningKey(seed))
        key = SigningKey.generate()
        temporary = path + ".tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(bytes(key).hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
        return cls(key)

    def sign(self, message: bytes) -> bytes:
        """
        @return: the 64-byte Ed25519 signature of C{message}.
        """
        return self._signing_key.sign(message).signature

    def unseal(self, box: bytes) -> bytes:
        """
        Open a sealed box made by L{seal_to} for this identity.

        @raise nacl.exceptions.CryptoError: if the box was not for us or was
            tampered with.
        """
        return SealedBox(self._box_key).decrypt(box)

"""SCRAM-SHA-256 (RFC 5802/7677) server side, as Postgres speaks it (no channel binding)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct

ITERATIONS = 4096


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


class ScramError(Exception):
    pass


class ScramServer:
    """Feed the client's two SASL messages; `first()` -> server-first, `final()` -> server-final."""

    def __init__(self, password: str, iterations: int = ITERATIONS) -> None:
        self.salt = secrets.token_bytes(16)
        self.iterations = iterations
        salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), self.salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        self.stored_key = hashlib.sha256(client_key).digest()
        self.server_key = _hmac(salted, b"Server Key")
        self.nonce = ""
        self.client_first_bare = ""
        self.server_first = ""

    def first(self, initial: bytes) -> bytes:
        """`initial` is the SASLInitialResponse body (mechanism, length, client-first-message)."""
        end = initial.find(b"\0")
        if end < 0:
            raise ScramError("malformed SASLInitialResponse")
        mech = initial[:end].decode()
        if mech != "SCRAM-SHA-256":
            raise ScramError(f"unsupported SASL mechanism {mech}")
        (ln,) = struct.unpack_from("!i", initial, end + 1)
        msg = initial[end + 5:end + 5 + ln].decode("utf-8")
        gs2, _, bare = msg.partition(",")
        authzid, _, bare = bare.partition(",")
        if gs2 not in ("n", "y") :
            raise ScramError("channel binding is not supported")
        attrs = dict(p.split("=", 1) for p in bare.split(",") if "=" in p)
        if "r" not in attrs:
            raise ScramError("missing client nonce")
        self.client_first_bare = bare
        self.nonce = attrs["r"] + base64.b64encode(secrets.token_bytes(18)).decode()
        self.server_first = (f"r={self.nonce},s={base64.b64encode(self.salt).decode()},"
                             f"i={self.iterations}")
        return self.server_first.encode()

    def final(self, response: bytes) -> bytes:
        msg = response.decode("utf-8")
        without_proof, _, proof_part = msg.rpartition(",p=")
        attrs = dict(p.split("=", 1) for p in without_proof.split(",") if "=" in p)
        if attrs.get("r") != self.nonce:
            raise ScramError("nonce mismatch")
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        proof = base64.b64decode(proof_part)
        signature = _hmac(self.stored_key, auth_message)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=False))
        if len(proof) != 32 or not hmac.compare_digest(hashlib.sha256(client_key).digest(),
                                                       self.stored_key):
            raise ScramError("invalid proof")
        server_sig = _hmac(self.server_key, auth_message)
        return b"v=" + base64.b64encode(server_sig)

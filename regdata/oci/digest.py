"""Content digests: computing them, and checking a body against the one it should have.

A signed schema1 manifest is the odd one out: its digest is over the JWS
payload, which is the manifest with its ``signatures`` removed.  libtrust
records how to rebuild that payload in each signature's protected header
(``formatLength`` bytes of the body, then the base64url ``formatTail``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from regdata.errors import DigestMismatch, MalformedContent
from regdata.oci.jsontext import decode_json

__all__ = [
    "DIGEST",
    "HEX_LENGTH",
    "compute",
    "cosign_subject",
    "is_digest",
    "is_verifiable",
    "schema1_payload",
    "verify",
]

_ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}

# The one digest pattern in regdata: the OCI image spec's grammar, ``algorithm ":" encoded``.
# What some callers add (a registered algorithm's length, lower-case hex) is a function
# below, not another pattern, so every digest is read by the same rule.
DIGEST = re.compile(r"(?P<algorithm>[a-z0-9]+(?:[+._-][a-z0-9]+)*):(?P<encoded>[a-zA-Z0-9=_-]+)")
# Lengths the OCI image spec fixes for its registered algorithms: the ones regdata verifies.
HEX_LENGTH = {"sha256": 64, "sha512": 128}
_LOWER_HEX = frozenset("0123456789abcdef")


def is_digest(text: str) -> bool:
    """Whether ``text`` is a digest by the OCI grammar (``algorithm:encoded``)."""
    return DIGEST.fullmatch(text) is not None


def is_verifiable(text: str) -> bool:
    """Whether ``text`` is a digest regdata can verify: sha256 or sha512, lower-case hex, full length."""
    match = DIGEST.fullmatch(text)
    if match is None:
        return False
    encoded = match["encoded"]
    return len(encoded) == HEX_LENGTH.get(match["algorithm"]) and _LOWER_HEX.issuperset(encoded)


def compute(data: bytes, algorithm: str = "sha256") -> str:
    """The ``algorithm:hex`` digest of ``data``."""
    try:
        hasher = _ALGORITHMS[algorithm]
    except KeyError:
        raise MalformedContent(f"unsupported digest algorithm {algorithm!r}") from None
    return f"{algorithm}:{hasher(data).hexdigest()}"


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def schema1_payload(body: bytes) -> bytes:
    """The signed payload of a schema1 ``prettyjws`` manifest, over which its digest is taken.

    An unsigned schema1 manifest is its own payload.
    """
    try:
        document = decode_json(body)
        signatures = document.get("signatures") if isinstance(document, dict) else None
        if not signatures:
            return body
        protected = decode_json(_b64url(signatures[0]["protected"]))
        length = int(protected["formatLength"])
        tail = _b64url(protected["formatTail"])
    except (ValueError, KeyError, TypeError, IndexError, binascii.Error) as exc:
        raise MalformedContent(f"schema1 manifest signature unreadable: {exc}") from None
    if not 0 <= length <= len(body):
        raise MalformedContent("schema1 manifest signature has a bad formatLength")
    return body[:length] + tail


# cosign's tag scheme: the artifacts about image ``sha256:<hex>`` are tagged ``sha256-<hex>.<suffix>``.
COSIGN_KINDS = {"sig": "signature", "att": "attestation", "sbom": "sbom"}


def cosign_subject(tag: str | None) -> tuple[str, str] | None:
    """``(kind, subject digest)`` of a tag in cosign's scheme (``sha256-<hex>.sig``), else None."""
    if not tag:
        return None
    stem, _, suffix = tag.rpartition(".")
    algorithm, dash, encoded = stem.partition("-")
    kind = COSIGN_KINDS.get(suffix)
    subject = f"{algorithm}:{encoded}"
    if kind is None or not dash or not is_verifiable(subject):
        return None
    return kind, subject


def verify(data: bytes, expected: str, what: str) -> str:
    """Check that ``data`` hashes to ``expected``; returns the digest or raises DigestMismatch."""
    algorithm = expected.split(":", 1)[0]
    actual = compute(data, algorithm)
    if actual != expected:
        raise DigestMismatch(expected, actual, what)
    return actual

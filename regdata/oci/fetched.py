"""A manifest as fetched and checked against its digest, and names read relative to a host.

What a Remote (:mod:`regdata.client.remote`) and what wraps it (the cache's
:class:`~regdata.cache.remote.CachedRemote`) share: here, below both, so the
cache never imports the client.
"""

from __future__ import annotations

from dataclasses import dataclass

from regdata.errors import InvalidReference, RegdataError
from regdata.oci.digest import compute, schema1_payload, verify
from regdata.oci.manifest import SCHEMA1_TYPES, Manifest
from regdata.oci.reference import Reference, Repository, parse_reference, parse_repository

__all__ = [
    "CONFIG_MAX_BYTES",
    "FetchedManifest",
    "as_reference",
    "as_repository",
    "check_manifest",
    "manifest_digest",
]

# The most of a config blob read: configs are a few KiB, and a body is held whole to be hashed.
CONFIG_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest as fetched: its verified digest, media type, raw body and parsed form."""

    digest: str
    media_type: str
    body: bytes
    manifest: Manifest


def manifest_digest(body: bytes, media_type: str | None) -> str:
    """The digest a registry gives this manifest (schema1: over the signed payload)."""
    if media_type in SCHEMA1_TYPES:
        return compute(schema1_payload(body))
    return compute(body)


def check_manifest(body: bytes, media_type: str | None, expected: str, what: str) -> str:
    """Verify a manifest body against ``expected``; schema1 may match by payload or body."""
    if media_type in SCHEMA1_TYPES or b'"schemaVersion": 1' in body[:200]:
        try:
            return verify(schema1_payload(body), expected, what)
        except RegdataError:
            pass
    return verify(body, expected, what)


def as_repository(name: str | Repository | Reference, registry: str) -> Repository:
    """The repository ``name`` gives, for a Remote of ``registry``.

    A string without a registry (``library/alpine``) names a repository of
    ``registry``; one naming another registry is refused, as it is not this
    host's to answer.  A Repository (or Reference) is taken as it is.
    """
    if not isinstance(name, str):
        return parse_repository(name)
    repo = parse_repository(_on_host(name, registry))
    _check_host(name, repo.registry, registry)
    return repo


def as_reference(name: str | Reference, registry: str) -> Reference:
    """The reference ``name`` gives (``app:1``, ``app@sha256:...``), for a Remote of ``registry``.

    As :func:`as_repository`; a string naming neither tag nor digest is refused.
    """
    if not isinstance(name, str):
        return name
    ref = parse_reference(_on_host(name, registry))
    _check_host(name, ref.registry, registry)
    if ref.tag is None and ref.digest is None:
        raise InvalidReference(name, "a manifest is named by a tag or a digest")
    return ref


def _on_host(name: str, registry: str) -> str:
    # Docker's rule: a first component with a dot or a colon, or "localhost", is a registry host.
    first, slash, _ = name.partition("/")
    names_host = bool(slash) and ("." in first or ":" in first or first == "localhost")
    return name if names_host else f"{registry}/{name}"


def _check_host(name: str, found: str, registry: str) -> None:
    if found != registry:
        raise InvalidReference(name, f"names registry {found}, and this Remote reads {registry}")

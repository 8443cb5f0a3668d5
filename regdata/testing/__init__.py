"""In-memory registries for tests: a :class:`~regdata.Registry` over images you build, with no server.

The Flux v1 mock remote factory.  Build images, indexes, artifacts and
schema1 manifests as real JSON bytes with real sha256 digests, push them to a
:class:`MockRegistry`, and read them back through regdata's own parsing, digest
checks, scan and row code::

    >>> from regdata.testing import MockRegistry, image, index
    >>> mock = MockRegistry()
    >>> app = image(created="2024-01-02T03:04:05Z", platform="linux/amd64",
    ...             labels={"team": "core"}, layers=[1200, 3400])
    >>> mock.push("example.com/team/app:1.0", app) == app.digest
    True
    >>> digest = mock.push("example.com/team/app:2.0", index(
    ...     image(created="2024-02-01T00:00:00Z", platform="linux/amd64", layers=[100]),
    ...     image(created="2024-02-01T00:00:00Z", platform="linux/arm64/v8", layers=[200]),
    ...     attestations=True))
    >>> mock.tag("example.com/team/app:latest", "example.com/team/app:2.0")   # a shared digest
    >>> mock.fail("example.com/team/app:broken")              # a listed tag whose manifest 404s
    >>> reg = mock.registry()                                 # a regdata.Registry; any of its options
    >>> reg.tags("example.com/team/app")
    ['1.0', '2.0', 'broken', 'latest']
    >>> df = reg.get_repository("example.com/team/app")
    >>> df[["tag", "kind", "platform", "created", "size"]]
          tag   kind        platform                   created  size
    0     2.0  index     linux/amd64 2024-02-01 00:00:00+00:00   100
    1     2.0  index  linux/arm64/v8 2024-02-01 00:00:00+00:00   200
    2  latest  index     linux/amd64 2024-02-01 00:00:00+00:00   100
    3  latest  index  linux/arm64/v8 2024-02-01 00:00:00+00:00   200
    4     1.0  image     linux/amd64 2024-01-02 03:04:05+00:00  4600
    5  broken    NaN            <NA>                       NaT  <NA>
    >>> df.loc[5, "error"]
    'NotFound: 404 from example.com/v2/team/app/manifests/broken (MANIFEST_UNKNOWN: manifest unknown)'
    >>> int((reg.requests["kind"] == "blob").sum())           # one config fetch per digest
    3

Builders (each returns a :class:`Content`: ``.digest``, ``.body``, ``.media_type``...):
:func:`image` (Docker schema2, or OCI with ``oci=True``), :func:`index`
(a manifest list or OCI index, optionally with buildkit attestations),
:func:`artifact` (an OCI artifact, e.g. a Helm chart), :func:`schema1`
(a signed Docker schema1 manifest) and :func:`raw` (any bytes as a manifest).

Faults: :meth:`MockRegistry.fail` makes requests for a repository, tag or
digest answer with an error (a 404 by default; a config blob by its digest
for a missing config), and :meth:`MockRegistry.corrupt` serves other bytes
than the stored ones (a digest mismatch, or malformed JSON).

Layer blobs are not stored (regdata never fetches them): a layer is only its
descriptor.  Signatures of schema1 manifests are not valid ones (regdata
does not check them); their digests are, computed over the signed payload.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from regdata.client.context import Context
from regdata.client.registry import Registry
from regdata.client.remote import CONFIG_MAX_BYTES, FetchedManifest, check_manifest
from regdata.errors import Cancelled, ErrorDetail, MalformedContent, RegistryError, error_for_status
from regdata.instrument.requestlog import RequestLog, RequestRecord
from regdata.oci.digest import verify
from regdata.oci.manifest import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1,
    SCHEMA1_SIGNED,
    ImageConfig,
    Platform,
    parse_config,
    parse_manifest,
)
from regdata.oci.reference import Reference, Repository, api_host, canonical_host, parse_reference
from regdata.transport.base import DEFAULT_MAX_BYTES

__all__ = [
    "DOCKER_LAYER",
    "IN_TOTO",
    "OCI_LAYER",
    "Content",
    "MockRegistry",
    "MockRemote",
    "MockRemoteFactory",
    "artifact",
    "image",
    "index",
    "raw",
    "schema1",
]

DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
IN_TOTO = "application/vnd.in-toto+json"
_EMPTY_LAYER = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"

# What a registry says in ``errors[]`` for a status, by request kind (Distribution's codes).
_UNKNOWN = {
    "tags": ("NAME_UNKNOWN", "repository name not known to registry"),
    "manifest": ("MANIFEST_UNKNOWN", "manifest unknown"),
    "manifest_head": ("MANIFEST_UNKNOWN", "manifest unknown"),
    "blob": ("BLOB_UNKNOWN", "blob unknown to registry"),
}
_CODES = {
    401: ("UNAUTHORIZED", "authentication required"),
    403: ("DENIED", "requested access to the resource is denied"),
    429: ("TOOMANYREQUESTS", "too many requests"),
}


def _sha256(data: bytes) -> str:
    # Computed here, not with regdata.oci.digest, so a bug there shows as a mismatch.
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _manifest_json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, indent=3).encode()


def _config_json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# -- content -----------------------------------------------------------------


@dataclass(frozen=True)
class Content:
    """A manifest built for a :class:`MockRegistry`, with everything it refers to.

    Attributes:
        kind: ``image``, ``index``, ``artifact``, ``schema1``, ``attestation`` or ``raw``.
        media_type: the manifest's media type (the ``Content-Type`` it is served with).
        body: the manifest's bytes, as served.
        digest: the manifest's digest (schema1: over its signed payload).
        config: the config blob's bytes (None for an index, schema1 and raw).
        config_digest: the config blob's digest.
        platform: ``os/arch[/variant]`` of an image (what an index entry declares).
        layers: the layer descriptors, as dicts.
        children: the manifests an index lists, attestations last (an artifact: its subject).
        declared_platform: the ``platform`` an index entry gives it.
    """

    kind: str
    media_type: str
    body: bytes
    digest: str
    config: bytes | None = None
    config_digest: str | None = None
    platform: str | None = None
    layers: tuple[Mapping[str, Any], ...] = ()
    children: tuple[Content, ...] = ()
    declared_platform: Mapping[str, str] | None = field(default=None, repr=False)

    def __hash__(self) -> int:
        return hash(self.digest)

    @property
    def size(self) -> int:
        """The sum of the layer sizes: the ``size`` column of an image row."""
        return sum(int(layer["size"]) for layer in self.layers)

    def descriptor(self) -> dict[str, Any]:
        """This manifest as an index entry describes it."""
        doc: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": len(self.body)}
        if self.declared_platform is not None:
            doc["platform"] = dict(self.declared_platform)
        return doc

    def walk(self) -> Iterable[Content]:
        """This manifest and every manifest under it."""
        yield self
        for child in self.children:
            yield from child.walk()


def _layer_descriptors(
    sizes: Sequence[int], media_type: str, seed: str
) -> tuple[dict[str, Any], ...]:
    layers = []
    for i, size in enumerate(sizes):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"a layer size must be a non-negative int, got {size!r}")
        digest = _sha256(f"regdata.testing layer {i} of {seed}: {size} bytes".encode())
        layers.append({"mediaType": media_type, "size": size, "digest": digest})
    return tuple(layers)


def _history_entries(
    history: Sequence[str | Mapping[str, Any]] | None, created: str | None
) -> list[dict[str, Any]] | None:
    if history is None:
        return None
    entries = []
    for step in history:
        if isinstance(step, str):
            entry: dict[str, Any] = {} if created is None else {"created": created}
            entry["created_by"] = step
            entries.append(entry)
        else:
            entries.append(dict(step))
    return entries


def _platform_doc(doc: Mapping[str, Any], fallback: Platform) -> dict[str, str]:
    def text(key: str) -> str | None:
        value = doc.get(key)
        return value if isinstance(value, str) and value else None

    out = {
        "architecture": text("architecture") or fallback.architecture,
        "os": text("os") or fallback.os,
    }
    variant = text("variant") or fallback.variant
    if variant:
        out["variant"] = variant
    os_version = text("os.version")
    if os_version:
        out["os.version"] = os_version
    return out


def image(
    *,
    created: str | None = None,
    platform: str = "linux/amd64",
    labels: Mapping[str, str] | None = None,
    layers: Sequence[int] = (),
    history: Sequence[str | Mapping[str, Any]] | None = None,
    oci: bool = False,
    annotations: Mapping[str, str] | None = None,
    config: Mapping[str, Any] | bytes | None = None,
) -> Content:
    """An image: a Docker schema2 manifest (or an OCI one with ``oci=True``) and its config.

    Args:
        created: the config's ``created``, written verbatim (RFC 3339); None leaves it out.
        platform: ``os/arch[/variant]``, written to the config (and to an index entry).
        labels: the config's ``config.Labels``.
        layers: compressed sizes of the layers, oldest first.
        history: the config's ``history``: a string is a ``created_by`` (with ``created``),
            a mapping is an entry written as is; None leaves ``history`` out.
        oci: OCI media types instead of Docker's.
        annotations: the manifest's ``annotations``.
        config: fields merged into the config (a None value removes a field), or
            the config blob's exact bytes.

    >>> img = image(created="2024-01-02T03:04:05Z", layers=[10, 20], oci=True)
    >>> img.media_type, img.size, img.platform
    ('application/vnd.oci.image.manifest.v1+json', 30, 'linux/amd64')
    """
    parsed = Platform.parse(platform)
    doc: dict[str, Any] = {"architecture": parsed.architecture}
    if parsed.variant:
        doc["variant"] = parsed.variant
    doc["os"] = parsed.os
    doc["config"] = {"Labels": dict(labels)} if labels else {}
    if created is not None:
        doc["created"] = created
    entries = _history_entries(history, created)
    if entries is not None:
        doc["history"] = entries
    seed = json.dumps([platform, created, labels, list(layers), entries], sort_keys=True, default=str)
    layer_type = OCI_LAYER if oci else DOCKER_LAYER
    descriptors = _layer_descriptors(layers, layer_type, seed)
    doc["rootfs"] = {"type": "layers", "diff_ids": [_sha256(d["digest"].encode()) for d in descriptors]}
    if isinstance(config, bytes | bytearray):
        config_bytes = bytes(config)
    else:
        for key, value in (config or {}).items():
            if value is None:
                doc.pop(key, None)
            else:
                doc[key] = value
        config_bytes = _config_json(doc)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
        "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, "size": len(config_bytes),
                   "digest": _sha256(config_bytes)},
        "layers": list(descriptors),
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    body = _manifest_json(manifest)
    declared = _platform_doc(doc if not isinstance(config, bytes | bytearray) else {}, parsed)
    return Content(
        kind="image", media_type=manifest["mediaType"], body=body, digest=_sha256(body),
        config=config_bytes, config_digest=_sha256(config_bytes), platform=str(parsed),
        layers=descriptors, declared_platform=declared,
    )


def _attestation(subject: Content) -> Content:
    statement = _config_json({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [{"name": "mock", "digest": {"sha256": subject.digest.split(":", 1)[1]}}],
        "predicate": {},
    })
    config_bytes = _config_json({
        "architecture": "unknown", "os": "unknown", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [_sha256(statement)]},
    })
    layer = {"mediaType": IN_TOTO, "digest": _sha256(statement), "size": len(statement),
             "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}}
    body = _manifest_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": _sha256(config_bytes), "size": len(config_bytes)},
        "layers": [layer],
    })
    return Content(
        kind="attestation", media_type=OCI_MANIFEST, body=body, digest=_sha256(body),
        config=config_bytes, config_digest=_sha256(config_bytes), layers=(layer,),
        declared_platform={"architecture": "unknown", "os": "unknown"},
    )


def _attestation_descriptor(attestation: Content, subject: Content) -> dict[str, Any]:
    doc = attestation.descriptor()
    doc["annotations"] = {
        "vnd.docker.reference.digest": subject.digest,
        "vnd.docker.reference.type": "attestation-manifest",
    }
    return doc


def index(
    *manifests: Content,
    oci: bool | None = None,
    attestations: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> Content:
    """A multi-platform image: a Docker manifest list, or an OCI image index.

    Args:
        manifests: the images (or artifacts, or indexes) it lists.
        oci: an OCI index; by default when attestations are asked for or any entry is OCI.
        attestations: add a buildkit attestation manifest per image, as ``docker buildx``
            does (``vnd.docker.reference.type: attestation-manifest``, platform unknown/unknown).
        annotations: the index's ``annotations``.

    >>> idx = index(image(platform="linux/amd64"), image(platform="linux/arm/v7"), attestations=True)
    >>> idx.media_type, [c.kind for c in idx.children]
    ('application/vnd.oci.image.index.v1+json', ['image', 'image', 'attestation', 'attestation'])
    """
    for child in manifests:
        if child.kind == "schema1":
            raise ValueError("an index cannot list a schema1 manifest")
    if oci is None:
        oci = attestations or any(c.media_type in (OCI_MANIFEST, OCI_INDEX) for c in manifests)
    entries = [child.descriptor() for child in manifests]
    children = list(manifests)
    if attestations:
        for child in manifests:
            if child.kind == "image":
                proof = _attestation(child)
                entries.append(_attestation_descriptor(proof, child))
                children.append(proof)
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX if oci else DOCKER_LIST,
                           "manifests": entries}
    if annotations:
        doc["annotations"] = dict(annotations)
    body = _manifest_json(doc)
    return Content(kind="index", media_type=doc["mediaType"], body=body, digest=_sha256(body),
                   children=tuple(children))


def artifact(
    artifact_type: str | None = None,
    *,
    config_media_type: str = OCI_EMPTY,
    config: bytes = b"{}",
    layers: Sequence[int] = (),
    layer_media_type: str = "application/octet-stream",
    annotations: Mapping[str, str] | None = None,
    subject: Content | None = None,
) -> Content:
    """An OCI artifact: an OCI manifest whose config is not an image config.

    The modern form sets ``artifact_type`` with the empty config; the older
    one (Helm charts) leaves it None and says what it is in ``config_media_type``.

    >>> chart = artifact(config_media_type="application/vnd.cncf.helm.config.v1+json",
    ...                  config=b'{"name":"app","version":"1.0.0"}', layers=[3000],
    ...                  layer_media_type="application/vnd.cncf.helm.chart.content.v1.tar+gzip")
    >>> chart.kind, chart.size
    ('artifact', 3000)
    """
    descriptors = _layer_descriptors(layers, layer_media_type, f"{artifact_type} {config!r}")
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    doc["config"] = {"mediaType": config_media_type, "digest": _sha256(config), "size": len(config)}
    doc["layers"] = list(descriptors)
    if subject is not None:
        doc["subject"] = {"mediaType": subject.media_type, "digest": subject.digest,
                          "size": len(subject.body)}
    if annotations:
        doc["annotations"] = dict(annotations)
    body = _manifest_json(doc)
    return Content(kind="artifact", media_type=OCI_MANIFEST, body=body, digest=_sha256(body),
                   config=config, config_digest=_sha256(config), layers=descriptors,
                   children=() if subject is None else (subject,))


def schema1(
    *,
    created: str | None = None,
    architecture: str = "amd64",
    os: str = "linux",
    labels: Mapping[str, str] | None = None,
    history: Sequence[str] | None = None,
    layers: int | None = None,
    name: str = "mock",
    tag: str = "latest",
    signed: bool = True,
) -> Content:
    """A Docker schema1 manifest (signed ``prettyjws`` by default, as registries served them).

    Args:
        created: the ``created`` of every ``v1Compatibility`` entry; None leaves it out.
        architecture, os: of the image.
        labels: the newest entry's ``config.Labels``.
        history: the ``created_by`` of each step, oldest first (schema1 has one per layer).
        layers: how many layers; by default one per history step, or one.
        name, tag: the manifest's own ``name`` and ``tag`` fields (regdata ignores them).
        signed: a ``prettyjws`` manifest whose digest is over its payload; else unsigned.

    >>> old = schema1(created="2016-05-01T00:00:00Z", history=["ADD rootfs /", "CMD sh"])
    >>> old.kind, old.media_type
    ('schema1', 'application/vnd.docker.distribution.manifest.v1+prettyjws')
    """
    steps = list(history) if history is not None else []
    count = layers if layers is not None else max(len(steps), 1)
    if steps and len(steps) != count:
        raise ValueError(f"schema1 has one history step per layer: {len(steps)} steps, {count} layers")
    steps = steps or [""] * count
    ids = [hashlib.sha256(f"{name}:{tag}:{i}:{s}".encode()).hexdigest() for i, s in enumerate(steps)]
    compat: list[dict[str, Any]] = []
    for i, step in enumerate(steps):  # oldest first here; reversed below
        entry: dict[str, Any] = {"id": ids[i]}
        if i > 0:
            entry["parent"] = ids[i - 1]
        if created is not None:
            entry["created"] = created
        entry["container_config"] = {"Cmd": [step] if step else None}
        compat.append(entry)
    top = compat[-1]
    top.update(architecture=architecture, os=os, config={"Labels": dict(labels) if labels else None})
    doc = {
        "schemaVersion": 1,
        "name": name,
        "tag": tag,
        "architecture": architecture,
        "fsLayers": [{"blobSum": _EMPTY_LAYER} for _ in range(count)],
        "history": [{"v1Compatibility": _config_json(e).decode()} for e in reversed(compat)],
    }
    payload = _manifest_json(doc)
    if not signed:
        return Content(kind="schema1", media_type=SCHEMA1, body=payload, digest=_sha256(payload),
                       platform=f"{os}/{architecture}")
    # libtrust's layout: the payload up to its final "\n}", the signatures, then that tail.
    cut = payload.rindex(b"\n}")
    protected = _b64url(_config_json({
        "formatLength": cut, "formatTail": _b64url(payload[cut:]), "time": "2016-05-01T00:00:00Z",
    }))
    signature = {
        "header": {"jwk": {"crv": "P-256", "kid": "MOCK:MOCK", "kty": "EC", "x": "AA", "y": "AA"},
                   "alg": "ES256"},
        "signature": _b64url(b"not a real signature"),
        "protected": protected,
    }
    signatures = b',\n   "signatures": ' + json.dumps([signature], indent=3).encode()
    body = payload[:cut] + signatures + payload[cut:]
    return Content(kind="schema1", media_type=SCHEMA1_SIGNED, body=body, digest=_sha256(payload),
                   platform=f"{os}/{architecture}")


def raw(body: bytes | str, media_type: str = DOCKER_MANIFEST) -> Content:
    """Any bytes served as a manifest of ``media_type``, under their true digest.

    For what the builders do not make: malformed JSON, unknown media types.

    >>> raw(b'{"schemaVersion": 2, "mediaType": ').kind
    'raw'
    """
    data = body.encode() if isinstance(body, str) else bytes(body)
    return Content(kind="raw", media_type=media_type, body=data, digest=_sha256(data))


# -- the registry ------------------------------------------------------------


@dataclass
class _Fault:
    error: Exception | int | None  # None: serve ``body`` instead
    body: bytes | None
    times: int | None

    def take(self) -> bool:
        """Whether this fault fires now (and count it)."""
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True


@dataclass
class _Repo:
    tags: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, Content] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    listed: set[str] = field(default_factory=set)  # tags listed though never pushed (faults)
    faults: dict[str, _Fault] = field(default_factory=dict)  # "" (the tag list), tag or digest

    def store(self, content: Content) -> None:
        for item in content.walk():
            self.manifests[item.digest] = item
            if item.config is not None and item.config_digest is not None:
                self.blobs[item.config_digest] = item.config


@dataclass(frozen=True)
class _Answer:
    body: bytes
    media_type: str | None
    digest: str | None


class MockRegistry:
    """Registries held in memory: repositories, tags, manifests and config blobs, and faults.

    One MockRegistry can hold repositories of any number of hosts; references
    name them as usual (``example.com/team/app:1.0``, ``alpine`` for Docker Hub).

    Args:
        latency: seconds each request takes (cancellation and budgets cut it short).
    """

    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = latency
        #: Every request any client made, as ``(kind, reference)``, in order.
        self.calls: list[tuple[str, str]] = []
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        with self._lock:
            return f"MockRegistry({len(self._repos)} repositories)"

    # -- building ------------------------------------------------------------

    def _repo(self, ref: Reference | Repository, create: bool = False) -> _Repo | None:
        key = (canonical_host(ref.registry), ref.repository)
        repo = self._repos.get(key)
        if repo is None and create:
            repo = self._repos[key] = _Repo()
        return repo

    def push(self, reference: str, content: Content) -> str:
        """Store ``content`` under a tag (``latest`` when none is named) or its digest alone.

        Returns the digest. A tag pushed again moves to the new content.
        """
        ref = parse_reference(reference, default_tag=True)
        if ref.digest is not None and ref.digest != content.digest:
            raise ValueError(f"{reference}: the content's digest is {content.digest}")
        with self._lock:
            repo = self._repo(ref, create=True)
            assert repo is not None
            repo.store(content)
            if ref.tag is not None:
                repo.tags[ref.tag] = content.digest
        return content.digest

    def tag(self, reference: str, existing: str) -> None:
        """Point the tag ``reference`` at what ``existing`` (a tag or digest) names; shared digest.

        ``existing`` may be in another repository, as a cross-repository mount.
        """
        target = parse_reference(reference, default_tag=True)
        source = parse_reference(existing, default_tag=True)
        if target.tag is None or target.digest is not None:
            raise ValueError(f"{reference}: tag() needs a tag, without digest")
        with self._lock:
            repo = self._repo(source)
            digest = source.digest or (repo.tags.get(source.tag or "") if repo else None)
            if repo is None or digest is None or digest not in repo.manifests:
                raise KeyError(f"{existing} is not in the mock registry")
            content = repo.manifests[digest]
            into = self._repo(target, create=True)
            assert into is not None
            into.store(content)
            into.tags[target.tag] = digest

    def untag(self, reference: str) -> None:
        """Delete a tag; its manifest stays, reachable by digest (as in a registry)."""
        ref = parse_reference(reference, default_tag=True)
        with self._lock:
            repo = self._repo(ref)
            if repo is None or ref.tag is None or ref.tag not in repo.tags:
                raise KeyError(f"{reference} is not in the mock registry")
            del repo.tags[ref.tag]

    # -- faults --------------------------------------------------------------

    def _fault(self, reference: str, fault: _Fault) -> None:
        ref = parse_reference(reference)
        key = ref.digest or ref.tag or ""
        with self._lock:
            repo = self._repo(ref, create=True)
            assert repo is not None
            repo.faults[key] = fault
            if ref.tag is not None and ref.digest is None:
                repo.listed.add(ref.tag)

    def fail(self, reference: str, error: Exception | int = 404, *, times: int | None = None) -> None:
        """Make requests for ``reference`` fail, like a registry answering with an error.

        ``reference`` names what fails: a repository (its tag list), a tag
        (its manifest; the tag is listed even if never pushed) or a digest
        (that manifest or blob, e.g. a missing config: ``repo@<config_digest>``).
        ``error`` is an HTTP status (the matching :class:`~regdata.RegistryError`,
        with the registry's error code) or an exception to raise. ``times``:
        fail only the next that many requests.
        """
        self._fault(reference, _Fault(error, None, times))

    def corrupt(self, reference: str, body: bytes | None = None, *, times: int | None = None) -> None:
        """Serve other bytes than those stored for a tag or digest (manifest or blob).

        By default the stored bytes plus a newline: still valid JSON, but not
        the digest the registry announces (a :class:`~regdata.DigestMismatch`).
        With ``body``, those bytes (``b"{oops"`` for malformed JSON); the tag
        is listed even if never pushed.
        """
        self._fault(reference, _Fault(None, body, times))

    # -- clients -------------------------------------------------------------

    def factory(self, log: RequestLog | None = None) -> MockRemoteFactory:
        """A Remote factory over this registry, for ``Registry(factory=...)``."""
        return MockRemoteFactory(self, log if log is not None else RequestLog())

    def registry(self, **options: Any) -> Registry:
        """A :class:`~regdata.Registry` over this mock; ``options`` are Registry's own."""
        return Registry(factory=self.factory(), **options)

    # -- serving (called by MockRemote) --------------------------------------

    def _error(self, error: Exception | int, kind: str, url: str) -> Exception:
        if not isinstance(error, int):
            return error
        code = _UNKNOWN.get(kind) if error == 404 else _CODES.get(error)
        details = (ErrorDetail(*code),) if code else ()
        return error_for_status(error, url, details)

    def _check_fault(self, repo: _Repo | None, key: str, kind: str, url: str) -> _Fault | None:
        fault = repo.faults.get(key) if repo is not None else None
        if fault is None or not fault.take():
            return None
        if fault.error is not None:
            raise self._error(fault.error, kind, url)
        return fault

    def _tags(self, registry: str, repository: str, url: str) -> list[str]:
        with self._lock:
            repo = self._repos.get((registry, repository))
            self._check_fault(repo, "", "tags", url)
            if repo is None:
                raise self._error(404, "tags", url)
            return sorted(set(repo.tags) | repo.listed)

    def _catalog(self, registry: str) -> list[str]:
        with self._lock:
            return sorted(name for host, name in self._repos if host == registry)

    def _manifest(self, registry: str, ref: Reference, kind: str, url: str) -> _Answer:
        with self._lock:
            repo = self._repos.get((registry, ref.repository))
            key = ref.digest or ref.tag or "latest"
            fault = self._check_fault(repo, key, kind, url)
            digest = ref.digest or (repo.tags.get(key) if repo is not None else None)
            content = repo.manifests.get(digest) if repo is not None and digest else None
            if fault is not None and fault.body is not None:
                return _Answer(fault.body, content.media_type if content else None,
                               content.digest if content else None)
            if content is None:
                raise self._error(404, kind, url)
            body = content.body + b"\n" if fault is not None else content.body
            return _Answer(body, content.media_type, content.digest)

    def _blob(self, registry: str, repository: str, digest: str, url: str) -> bytes:
        with self._lock:
            repo = self._repos.get((registry, repository))
            fault = self._check_fault(repo, digest, "blob", url)
            data = repo.blobs.get(digest) if repo is not None else None
            if fault is not None and fault.body is not None:
                return fault.body
            if data is None:
                raise self._error(404, "blob", url)
            return data + b"\n" if fault is not None else data


class MockRemoteFactory:
    """Makes one :class:`MockRemote` per registry host, like :class:`~regdata.RemoteFactory`.

    ``log`` gets a row per request (``reg.requests``); ``calls`` lists the
    requests of this factory's Remotes as ``(kind, reference)``.
    """

    def __init__(self, server: MockRegistry, log: RequestLog | None = None) -> None:
        self.server = server
        self.log = log if log is not None else RequestLog()
        self.calls: list[tuple[str, str]] = []
        self._remotes: dict[str, MockRemote] = {}
        self._lock = threading.Lock()

    def remote(self, registry: str) -> MockRemote:
        """The MockRemote for a registry host."""
        host = canonical_host(registry)
        with self._lock:
            remote = self._remotes.get(host)
            if remote is None:
                remote = self._remotes[host] = MockRemote(host, self)
            return remote

    def cancel(self) -> None:
        """Cancel every MockRemote this factory made."""
        with self._lock:
            remotes = list(self._remotes.values())
        for remote in remotes:
            remote.cancel()

    def close(self) -> None:
        """Nothing to close; here for symmetry with the real factory."""


class MockRemote:
    """A :class:`~regdata.Remote` over a :class:`MockRegistry`: same methods, same checks.

    Manifests are parsed with :func:`regdata.oci.manifest.parse_manifest` and
    verified against their digest, blobs verified with
    :func:`regdata.oci.digest.verify`, exactly as the real Remote does.
    """

    def __init__(self, registry: str, factory: MockRemoteFactory) -> None:
        self.registry = registry
        self.api_host = api_host(registry)
        self.factory = factory
        self.context = Context()
        #: This Remote's requests, as ``(kind, reference)``.
        self.calls: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return f"MockRemote({self.registry!r})"

    def cancel(self) -> None:
        """Stop this Remote: requests not yet sent will not be sent."""
        self.context.cancel()

    def _request(
        self, kind: str, method: str, repository: str | None, target: str, path: str,
        context: Context | None, answer: Callable[[str], bytes], max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> bytes:
        if self.context.cancelled:
            raise Cancelled("cancelled")
        if context is not None:
            context.check()
        server = self.factory.server
        if server.latency > 0:
            (context or self.context).sleep(server.latency)
            self.context.check()
        call = (kind, target)
        self.calls.append(call)
        self.factory.calls.append(call)
        server.calls.append(call)
        started, clock = time.time(), time.perf_counter()
        status: int | None = 200
        error: str | None = None
        size: int | None = None
        try:
            url = f"{self.api_host}{path}"
            body = answer(url)
            if len(body) > max_bytes:
                raise MalformedContent(f"{url}: body of {len(body)} bytes is over the {max_bytes}-byte cap")
            size = len(body)
            return body
        except RegistryError as exc:
            status, error = exc.status, f"HTTP {exc.status}"
            size = len(json.dumps({"errors": [{"code": c, "message": ""} for c in exc.codes]}))
            raise
        except Exception as exc:
            status, error = None, str(exc) or type(exc).__name__
            raise
        finally:
            self.factory.log.record(RequestRecord(
                started=started, host=self.api_host, repository=repository, kind=kind, method=method,
                status=status, duration_s=time.perf_counter() - clock, bytes=size, attempt=1,
                cache="none", error=error,
            ))

    def tags(self, repo: Repository, context: Context | None = None) -> list[str]:
        """The tags of ``repo``, sorted as Distribution lists them."""
        server = self.factory.server
        found: list[str] = []

        def answer(url: str) -> bytes:
            found.extend(server._tags(self.registry, repo.repository, url))
            return json.dumps({"name": repo.repository, "tags": found}).encode()

        self._request("tags", "GET", repo.repository, str(repo), f"/v2/{repo.repository}/tags/list",
                      context, answer)
        return found

    def tag_pages(self, repo: Repository, context: Context | None = None) -> list[dict[str, Any]]:
        """The ``tags/list`` answer as a page, as Distribution sends it (no GCR manifest map)."""
        return [{"name": repo.repository, "tags": self.tags(repo, context)}]

    def catalog(self, context: Context | None = None) -> list[str]:
        """Every repository of this host."""
        server = self.factory.server
        found: list[str] = []

        def answer(url: str) -> bytes:
            found.extend(server._catalog(self.registry))
            return json.dumps({"repositories": found}).encode()

        self._request("catalog", "GET", None, self.registry, "/v2/_catalog", context, answer)
        return found

    def head(self, ref: Reference, context: Context | None = None) -> tuple[str, str | None]:
        """The digest and media type of a manifest, as a HEAD request gives them."""
        server = self.factory.server
        got: list[_Answer] = []

        def answer(url: str) -> bytes:
            got.append(server._manifest(self.registry, ref, "manifest_head", url))
            return b""

        self._request("manifest_head", "HEAD", ref.repository, str(ref),
                      f"/v2/{ref.repository}/manifests/{ref.identifier}", context, answer)
        digest = got[0].digest or ref.digest or _sha256(got[0].body)
        return digest, got[0].media_type

    def manifest(self, ref: Reference, context: Context | None = None) -> FetchedManifest:
        """The manifest ``ref`` names, parsed and verified as the real Remote does."""
        server = self.factory.server
        got: list[_Answer] = []

        def answer(url: str) -> bytes:
            got.append(server._manifest(self.registry, ref, "manifest", url))
            return got[0].body

        body = self._request("manifest", "GET", ref.repository, str(ref),
                             f"/v2/{ref.repository}/manifests/{ref.identifier}", context, answer)
        manifest = parse_manifest(body, got[0].media_type)
        media_type = manifest.media_type
        expected = ref.digest or got[0].digest
        # As the real Remote: checked against the digest asked for, else the one announced.
        digest = check_manifest(body, media_type, expected, f"manifest {ref}") if expected else _sha256(body)
        return FetchedManifest(digest, media_type, body, manifest)

    def blob(self, repo: Repository, digest: str, context: Context | None = None,
             max_bytes: int = CONFIG_MAX_BYTES) -> bytes:
        """A blob (a config) by digest, verified with :func:`regdata.oci.digest.verify`."""
        server = self.factory.server
        body = self._request(
            "blob", "GET", repo.repository, f"{repo}@{digest}", f"/v2/{repo.repository}/blobs/{digest}",
            context, lambda url: server._blob(self.registry, repo.repository, digest, url), max_bytes,
        )
        verify(body, digest, f"blob {digest} of {repo}")
        return body

    def config(self, repo: Repository, digest: str, context: Context | None = None) -> ImageConfig:
        """An image config by digest: :meth:`blob`, parsed."""
        return parse_config(self.blob(repo, digest, context))

    def known_manifest(self, ref: Reference, hits: list[Callable[[], None]] | None = None
                       ) -> FetchedManifest | None:
        """None: the mock keeps nothing between requests, so every read is a request."""
        return None

    def known_config(self, repo: Repository, digest: str, hits: list[Callable[[], None]] | None = None
                     ) -> ImageConfig | None:
        """None, as :meth:`known_manifest`."""
        return None

"""The content a :class:`~regdata.testing.MockRegistry` serves, built as real bytes.

Manifests and configs are real JSON with real sha256 digests (computed with
hashlib here, not with :mod:`regdata.oci.digest`, so a bug there shows as a
mismatch).  Layer blobs are only their descriptors: regdata never fetches them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
    Platform,
)

__all__ = ["DOCKER_LAYER", "IN_TOTO", "OCI_LAYER", "Content", "artifact", "image", "index", "raw", "schema1"]

DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
IN_TOTO = "application/vnd.in-toto+json"
_EMPTY_LAYER = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"


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


def _layer_descriptors(sizes: Sequence[int], media_type: str, seed: str) -> tuple[dict[str, Any], ...]:
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
        "config": {
            "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
            "size": len(config_bytes),
            "digest": _sha256(config_bytes),
        },
        "layers": list(descriptors),
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    body = _manifest_json(manifest)
    declared = _platform_doc(doc if not isinstance(config, bytes | bytearray) else {}, parsed)
    return Content(
        kind="image",
        media_type=manifest["mediaType"],
        body=body,
        digest=_sha256(body),
        config=config_bytes,
        config_digest=_sha256(config_bytes),
        platform=str(parsed),
        layers=descriptors,
        declared_platform=declared,
    )


def _attestation(subject: Content) -> Content:
    statement = _config_json(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://spdx.dev/Document",
            "subject": [{"name": "mock", "digest": {"sha256": subject.digest.split(":", 1)[1]}}],
            "predicate": {},
        }
    )
    config_bytes = _config_json(
        {
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [_sha256(statement)]},
        }
    )
    layer = {
        "mediaType": IN_TOTO,
        "digest": _sha256(statement),
        "size": len(statement),
        "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"},
    }
    body = _manifest_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _sha256(config_bytes), "size": len(config_bytes)},
            "layers": [layer],
        }
    )
    return Content(
        kind="attestation",
        media_type=OCI_MANIFEST,
        body=body,
        digest=_sha256(body),
        config=config_bytes,
        config_digest=_sha256(config_bytes),
        layers=(layer,),
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
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX if oci else DOCKER_LIST,
        "manifests": entries,
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    body = _manifest_json(doc)
    return Content(
        kind="index", media_type=doc["mediaType"], body=body, digest=_sha256(body), children=tuple(children)
    )


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
        doc["subject"] = {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": len(subject.body),
        }
    if annotations:
        doc["annotations"] = dict(annotations)
    body = _manifest_json(doc)
    return Content(
        kind="artifact",
        media_type=OCI_MANIFEST,
        body=body,
        digest=_sha256(body),
        config=config,
        config_digest=_sha256(config),
        layers=descriptors,
        children=() if subject is None else (subject,),
    )


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
        return Content(
            kind="schema1",
            media_type=SCHEMA1,
            body=payload,
            digest=_sha256(payload),
            platform=f"{os}/{architecture}",
        )
    # libtrust's layout: the payload up to its final "\n}", the signatures, then that tail.
    cut = payload.rindex(b"\n}")
    protected = _b64url(
        _config_json(
            {
                "formatLength": cut,
                "formatTail": _b64url(payload[cut:]),
                "time": "2016-05-01T00:00:00Z",
            }
        )
    )
    signature = {
        "header": {
            "jwk": {"crv": "P-256", "kid": "MOCK:MOCK", "kty": "EC", "x": "AA", "y": "AA"},
            "alg": "ES256",
        },
        "signature": _b64url(b"not a real signature"),
        "protected": protected,
    }
    signatures = b',\n   "signatures": ' + json.dumps([signature], indent=3).encode()
    body = payload[:cut] + signatures + payload[cut:]
    return Content(
        kind="schema1",
        media_type=SCHEMA1_SIGNED,
        body=body,
        digest=_sha256(payload),
        platform=f"{os}/{architecture}",
    )


def raw(body: bytes | str, media_type: str = DOCKER_MANIFEST) -> Content:
    """Any bytes served as a manifest of ``media_type``, under their true digest.

    For what the builders do not make: malformed JSON, unknown media types.

    >>> raw(b'{"schemaVersion": 2, "mediaType": ').kind
    'raw'
    """
    data = body.encode() if isinstance(body, str) else bytes(body)
    return Content(kind="raw", media_type=media_type, body=data, digest=_sha256(data))

"""Build images, indexes and artifacts and push them through the registry HTTP API.

Plain ``requests`` only; regdata is never imported, so what the library reads back can be
compared with bytes and digests that were computed independently of it.

Typical use::

    b = Builder(registry.url)
    img = b.push_image("team/app", ImageSpec(labels={"a": "1"}), tags=["v1"])
    idx = b.push_multiarch("team/app", ["linux/amd64", "linux/arm/v7"], tags=["latest"],
                           attest=True)
    img.digest, img.manifest_bytes, img.config_digest, idx.children[0].digest
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import io
import json
import tarfile
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from .token_server import libtrust_key_id

__all__ = [
    "ACCEPT_ALL",
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "EMPTY_CONFIG",
    "EMPTY_TAR_GZ",
    "HELM_CHART",
    "HELM_CONFIG",
    "IN_TOTO",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "SCHEMA1",
    "SCHEMA1_SIGNED",
    "ZERO_TIME",
    "ArtifactSpec",
    "Blob",
    "Builder",
    "History",
    "ImageSpec",
    "Layer",
    "Platform",
    "PushError",
    "Pushed",
    "Schema1Spec",
    "attestation_spec",
    "digest_of",
    "helm_chart_spec",
    "schema1_payload",
    "sign_schema1",
]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"

ACCEPT_ALL = ", ".join(
    [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST, SCHEMA1_SIGNED, SCHEMA1]
)

ZERO_TIME = "0001-01-01T00:00:00Z"
DEFAULT_CREATED = "2024-01-02T03:04:05Z"

# Docker's gzipped empty tar (1024 zero bytes), the layer of every schema1 "throwaway"
# history entry: its digest sha256:a3ed95ca... is a well-known constant clients may test.
EMPTY_TAR_GZ = bytes(
    [31, 139, 8, 0, 0, 9, 110, 136, 0, 255, 98, 24, 5, 163, 96, 20, 140, 88, 0, 8, 0, 0, 255, 255,
     46, 175, 181, 239, 0, 4, 0, 0]
)  # fmt: skip

Format = Literal["docker", "oci"]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _dumps(obj: Any, indent: int | None) -> bytes:
    if indent is None:
        return json.dumps(obj, separators=(",", ":")).encode()
    return json.dumps(obj, indent=indent).encode()


# --------------------------------------------------------------------------- blobs


@dataclass(frozen=True)
class Blob:
    """A blob with its media type, ready to be a descriptor."""

    data: bytes
    media_type: str
    annotations: Mapping[str, str] | None = None
    urls: tuple[str, ...] = ()
    # For blobs described but never uploaded (foreign layers): the descriptor's values.
    known_digest: str | None = None
    known_size: int | None = None

    @property
    def digest(self) -> str:
        return self.known_digest or digest_of(self.data)

    @property
    def size(self) -> int:
        return self.known_size if self.known_size is not None else len(self.data)

    def descriptor(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.urls:
            d["urls"] = list(self.urls)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d


EMPTY_CONFIG = Blob(b"{}", OCI_EMPTY)


def _tar_gz(files: Mapping[str, bytes]) -> tuple[bytes, bytes]:
    """(gzip, tar) of ``files``, byte-for-byte reproducible (zero mtimes, no owners)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, compresslevel=6, mtime=0), tar_bytes


def _stream(seed: str, size: int) -> bytes:
    return hashlib.shake_256(seed.encode()).digest(size) if size else b""


@dataclass(frozen=True)
class Layer:
    """A layer blob. ``media_type=None`` takes the manifest format's gzip layer type.

    ``diff_id`` is the digest of the uncompressed layer, as the image config lists it.
    ``upload=False`` is for foreign layers, which a registry does not hold.
    """

    data: bytes
    media_type: str | None = None
    diff_id: str = ""
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] | None = None
    upload: bool = True
    known_digest: str | None = None
    known_size: int | None = None

    def __post_init__(self) -> None:
        if not self.diff_id and self.known_digest:
            object.__setattr__(self, "diff_id", self.known_digest)
        if not self.diff_id:
            try:
                raw = gzip.decompress(self.data)
            except (OSError, EOFError):
                raw = self.data
            object.__setattr__(self, "diff_id", digest_of(raw))

    @classmethod
    def from_seed(cls, seed: str, size: int | None = None, media_type: str | None = None) -> Layer:
        """A deterministic layer: a small valid tar.gz, or exactly ``size`` pseudo-random bytes
        (not a tar: for size arithmetic, where only the byte count matters)."""
        if size is not None:
            return cls(_stream(seed, size), media_type)
        content = hashlib.sha256(seed.encode()).hexdigest().encode() + b"\n"
        gz, _ = _tar_gz({f"layer/{hashlib.sha1(seed.encode()).hexdigest()[:12]}": content})
        return cls(gz, media_type)

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], media_type: str | None = None) -> Layer:
        gz, tar = _tar_gz(files)
        return cls(gz, media_type, diff_id=digest_of(tar))

    @classmethod
    def foreign(cls, digest: str | None = None, size: int = 1024, seed: str = "") -> Layer:
        """A Windows-style foreign layer, never uploaded: Distribution does not look for
        it, so the descriptor may carry any digest and size (a real one, say). Its URL is
        on loopback port 9 so nothing that follows it can leave the machine."""
        digest = digest or digest_of(_stream(seed or "foreign", 64))
        url = f"http://127.0.0.1:9/foreign/{digest}"
        return cls(
            b"",
            DOCKER_FOREIGN_LAYER,
            diff_id=digest,
            urls=(url,),
            upload=False,
            known_digest=digest,
            known_size=size,
        )

    @property
    def digest(self) -> str:
        return self.known_digest or digest_of(self.data)

    @property
    def size(self) -> int:
        return self.known_size if self.known_size is not None else len(self.data)

    def blob(self, default_media_type: str) -> Blob:
        return Blob(
            self.data,
            self.media_type or default_media_type,
            self.annotations,
            self.urls,
            self.known_digest,
            self.known_size,
        )


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str | Platform) -> Platform:
        """``linux/arm/v7`` → Platform; ``windows/amd64:10.0.17763.1`` sets os.version."""
        if isinstance(text, Platform):
            return text
        text, _, os_version = text.partition(":")
        parts = text.split("/")
        if len(parts) not in (2, 3):
            raise ValueError(f"bad platform {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None, os_version or None)

    def json(self) -> dict[str, Any]:
        """The platform object of an index entry (also the config's platform fields)."""
        d: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            d["os.version"] = self.os_version
        if self.os_features:
            d["os.features"] = list(self.os_features)
        if self.variant:
            d["variant"] = self.variant
        return d

    def __str__(self) -> str:
        s = f"{self.os}/{self.architecture}"
        if self.variant:
            s += f"/{self.variant}"
        if self.os_version:
            s += f":{self.os_version}"
        return s


UNKNOWN_PLATFORM = Platform("unknown", "unknown")


@dataclass(frozen=True)
class History:
    created: str | None = None
    created_by: str | None = None
    empty_layer: bool = False
    comment: str | None = None
    author: str | None = None

    def json(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.created is not None:
            d["created"] = self.created
        if self.author is not None:
            d["author"] = self.author
        if self.created_by is not None:
            d["created_by"] = self.created_by
        if self.comment is not None:
            d["comment"] = self.comment
        if self.empty_layer:
            d["empty_layer"] = True
        return d


def _default_layers() -> tuple[Layer, ...]:
    return (Layer.from_seed("regdata-default-layer"),)


@dataclass(frozen=True)
class ImageSpec:
    """An image: config fields, layers and manifest format.

    ``created=None`` leaves ``created`` out of the config. ``history=None`` writes one
    entry per layer (at ``created``); ``history=()`` leaves ``history`` out.
    ``config_extra`` is merged last into the config's top level, ``manifest_extra`` into the
    manifest's. ``indent`` shapes the manifest JSON (None: compact; docker pushes 3).
    """

    layers: Sequence[Layer] = field(default_factory=_default_layers)
    platform: Platform = Platform()
    format: Format = "docker"
    created: str | None = DEFAULT_CREATED
    history: Sequence[History] | None = None
    labels: Mapping[str, str] | None = None
    env: Sequence[str] | None = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    cmd: Sequence[str] | None = ("/bin/sh",)
    entrypoint: Sequence[str] | None = None
    shell: Sequence[str] | None = None
    author: str | None = None
    config_extra: Mapping[str, Any] = field(default_factory=dict)
    config_media_type: str | None = None
    annotations: Mapping[str, str] | None = None
    manifest_extra: Mapping[str, Any] = field(default_factory=dict)
    indent: int | None = None

    def replace(self, **changes: Any) -> ImageSpec:
        return dataclasses.replace(self, **changes)

    @property
    def manifest_media_type(self) -> str:
        return DOCKER_MANIFEST if self.format == "docker" else OCI_MANIFEST

    @property
    def layer_media_type(self) -> str:
        return DOCKER_LAYER if self.format == "docker" else OCI_LAYER

    def config_json(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {}
        if self.created is not None:
            cfg["created"] = self.created
        if self.author is not None:
            cfg["author"] = self.author
        cfg.update(self.platform.json())
        inner: dict[str, Any] = {}
        if self.env is not None:
            inner["Env"] = list(self.env)
        if self.entrypoint is not None:
            inner["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            inner["Cmd"] = list(self.cmd)
        if self.shell is not None:
            inner["Shell"] = list(self.shell)
        if self.labels is not None:
            inner["Labels"] = dict(self.labels)
        cfg["config"] = inner
        cfg["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]}
        history = self.history
        if history is None:
            history = [
                History(created=self.created, created_by=f"/bin/sh -c #(nop) ADD layer {i}")
                for i in range(len(self.layers))
            ]
        if history:
            cfg["history"] = [h.json() for h in history]
        cfg.update(self.config_extra)
        return cfg

    def config_blob(self) -> Blob:
        media_type = self.config_media_type or (DOCKER_CONFIG if self.format == "docker" else OCI_CONFIG)
        return Blob(_dumps(self.config_json(), None), media_type)

    def layer_blobs(self) -> list[Blob]:
        return [layer.blob(self.layer_media_type) for layer in self.layers]

    def manifest(self) -> tuple[bytes, Blob, list[Blob]]:
        config = self.config_blob()
        layers = self.layer_blobs()
        m: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.manifest_media_type,
            "config": config.descriptor(),
            "layers": [b.descriptor() for b in layers],
        }
        if self.annotations:
            m["annotations"] = dict(self.annotations)
        m.update(self.manifest_extra)
        return _dumps(m, self.indent), config, layers


@dataclass(frozen=True)
class ArtifactSpec:
    """An OCI artifact manifest (an OCI image manifest with ``artifactType``)."""

    artifact_type: str | None = "application/vnd.example.regdata.v1+json"
    config: Blob = EMPTY_CONFIG
    blobs: Sequence[Blob] = (Blob(b'{"hello":"artifact"}', "application/vnd.example.data+json"),)
    annotations: Mapping[str, str] | None = None
    subject: Mapping[str, Any] | None = None
    platform: Platform | None = None
    manifest_extra: Mapping[str, Any] = field(default_factory=dict)
    indent: int | None = None

    def manifest(self) -> tuple[bytes, Blob, list[Blob]]:
        m: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
        if self.artifact_type is not None:
            m["artifactType"] = self.artifact_type
        m["config"] = self.config.descriptor()
        m["layers"] = [b.descriptor() for b in self.blobs]
        if self.subject is not None:
            m["subject"] = dict(self.subject)
        if self.annotations:
            m["annotations"] = dict(self.annotations)
        m.update(self.manifest_extra)
        return _dumps(m, self.indent), self.config, list(self.blobs)


def helm_chart_spec(name: str = "mychart", version: str = "0.1.0") -> ArtifactSpec:
    """A Helm chart as helm pushes it: a non-image config type and no artifactType."""
    config = {"name": name, "version": version, "apiVersion": "v2", "type": "application"}
    chart, _ = _tar_gz({f"{name}/Chart.yaml": f"name: {name}\nversion: {version}\n".encode()})
    return ArtifactSpec(
        artifact_type=None,
        config=Blob(_dumps(config, None), HELM_CONFIG),
        blobs=(Blob(chart, HELM_CHART),),
        annotations={
            "org.opencontainers.image.title": name,
            "org.opencontainers.image.version": version,
        },
    )


def attestation_spec(
    image_digest: str, seeds: Sequence[str] | None = None, statements: int = 2
) -> ArtifactSpec:
    """A buildkit attestation manifest for ``image_digest``: an OCI image manifest whose
    config is an ``unknown/unknown`` image config and whose layers are in-toto statements
    (one per seed; by default ``statements`` seeded from the image digest)."""
    if seeds is None:
        seeds = [f"{image_digest}#{i}" for i in range(statements)]
    predicates = ["https://spdx.dev/Document", "https://slsa.dev/provenance/v0.2"]
    blobs = []
    for i, seed in enumerate(seeds):
        predicate = predicates[i % len(predicates)]
        statement = {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": predicate,
            "subject": [{"name": "_", "digest": {"sha256": image_digest.split(":", 1)[-1]}}],
            "predicate": {"seed": seed},
        }
        blobs.append(Blob(_dumps(statement, None), IN_TOTO, {"in-toto.io/predicate-type": predicate}))
    config = {
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [b.digest for b in blobs]},
    }
    return ArtifactSpec(
        artifact_type=None,
        config=Blob(_dumps(config, None), OCI_CONFIG),
        blobs=tuple(blobs),
        platform=UNKNOWN_PLATFORM,
    )


# --------------------------------------------------------------------------- schema1


@cache
def _schema1_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def sign_schema1(payload: bytes, key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    """Sign a schema1 manifest the way libtrust does (ES256, JWK in the header).

    ``payload`` must be pretty JSON ending in ``}``; Distribution rebuilds it from the
    signed bytes as ``content[:formatLength] + formatTail``, and the manifest digest is
    the digest of ``payload``.
    """
    key = key or _schema1_key()
    text = payload.decode()
    close = len(text.rstrip()) - 1
    if text[close] != "}":
        raise ValueError("schema1 payload must be a JSON object")
    format_length = len(text[:close].rstrip())
    tail = payload[format_length:]
    protected = _b64url(
        json.dumps(
            {
                "formatLength": format_length,
                "formatTail": _b64url(tail),
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            separators=(",", ":"),
        ).encode()
    )
    signing_input = f"{protected}.{_b64url(payload)}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    numbers = key.public_key().public_numbers()
    jwk = {
        "crv": "P-256",
        "kid": libtrust_key_id(key.public_key()),
        "kty": "EC",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }
    signatures = [
        {
            "header": {"jwk": jwk, "alg": "ES256"},
            "signature": _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
            "protected": protected,
        }
    ]
    # libtrust's PrettySignature: the payload up to formatLength, then the signatures
    # indented like the payload.
    sig_json = json.dumps(signatures, indent=3).replace("\n", "\n   ")
    return payload[:format_length] + b',\n   "signatures": ' + sig_json.encode() + b"\n}"


def schema1_payload(signed: bytes) -> bytes:
    """The payload of a signed schema1 manifest (what its digest is computed over), rebuilt
    as libtrust does from the first signature's formatLength and formatTail."""
    sig = json.loads(signed)["signatures"][0]
    protected = sig["protected"]
    header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
    tail = header["formatTail"]
    return signed[: header["formatLength"]] + base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4))


@dataclass(frozen=True)
class Schema1Spec:
    """A Docker v2 schema1 image. Layers and history run bottom to top (as in ImageSpec);
    the manifest lists them top first. An ``empty_layer`` history entry gets the empty tar."""

    layers: Sequence[Layer] = field(default_factory=_default_layers)
    history: Sequence[History] | None = None
    architecture: str = "amd64"
    os: str = "linux"
    created: str | None = DEFAULT_CREATED
    labels: Mapping[str, str] | None = None
    cmd: Sequence[str] | None = ("/bin/sh",)
    docker_version: str = "17.06.2-ce"
    signed: bool = True

    def entries(self) -> list[tuple[Blob, History]]:
        """(layer blob, history) pairs, bottom first."""
        history = self.history
        if history is None:
            history = [
                History(created=self.created, created_by=f"/bin/sh -c #(nop) ADD layer {i}")
                for i in range(len(self.layers))
            ]
        empty = Blob(EMPTY_TAR_GZ, DOCKER_LAYER)
        layers = iter(self.layers)
        out = []
        for h in history:
            blob = empty if h.empty_layer else next(layers).blob(DOCKER_LAYER)
            out.append((blob, h))
        rest = list(layers)
        if rest:
            raise ValueError(f"{len(rest)} layers have no history entry")
        return out

    def payload(self, name: str, tag: str) -> tuple[bytes, list[Blob]]:
        entries = self.entries()
        v1: list[str] = []
        parent = ""
        for i, (blob, h) in enumerate(entries):
            layer_id = hashlib.sha256(f"{parent}|{blob.digest}|{i}".encode()).hexdigest()
            entry: dict[str, Any] = {}
            top = i == len(entries) - 1
            if top:
                entry["architecture"] = self.architecture
                config: dict[str, Any] = {}
                if self.cmd is not None:
                    config["Cmd"] = list(self.cmd)
                if self.labels is not None:
                    config["Labels"] = dict(self.labels)
                entry["config"] = config
            entry["id"] = layer_id
            if parent:
                entry["parent"] = parent
            created = h.created if h.created is not None else self.created
            if created is not None:
                entry["created"] = created
            entry["container_config"] = {"Cmd": [h.created_by or ""]}
            if top:
                entry["docker_version"] = self.docker_version
                entry["os"] = self.os
            if h.empty_layer:
                entry["throwaway"] = True
            v1.append(json.dumps(entry, separators=(",", ":")))
            parent = layer_id
        manifest = {
            "schemaVersion": 1,
            "name": name,
            "tag": tag,
            "architecture": self.architecture,
            "fsLayers": [{"blobSum": b.digest} for b, _ in reversed(entries)],
            "history": [{"v1Compatibility": s} for s in reversed(v1)],
        }
        # Go's json.MarshalIndent with three spaces, as docker wrote schema1 manifests.
        return json.dumps(manifest, indent=3).encode(), [b for b, _ in entries]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Pushed:
    """What was pushed: exact manifest bytes and digest, config and layer blobs, children.

    For schema1, ``manifest_bytes`` is the unsigned payload (what the digest is over) and
    ``signed_bytes`` what was sent; the registry serves the payload under signatures of
    its own, so compare ``schema1_payload(served)`` with ``manifest_bytes``.
    """

    repo: str
    digest: str
    media_type: str
    manifest_bytes: bytes
    tags: tuple[str, ...] = ()
    config: Blob | None = None
    layers: tuple[Blob, ...] = ()
    platform: Platform | None = None
    children: tuple[Pushed, ...] = ()
    attestations: tuple[Pushed, ...] = ()
    signed_bytes: bytes | None = None  # schema1 only: the signed manifest that was sent

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(json.loads(self.manifest_bytes))

    @property
    def size(self) -> int:
        return len(self.manifest_bytes)

    @property
    def config_digest(self) -> str | None:
        return self.config.digest if self.config else None

    @property
    def config_json(self) -> dict[str, Any] | None:
        return dict(json.loads(self.config.data)) if self.config else None

    @property
    def layer_digests(self) -> list[str]:
        return [b.digest for b in self.layers]

    @property
    def ref(self) -> str:
        return f"{self.repo}@{self.digest}"

    def descriptor(self, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.platform is not None:
            d["platform"] = self.platform.json()
        if annotations:
            d["annotations"] = dict(annotations)
        return d


class PushError(RuntimeError):
    def __init__(self, what: str, response: requests.Response) -> None:
        self.response = response
        self.status = response.status_code
        super().__init__(
            f"{what}: {response.request.method} {response.url} → {response.status_code} {response.text[:500]}"
        )


# --------------------------------------------------------------------------- builder


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    i = 0
    while i < len(rest):
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip(" ,")
        i = eq + 1
        if i < len(rest) and rest[i] == '"':
            end = rest.find('"', i + 1)
            end = len(rest) if end < 0 else end
            params[key.lower()] = rest[i + 1 : end]
            i = end + 1
        else:
            end = rest.find(",", i)
            end = len(rest) if end < 0 else end
            params[key.lower()] = rest[i:end].strip()
            i = end
        i += 1 if i < len(rest) and rest[i] == "," else 0
    return scheme.lower(), params


class Builder:
    """Pushes to one registry. Credentials (if any) answer Basic challenges directly and
    Bearer challenges by asking the realm for ``repository:<repo>:pull,push`` (plus the
    scope the registry named)."""

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        verify: bool | str = True,
        token_getter: Callable[[str, Mapping[str, str]], str] | None = None,
        auth: requests.auth.AuthBase | None = None,
        timeout: float = 30.0,
    ) -> None:
        """``token_getter(scopes, challenge_params)`` replaces the built-in realm request
        (scopes space-separated); ``auth`` is set on the session for custom schemes."""
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.token_getter = token_getter
        self.session = requests.Session()
        self.session.verify = verify
        self.session.trust_env = False  # loopback only: never route through a proxy
        self.session.auth = auth
        self._basic = False
        self._tokens: dict[str, str] = {}
        # Blobs this builder uploaded or saw, per repo: pushing many tags of real images
        # re-uses layers thousands of times, and a HEAD each time doubles the push time.
        # delete_blob() forgets; forget() drops all (after deleting behind its back).
        self._known_blobs: set[tuple[str, str]] = set()
        self.requests_made = 0

    def forget(self) -> None:
        """Drop the memory of which blobs exist (after deleting them by other means)."""
        self._known_blobs.clear()

    def close(self) -> None:
        self.session.close()

    # -- HTTP with auth
    def _auth_headers(self, key: str) -> dict[str, str]:
        if key in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[key]}"}
        if self._basic and self.username is not None:
            raw = f"{self.username}:{self.password or ''}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def _fetch_token(self, params: Mapping[str, str], repo: str | None) -> str:
        scopes = []
        if repo:
            scopes.append(f"repository:{repo}:pull,push")
        for s in params.get("scope", "").split(" "):
            if s and s not in scopes:
                scopes.append(s)
        if self.token_getter is not None:
            return self.token_getter(" ".join(scopes), params)
        query: list[tuple[str, str]] = [("service", params.get("service", ""))]
        query += [("scope", s) for s in scopes]
        auth = (self.username, self.password or "") if self.username is not None else None
        r = self.session.get(params["realm"], params=query, auth=auth, timeout=self.timeout)
        if r.status_code != 200:
            raise PushError("token request failed", r)
        body = r.json()
        return str(body.get("token") or body["access_token"])

    def request(
        self, method: str, path_or_url: str, *, repo: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """A request to the registry (``/v2/...`` or an absolute URL), answering one
        auth challenge."""
        url = path_or_url if "://" in path_or_url else self.url + path_or_url
        key = repo or ""
        headers = dict(kwargs.pop("headers", None) or {})
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("allow_redirects", False)
        r = self.session.request(method, url, headers={**headers, **self._auth_headers(key)}, **kwargs)
        self.requests_made += 1
        if r.status_code != 401:
            return r
        scheme, params = _parse_challenge(r.headers.get("WWW-Authenticate", ""))
        if scheme == "basic" and self.username is not None and not self._basic:
            self._basic = True
        elif scheme == "bearer" and "realm" in params:
            self._tokens[key] = self._fetch_token(params, repo)
        else:
            return r
        r = self.session.request(method, url, headers={**headers, **self._auth_headers(key)}, **kwargs)
        self.requests_made += 1
        return r

    # -- blobs
    def blob_exists(self, repo: str, digest: str) -> bool:
        r = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", repo=repo)
        return r.status_code == 200

    def push_blob(self, repo: str, blob: Blob | Layer | bytes, *, check: bool = True) -> str:
        """Monolithic upload (POST then PUT ?digest=); skipped if the blob is there."""
        data = blob if isinstance(blob, bytes) else blob.data
        digest = digest_of(data)
        if check and ((repo, digest) in self._known_blobs or self.blob_exists(repo, digest)):
            self._known_blobs.add((repo, digest))
            return digest
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/", repo=repo)
        if r.status_code != 202:
            raise PushError(f"start upload of {digest}", r)
        location = urllib.parse.urljoin(self.url + "/", r.headers["Location"])
        r = self.request(
            "PUT",
            location,
            repo=repo,
            params={"digest": digest},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if r.status_code != 201:
            raise PushError(f"upload of {digest}", r)
        self._known_blobs.add((repo, digest))
        return digest

    def get_blob(self, repo: str, digest: str) -> requests.Response:
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", repo=repo, allow_redirects=True)

    def delete_blob(self, repo: str, digest: str) -> None:
        self._known_blobs.discard((repo, digest))
        r = self.request("DELETE", f"/v2/{repo}/blobs/{digest}", repo=repo)
        if r.status_code != 202:
            raise PushError(f"delete blob {digest}", r)

    # -- manifests
    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or digest; returns the registry's digest."""
        r = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            repo=repo,
            data=body,
            headers={"Content-Type": media_type},
        )
        if r.status_code != 201:
            raise PushError(f"put manifest {repo}:{reference}", r)
        return str(r.headers.get("Docker-Content-Digest") or digest_of(body))

    def get_manifest(
        self, repo: str, reference: str, accept: str | Iterable[str] = ACCEPT_ALL
    ) -> requests.Response:
        if not isinstance(accept, str):
            accept = ", ".join(accept)
        headers = {"Accept": accept} if accept else {}
        return self.request("GET", f"/v2/{repo}/manifests/{reference}", repo=repo, headers=headers)

    def delete_manifest(self, repo: str, digest: str) -> None:
        r = self.request("DELETE", f"/v2/{repo}/manifests/{digest}", repo=repo)
        if r.status_code != 202:
            raise PushError(f"delete manifest {repo}@{digest}", r)

    def _put_all(self, repo: str, body: bytes, media_type: str, tags: Sequence[str]) -> str:
        expected = digest_of(body)
        refs = list(tags) or [expected]
        for ref in refs:
            got = self.put_manifest(repo, ref, body, media_type)
            if got != expected:
                raise AssertionError(f"registry digest {got} != computed {expected}")
        return expected

    def tag(self, repo: str, pushed: Pushed, *tags: str) -> Pushed:
        """Put the same manifest bytes under more tags (shared digest)."""
        if pushed.media_type in (SCHEMA1_SIGNED, SCHEMA1):
            raise ValueError("schema1 manifests name their tag inside: push again instead")
        for t in tags:
            self.put_manifest(repo, t, pushed.manifest_bytes, pushed.media_type)
        return dataclasses.replace(pushed, repo=repo, tags=pushed.tags + tuple(tags))

    # -- images and artifacts
    def push_image(self, repo: str, spec: ImageSpec, tags: Sequence[str] = ()) -> Pushed:
        body, config, layers = spec.manifest()
        for layer, blob in zip(spec.layers, layers, strict=True):
            if layer.upload:
                self.push_blob(repo, blob)
        self.push_blob(repo, config)
        digest = self._put_all(repo, body, spec.manifest_media_type, tags)
        return Pushed(
            repo=repo,
            digest=digest,
            media_type=spec.manifest_media_type,
            manifest_bytes=body,
            tags=tuple(tags),
            config=config,
            layers=tuple(layers),
            platform=spec.platform,
        )

    def push_artifact(self, repo: str, spec: ArtifactSpec, tags: Sequence[str] = ()) -> Pushed:
        body, config, blobs = spec.manifest()
        for blob in blobs:
            self.push_blob(repo, blob)
        self.push_blob(repo, config)
        digest = self._put_all(repo, body, OCI_MANIFEST, tags)
        return Pushed(
            repo=repo,
            digest=digest,
            media_type=OCI_MANIFEST,
            manifest_bytes=body,
            tags=tuple(tags),
            config=config,
            layers=tuple(blobs),
            platform=spec.platform,
        )

    def push_attestation(self, repo: str, image: Pushed, seeds: Sequence[str] | None = None) -> Pushed:
        return self.push_artifact(repo, attestation_spec(image.digest, seeds))

    def push_index(
        self,
        repo: str,
        manifests: Sequence[Pushed],
        tags: Sequence[str] = (),
        *,
        format: Format = "oci",
        attestations: bool | Sequence[Pushed] = False,
        annotations: Mapping[str, str] | None = None,
        entry_annotations: Mapping[str, Mapping[str, str]] | None = None,
        indent: int | None = None,
    ) -> Pushed:
        """Push an index over already pushed ``manifests`` (in order).

        ``attestations=True`` pushes a buildkit attestation manifest for every manifest and
        lists it right after its image; a sequence chooses which images get one (the rest
        have none, as happens on Docker Hub). ``entry_annotations`` maps a child digest to
        the annotations of its entry.
        """
        if attestations is True:
            attested = {m.digest for m in manifests}
        elif attestations is False:
            attested = set()
        else:
            attested = {m.digest for m in attestations}
        entries: list[dict[str, Any]] = []
        atts: list[Pushed] = []
        for m in manifests:
            entries.append(m.descriptor((entry_annotations or {}).get(m.digest)))
            if m.digest in attested:
                att = self.push_attestation(repo, m)
                atts.append(att)
                entries.append(
                    att.descriptor(
                        {
                            "vnd.docker.reference.digest": m.digest,
                            "vnd.docker.reference.type": "attestation-manifest",
                        }
                    )
                )
        media_type = OCI_INDEX if format == "oci" else DOCKER_MANIFEST_LIST
        index: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
        if annotations:
            index["annotations"] = dict(annotations)
        body = _dumps(index, indent)
        digest = self._put_all(repo, body, media_type, tags)
        return Pushed(
            repo=repo,
            digest=digest,
            media_type=media_type,
            manifest_bytes=body,
            tags=tuple(tags),
            children=tuple(manifests),
            attestations=tuple(atts),
        )

    def push_multiarch(
        self,
        repo: str,
        platforms: Sequence[str | Platform],
        tags: Sequence[str] = (),
        *,
        format: Format = "oci",
        attest: bool = False,
        spec: ImageSpec | None = None,
        seed: str = "",
    ) -> Pushed:
        """One image per platform (distinct layers seeded by platform), then the index."""
        base = spec or ImageSpec()
        children = []
        for p in platforms:
            plat = Platform.parse(p)
            layers = tuple(Layer.from_seed(f"{seed}{repo}/{plat}/{i}") for i in range(len(base.layers)))
            child = base.replace(platform=plat, format=format, layers=layers)
            children.append(self.push_image(repo, child))
        return self.push_index(repo, children, tags, format=format, attestations=attest)

    def push_schema1(self, repo: str, tag: str, spec: Schema1Spec | None = None) -> Pushed:
        spec = spec or Schema1Spec()
        payload, blobs = spec.payload(repo, tag)
        for blob in {b.digest: b for b in blobs}.values():
            self.push_blob(repo, blob)
        media_type = SCHEMA1_SIGNED if spec.signed else SCHEMA1
        body = sign_schema1(payload) if spec.signed else payload
        digest = self.put_manifest(repo, tag, body, media_type)
        expected = digest_of(payload)
        if digest != expected:
            raise AssertionError(f"registry digest {digest} != payload digest {expected}")
        return Pushed(
            repo=repo,
            digest=digest,
            media_type=media_type,
            manifest_bytes=payload,
            tags=(tag,),
            layers=tuple(blobs),
            platform=Platform(spec.os, spec.architecture),
            signed_bytes=body,
        )

    # -- listing
    def tags(self, repo: str) -> list[str]:
        r = self.request("GET", f"/v2/{repo}/tags/list", repo=repo)
        if r.status_code != 200:
            raise PushError(f"tags of {repo}", r)
        return list(r.json().get("tags") or [])

    def catalog(self, n: int | None = None) -> list[str]:
        """All repositories, following the catalog's Link pagination."""
        out: list[str] = []
        path: str | None = "/v2/_catalog" + (f"?n={n}" if n else "")
        while path:
            r = self.request("GET", path)
            if r.status_code != 200:
                raise PushError("catalog", r)
            out += r.json().get("repositories") or []
            link = r.headers.get("Link", "")
            path = link[link.find("<") + 1 : link.find(">")] if "<" in link else None
        return out

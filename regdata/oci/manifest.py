"""Manifests and image configs: every media type a registry serves, parsed and type-checked.

Parsing is strict about types (a registry answer is untrusted input) and
lenient about what is optional: a missing ``created`` is ``None``, a wrong
type is :class:`~regdata.errors.MalformedContent` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from regdata.errors import MalformedContent, UnsupportedMediaType
from regdata.oci.digest import is_digest
from regdata.oci.jsontext import decode_json

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ACCEPT_ALL",
    "DOCKER_CONFIG",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "IMAGE_CONFIG_TYPES",
    "INDEX_TYPES",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "SCHEMA1",
    "SCHEMA1_SIGNED",
    "TIME_OUT_OF_RANGE",
    "Descriptor",
    "ImageConfig",
    "ImageManifest",
    "Index",
    "Manifest",
    "Platform",
    "Schema1Manifest",
    "decode_json",
    "is_digest",
    "parse_config",
    "parse_manifest",
    "parse_time",
    "time_out_of_range",
]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

INDEX_TYPES = frozenset({DOCKER_LIST, OCI_INDEX})
IMAGE_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
SCHEMA1_TYPES = frozenset({SCHEMA1, SCHEMA1_SIGNED})
IMAGE_CONFIG_TYPES = frozenset({DOCKER_CONFIG, OCI_CONFIG})

# Every manifest type we read, best first. Asking for all of them matters:
# Distribution converts a schema2 manifest to schema1 (with another digest)
# for a client that does not accept schema2, and 404s an OCI index for a
# client that accepts only Docker types.
ACCEPT_ALL = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST, SCHEMA1_SIGNED, SCHEMA1)

# The zero time Go writes for "no time"; pandas cannot hold it anyway.
_ZERO_TIME_PREFIX = "0001-01-01"


def _require(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise MalformedContent(f"{where}: expected {names}, got {type(value).__name__}")
    return value


def _optional(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = doc.get(key)
    return None if value is None else _require(value, kind, f"{where}.{key}")


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    _require(value, dict, where)
    return {str(k): str(v) if not isinstance(v, str) else v for k, v in value.items()}


_INT64_MAX = 2**63 - 1


def load_json(body: bytes | str, what: str, quote: bool = True) -> dict[str, Any]:
    """Decode a JSON object, turning any failure into MalformedContent naming ``what``.

    The message quotes the body's first bytes unless ``quote`` is False (a
    token answer: its first bytes may be the token).
    """
    try:
        document = decode_json(body)
    except ValueError as exc:
        raw = body if isinstance(body, bytes) else body.encode("utf-8", "replace")
        head = f": {raw[:40].decode('utf-8', 'replace')!r}..." if quote else ""
        raise MalformedContent(f"{what} is not JSON ({exc.__class__.__name__}{head})") from None
    if not isinstance(document, dict):
        raise MalformedContent(f"{what} is not a JSON object")
    return document


# How a row's ``error`` starts when only its created time was lost: the rest of the row was read.
TIME_OUT_OF_RANGE = "created time outside the years a frame holds (1677 to 2262)"


def parse_time(value: Any) -> pd.Timestamp | None:
    """An RFC 3339 time as a UTC Timestamp, nanoseconds kept; None for absent or zero times.

    A time outside what a frame holds (1677 to 2262) is None too: :func:`time_out_of_range`
    says when that happened, so the row can say so.
    """
    return _read_time(value)[0]


def time_out_of_range(value: Any) -> str | None:
    """Why a time :func:`parse_time` reads as None was dropped, when it was a real time out of range.

    None for an absent time, Go's zero time (``0001-01-01T00:00:00Z``, what Go
    writes for "not set") or a time in range.
    """
    try:
        return _read_time(value)[1]
    except MalformedContent:
        return None


def _read_time(value: Any) -> tuple[pd.Timestamp | None, str | None]:
    import pandas as pd

    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        raise MalformedContent(f"time is not a string: {type(value).__name__}")
    if value.startswith(_ZERO_TIME_PREFIX):
        return None, None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, OverflowError):
        raise MalformedContent(f"unreadable time {value[:40]!r}") from None
    if pd.isna(stamp):
        return None, None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    try:
        # A frame holds nanoseconds from 1677 to 2262: a time outside cannot be a created time.
        return stamp.as_unit("ns"), None
    except (OverflowError, ValueError):
        return None, f"{TIME_OUT_OF_RANGE}: {value[:40]!r}"


@dataclass(frozen=True)
class Platform:
    """An OS/architecture/variant triple, printed as ``linux/arm/v7``."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]``."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform must be os/arch[/variant], got {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def matches(self, other: Platform) -> bool:
        """True when ``other`` names this platform (a missing variant matches any).

        Default variants are filled in as containerd does (arm64 is v8, arm is
        v7), so ``linux/arm64/v8`` matches an image declared ``linux/arm64``.
        """
        mine, theirs = _default_variant(self), _default_variant(other)
        return (
            self.os == other.os
            and self.architecture == other.architecture
            and (other.variant is None or mine == theirs)
        )


_DEFAULT_VARIANTS = {"arm64": "v8", "arm": "v7"}


def _default_variant(platform: Platform) -> str | None:
    return platform.variant or _DEFAULT_VARIANTS.get(platform.architecture)


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor: what a manifest says about a blob or another manifest."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    @property
    def is_attestation(self) -> bool:
        """A buildkit attestation manifest inside an index."""
        return self.annotations.get("vnd.docker.reference.type") == "attestation-manifest"


def _descriptor(doc: Any, where: str) -> Descriptor:
    _require(doc, dict, where)
    platform = None
    if doc.get("platform") is not None:
        p = _require(doc["platform"], dict, f"{where}.platform")
        platform = Platform(
            os=_require(p.get("os"), str, f"{where}.platform.os"),
            architecture=_require(p.get("architecture"), str, f"{where}.platform.architecture"),
            variant=_optional(p, "variant", str, f"{where}.platform") or None,
            os_version=_optional(p, "os.version", str, f"{where}.platform") or None,
        )
    digest = _require(doc.get("digest"), str, f"{where}.digest")
    if not is_digest(digest):
        # It goes into a URL path next: only the OCI grammar, nothing that could steer the request.
        raise MalformedContent(f"{where}.digest: not a digest: {digest[:80]!r}")
    size = _require(doc.get("size"), int, f"{where}.size")
    if not 0 <= size <= _INT64_MAX:
        raise MalformedContent(f"{where}.size: {size} is not a size (0 to 2**63-1)")
    return Descriptor(
        media_type=_require(doc.get("mediaType"), str, f"{where}.mediaType"),
        digest=digest,
        size=size,
        platform=platform,
        annotations=_str_map(doc.get("annotations"), f"{where}.annotations"),
        artifact_type=_optional(doc, "artifactType", str, where),
    )


@dataclass(frozen=True)
class ImageManifest:
    """A Docker schema2 or OCI image manifest (an OCI artifact too)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None

    @property
    def is_artifact(self) -> bool:
        """An OCI artifact: it says so, or its config is not an image config."""
        return self.artifact_type is not None or self.config.media_type not in IMAGE_CONFIG_TYPES

    @property
    def size(self) -> int:
        """Sum of the compressed layer sizes."""
        return sum(layer.size for layer in self.layers)


@dataclass(frozen=True)
class Index:
    """A Docker manifest list or OCI image index."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str | None = None


@dataclass(frozen=True)
class Schema1Manifest:
    """A Docker schema1 manifest; its metadata lives in ``v1Compatibility`` strings."""

    media_type: str
    name: str
    tag: str
    architecture: str
    layers: tuple[str, ...]
    history: tuple[dict[str, Any], ...]  # decoded v1Compatibility, newest first

    def config(self) -> ImageConfig:
        """The image config a schema1 manifest implies: its newest v1Compatibility entry."""
        top = self.history[0] if self.history else {}
        os_name = top.get("os") if isinstance(top.get("os"), str) else "linux"
        config_section = top.get("config")
        labels = config_section.get("Labels") if isinstance(config_section, dict) else None
        created, created_problem = _read_time(top.get("created"))
        return ImageConfig(
            created=created,
            created_problem=created_problem,
            os=os_name,
            architecture=(top.get("architecture") if isinstance(top.get("architecture"), str) else None)
            or self.architecture,
            variant=top.get("variant") if isinstance(top.get("variant"), str) else None,
            os_version=None,
            labels=_str_map(labels, "v1Compatibility.config.Labels"),
            raw_history=tuple(reversed(self.history)),
            schema1=True,
        )


def _schema1_history(entries: tuple[Any, ...]) -> tuple[HistoryEntry, ...]:
    """History steps from v1Compatibility entries, oldest first."""
    steps = []
    for entry in entries:
        cc = entry.get("container_config")
        cmd = cc.get("Cmd") if isinstance(cc, dict) else None
        created_by = " ".join(c for c in cmd if isinstance(c, str)) if isinstance(cmd, list) else ""
        steps.append(
            HistoryEntry(
                created=parse_time(entry.get("created")),
                created_by=created_by,
                empty_layer=bool(entry.get("throwaway", False)),
                comment=entry.get("comment") if isinstance(entry.get("comment"), str) else "",
            )
        )
    return tuple(steps)


Manifest = ImageManifest | Index | Schema1Manifest


def parse_manifest(body: bytes, media_type: str | None) -> Manifest:
    """Parse a manifest body; ``media_type`` is the Content-Type it came with.

    The body's own ``mediaType`` wins over the header, and a body with none
    is recognised by its shape (``schemaVersion``, ``manifests``, ``config``).
    """
    doc = load_json(body, "manifest")
    declared = doc.get("mediaType")
    if declared is not None:
        _require(declared, str, "manifest.mediaType")
    # Typed: ``true == 1`` in Python, and a boolean must not pass for schema 1.
    schema_version = _optional(doc, "schemaVersion", int, "manifest")
    kind = declared or _content_type(media_type)
    if kind in SCHEMA1_TYPES or schema_version == 1:
        return _schema1(doc, kind or SCHEMA1_SIGNED)
    if kind is None or kind in ("application/json", "text/plain"):
        kind = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if kind in INDEX_TYPES:
        entries = _require(doc.get("manifests"), list, "manifest.manifests")
        return Index(
            media_type=kind,
            manifests=tuple(_descriptor(d, f"manifests[{i}]") for i, d in enumerate(entries)),
            annotations=_str_map(doc.get("annotations"), "manifest.annotations"),
            artifact_type=_optional(doc, "artifactType", str, "manifest"),
        )
    if kind in IMAGE_TYPES:
        layers = doc.get("layers")
        layers = [] if layers is None else _require(layers, list, "manifest.layers")
        subject = doc.get("subject")
        manifest = ImageManifest(
            media_type=kind,
            config=_descriptor(doc.get("config"), "manifest.config"),
            layers=tuple(_descriptor(d, f"layers[{i}]") for i, d in enumerate(layers)),
            artifact_type=_optional(doc, "artifactType", str, "manifest"),
            annotations=_str_map(doc.get("annotations"), "manifest.annotations"),
            subject=None if subject is None else _descriptor(subject, "manifest.subject"),
        )
        if manifest.size > _INT64_MAX:  # the frame's size column is an int64
            raise MalformedContent("manifest.layers: the sizes add up past 2**63-1")
        return manifest
    raise UnsupportedMediaType(f"unsupported manifest media type {kind[:100]!r}")


def _content_type(header: str | None) -> str | None:
    return header.split(";", 1)[0].strip() or None if header else None


def _schema1(doc: dict[str, Any], kind: str) -> Schema1Manifest:
    history_raw = doc.get("history")
    history_raw = [] if history_raw is None else _require(history_raw, list, "manifest.history")
    history = []
    for i, entry in enumerate(history_raw):
        _require(entry, dict, f"history[{i}]")
        text = _require(entry.get("v1Compatibility"), str, f"history[{i}].v1Compatibility")
        history.append(load_json(text, f"history[{i}].v1Compatibility"))
    fs_layers = doc.get("fsLayers")
    fs_layers = [] if fs_layers is None else _require(fs_layers, list, "manifest.fsLayers")
    layers = []
    for i, layer in enumerate(fs_layers):
        _require(layer, dict, f"fsLayers[{i}]")
        layers.append(_require(layer.get("blobSum"), str, f"fsLayers[{i}].blobSum"))
    return Schema1Manifest(
        media_type=kind,
        name=_optional(doc, "name", str, "manifest") or "",
        tag=_optional(doc, "tag", str, "manifest") or "",
        architecture=_optional(doc, "architecture", str, "manifest") or "",
        layers=tuple(layers),
        history=tuple(history),
    )


@dataclass(frozen=True)
class HistoryEntry:
    """One step of an image's build history."""

    created: pd.Timestamp | None
    created_by: str
    empty_layer: bool
    comment: str


@dataclass(frozen=True)
class ImageConfig:
    """What regdata reads of an image config blob.

    ``history`` is parsed when first read: a scan that wants only ``created``
    (``get_repository``) does not pay for hundreds of history times, and a
    malformed history fails only what reads it.
    """

    created: pd.Timestamp | None
    os: str | None
    architecture: str | None
    variant: str | None
    os_version: str | None
    labels: dict[str, str]
    raw_history: tuple[Any, ...] = field(default=(), repr=False, compare=False)
    schema1: bool = field(default=False, repr=False, compare=False)
    # Why ``created`` is None though the config has a time: it lies outside a frame's range.
    created_problem: str | None = None

    @cached_property
    def history(self) -> tuple[HistoryEntry, ...]:
        """The build steps, oldest first (MalformedContent when the config's are malformed)."""
        return _schema1_history(self.raw_history) if self.schema1 else _config_history(self.raw_history)


def _config_history(entries: tuple[Any, ...]) -> tuple[HistoryEntry, ...]:
    history = []
    for i, entry in enumerate(entries):
        _require(entry, dict, f"config.history[{i}]")
        history.append(
            HistoryEntry(
                created=parse_time(entry.get("created")),
                created_by=_optional(entry, "created_by", str, f"history[{i}]") or "",
                empty_layer=bool(_optional(entry, "empty_layer", bool, f"history[{i}]") or False),
                comment=_optional(entry, "comment", str, f"history[{i}]") or "",
            )
        )
    return tuple(history)


def parse_config(body: bytes) -> ImageConfig:
    """Parse an image config blob (Docker or OCI); its history is parsed when first read."""
    doc = load_json(body, "image config")
    section = _optional(doc, "config", dict, "config") or {}
    created, created_problem = _read_time(doc.get("created"))
    return ImageConfig(
        created=created,
        created_problem=created_problem,
        os=_optional(doc, "os", str, "config"),
        architecture=_optional(doc, "architecture", str, "config"),
        variant=_optional(doc, "variant", str, "config") or None,
        os_version=_optional(doc, "os.version", str, "config") or None,
        labels=_str_map(section.get("Labels"), "config.config.Labels"),
        raw_history=tuple(_optional(doc, "history", list, "config") or ()),
    )

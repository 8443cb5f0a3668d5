"""Image bytes built from recorded Docker Hub metadata: configs, manifests, indexes, stand-in layers.

The records are those of the demo data (see :mod:`regdata.sandbox.demodata`): one
per platform manifest, with its platform, history (``[created, created_by]``
pairs), layers (``[digest, size, media type]``) and command.  Building is a
pure function of them, byte for byte: the fleet files in ``data/`` pin
digests built here, so any change of output is a change of every digest.

* A layer becomes a tiny stand-in tar.gz seeded by the real layer digest (so
  a layer shared between real images is shared here too), while its
  descriptor declares the real size.
* Windows foreign layers keep their real digest and size; their URL points
  at loopback port 9 (discard), so nothing that follows one leaves the machine.
* Attestation entries become buildkit attestation manifests of stand-in
  in-toto statements, declaring the real sizes too.
* History times can be moved back (``cutoff``) to rebuild an older version of
  an image; the layers of the moved entries are then re-seeded.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import tarfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "FOREIGN_ALLOW",
    "FOREIGN_URL",
    "IN_TOTO",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Blob",
    "Built",
    "ImageBuilder",
    "Manifest",
    "amd64_record",
    "empty_flags",
    "format_time",
    "json_list",
    "newest_created",
    "parse_time",
]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
_PREDICATES = ("https://spdx.dev/Document", "https://slsa.dev/provenance/v0.2")

FOREIGN_URL = "http://127.0.0.1:9/foreign/{digest}"
# What a registry must allow in foreign layer URLs to accept these manifests.
FOREIGN_ALLOW = r"^https?://127\.0\.0\.1(:[0-9]+)?/"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Blob:
    """Bytes to upload, by digest."""

    digest: str
    data: bytes


@dataclass(frozen=True)
class Manifest:
    """A manifest ready to PUT, with the blobs it needs (config and uploadable layers)."""

    digest: str
    media_type: str
    body: bytes
    blobs: tuple[Blob, ...] = ()

    def descriptor(self) -> dict[str, Any]:
        """Its descriptor in an index (without platform or annotations)."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.body)}


@dataclass(frozen=True)
class Built:
    """A tag's content: the top manifest (index or image) and, for an index, its children."""

    top: Manifest
    children: tuple[Manifest, ...] = ()

    @property
    def digest(self) -> str:
        """The digest of the top manifest: what the tag points at."""
        return self.top.digest


# --------------------------------------------------------------------------- record helpers


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time of the data (UTC when it names no zone); None for none."""
    if not text:
        return None
    stamp = datetime.fromisoformat(text)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def format_time(stamp: datetime) -> str:
    """RFC 3339 in UTC, as the data spells times (``2017-12-26T18:17:01Z``)."""
    stamp = stamp.astimezone(UTC)
    fraction = f".{stamp.microsecond:06d}".rstrip("0") if stamp.microsecond else ""
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


# created_by of history entries that add a layer; the rest (ENV, CMD, LABEL...) are empty.
def _makes_layer(created_by: str) -> bool:
    text = created_by.lstrip()
    if text.startswith(("ADD ", "COPY ", "RUN ")):
        return True
    if text.startswith("|") and text[1:2].isdigit():
        return True
    return text.startswith("/bin/sh -c ") and not text.startswith("/bin/sh -c #(nop)")


def empty_flags(created_bys: Sequence[str], layers: int) -> list[bool]:
    """Which history entries made no layer: guessed from created_by, matched to the layer count.

    The data does not say; the config must stay self-consistent (one
    non-empty entry per layer), so the guess is corrected from the newest end.
    """
    nonempty = [_makes_layer(c) for c in created_bys]
    for i in reversed(range(len(nonempty))):
        if sum(nonempty) <= layers:
            break
        nonempty[i] = False
    for i in reversed(range(len(nonempty))):
        if sum(nonempty) >= layers:
            break
        nonempty[i] = True
    return [not n for n in nonempty]


def json_list(value: Any) -> list[str] | None:
    """A recorded command (``'["sh"]'``, a list, or a bare string) as a list; None for none."""
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return [str(v) for v in value]
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return [str(value)]
    return [str(v) for v in parsed] if isinstance(parsed, list) else [str(parsed)]


def newest_created(record: Mapping[str, Any]) -> datetime | None:
    """The newest history time of a platform record: the image's ``created``."""
    return max((t for t in (parse_time(h[0]) for h in record["history"]) if t is not None), default=None)


def amd64_record(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The amd64 image of an index's records (else its first image): the one the timeline dates."""
    images = [m for m in records if not m.get("attestation")]
    return next((m for m in images if m["architecture"] == "amd64"), images[0])


def _moved(
    times: list[datetime | None], newest: datetime | None, cutoff: datetime | None
) -> list[datetime | None]:
    """History times moved so the newest is ``cutoff``: later entries clamped back, or the
    newest entries moved forward; None where unchanged."""
    if cutoff is None or newest is None or cutoff == newest:
        return [None] * len(times)
    if cutoff < newest:
        return [cutoff if t is not None and t > cutoff else None for t in times]
    return [cutoff if t == newest else None for t in times]


def _platform(record: Mapping[str, Any]) -> dict[str, Any]:
    """The platform of an index entry; an image config carries the same fields."""
    platform: dict[str, Any] = {"architecture": record["architecture"], "os": record["os"]}
    if record.get("os_version"):
        platform["os.version"] = record["os_version"]
    if record.get("variant"):
        platform["variant"] = record["variant"]
    return platform


# --------------------------------------------------------------------------- bytes


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _gzip_stored(data: bytes) -> bytes:
    """A gzip member with one stored (uncompressed) deflate block.

    Written by hand so the bytes, and so every digest of the sandbox, are the
    same with any zlib: the fleet files in ``data/`` pin such digests.
    """
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    block = b"\x01" + struct.pack("<HH", len(data), len(data) ^ 0xFFFF) + data
    return header + block + struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)


def _stand_in_layer(seed: str, real_digest: str, real_size: int) -> tuple[bytes, str]:
    """(gzip bytes, diff_id) of the stand-in for one real layer."""
    content = (
        f"regdata sandbox stand-in layer\nreal layer: {real_digest}\nreal size: {real_size} bytes\n"
        f"seed: {seed}\n"
    ).encode()
    info = tarfile.TarInfo("regdata-stand-in.txt")
    info.size, info.mtime, info.mode = len(content), 0, 0o644
    tar = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    tar += content + b"\0" * (-len(content) % 512) + b"\0" * 1024
    return _gzip_stored(tar), _sha256(tar)


# --------------------------------------------------------------------------- the builder


class ImageBuilder:
    """Builds manifests from records, remembering images and layers already built.

    Not thread-safe: :class:`~regdata.sandbox.demodata.DemoData` builds under its lock.
    """

    def __init__(self) -> None:
        self._layers: dict[str, tuple[bytes, str]] = {}
        self._images: dict[tuple[Any, ...], Manifest] = {}

    def index(
        self,
        mime: str | None,
        entries: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        created: datetime | None = None,
        share: tuple[int, int] | None = None,
    ) -> Built:
        """The content of a recorded index: ``entries`` are its (real digest, record) in order.

        ``mime`` None is a single-manifest tag: its image is the top.
        ``created``: move the amd64 image's newest history time there, and
        every other platform's by as much.  ``share`` ``(n, of)``: list only
        the first ``n/of`` of the images (an index re-pushed as platforms
        finish), each with its attestation.
        """
        oci = mime == OCI_INDEX
        amd64_created = newest_created(amd64_record([record for _, record in entries]))
        images = [(d, m) for d, m in entries if not m.get("attestation")]
        if share is not None and share[0] < share[1]:
            keep = {d for d, _ in images[: max(1, math.ceil(len(images) * share[0] / share[1]))]}
        else:
            keep = {d for d, _ in images}
        children: list[Manifest] = []
        descriptors: list[dict[str, Any]] = []
        last_image: Manifest | None = None
        keep_last = False
        for real, record in entries:
            if record.get("attestation"):
                if last_image is None or not keep_last:
                    continue
                att = self.attestation(record, last_image.digest)
                children.append(att)
                descriptors.append(
                    {
                        **att.descriptor(),
                        "platform": {"architecture": "unknown", "os": "unknown"},
                        "annotations": {
                            "vnd.docker.reference.digest": last_image.digest,
                            "vnd.docker.reference.type": "attestation-manifest",
                        },
                    }
                )
                continue
            keep_last = real in keep
            if not keep_last:
                continue
            cutoff = None
            if created is not None and amd64_created is not None:
                newest = newest_created(record)
                if newest is not None:
                    cutoff = created + (newest - amd64_created)
            image = self.image(real, record, oci=oci, cutoff=cutoff)
            last_image = image
            children.append(image)
            descriptors.append({**image.descriptor(), "platform": _platform(record)})
        if mime is None:
            return Built(children[0])
        body = _dumps({"schemaVersion": 2, "mediaType": mime, "manifests": descriptors})
        return Built(Manifest(_sha256(body), mime, body), tuple(children))

    def _layer(self, seed: str, real: str, size: int) -> tuple[bytes, str]:
        found = self._layers.get(seed)
        if found is None:
            found = self._layers[seed] = _stand_in_layer(seed, real, size)
        return found

    def image(self, real: str, record: Mapping[str, Any], *, oci: bool, cutoff: datetime | None) -> Manifest:
        """The image manifest of a platform record (real digest ``real``), with config and layers.

        ``cutoff``: the newest history time of the image built (None: as recorded).
        """
        key = (real, oci, cutoff)
        found = self._images.get(key)
        if found is not None:
            return found
        history = [(str(h[0]) if h[0] else None, str(h[1] or "")) for h in record["history"]]
        layers = record["layers"]
        empty = empty_flags([by for _, by in history], len(layers))
        times = [parse_time(c) for c, _ in history]
        newest = max((t for t in times if t is not None), default=None)
        moved = _moved(times, newest, cutoff)
        reseed = format_time(cutoff) if cutoff is not None else ""
        changed: set[int] = set()
        layer_no = 0
        config_history = []
        steps = zip(history, empty, times, moved, strict=True)
        for (created_text, created_by), is_empty, stamp, new in steps:
            entry: dict[str, Any] = {}
            if new is not None and new != stamp:
                entry["created"] = format_time(new)
                if not is_empty:
                    changed.add(layer_no)
            elif created_text is not None:
                entry["created"] = created_text
            entry["created_by"] = created_by
            if is_empty:
                entry["empty_layer"] = True
            else:
                layer_no += 1
            config_history.append(entry)
        blobs: list[Blob] = []
        descriptors: list[dict[str, Any]] = []
        diff_ids: list[str] = []
        for i, (digest, size, mime) in enumerate(layers):
            if mime == DOCKER_FOREIGN:
                descriptors.append(
                    {
                        "mediaType": mime,
                        "size": size,
                        "digest": digest,
                        "urls": [FOREIGN_URL.format(digest=digest)],
                    }
                )
                diff_ids.append(digest)
                continue
            seed = f"{digest}@{reseed}" if i in changed else digest
            data, diff_id = self._layer(seed, digest, size)
            blob = Blob(_sha256(data), data)
            blobs.append(blob)
            # The real size, not len(data): see the module docstring.
            descriptors.append({"mediaType": mime, "size": size, "digest": blob.digest})
            diff_ids.append(diff_id)
        config = _platform(record)
        inner = {
            name: value
            for name, value in (
                ("Cmd", json_list(record.get("cmd"))),
                ("Entrypoint", json_list(record.get("entrypoint"))),
                ("Shell", json_list(record.get("shell"))),
            )
            if value is not None
        }
        config["config"] = inner
        created = [t for t in (parse_time(h.get("created")) for h in config_history) if t is not None]
        if created:
            config["created"] = format_time(max(created))
        if record.get("docker_version"):
            config["docker_version"] = record["docker_version"]
        if config_history:
            config["history"] = config_history
        config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        config_bytes = _dumps(config)
        config_blob = Blob(_sha256(config_bytes), config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
                "size": len(config_bytes),
                "digest": config_blob.digest,
            },
            "layers": descriptors,
        }
        body = _dumps(manifest)
        built = Manifest(_sha256(body), str(manifest["mediaType"]), body, (*blobs, config_blob))
        self._images[key] = built
        return built

    def attestation(self, record: Mapping[str, Any], image_digest: str) -> Manifest:
        """A buildkit attestation manifest for ``image_digest``: stand-in in-toto statements."""
        blobs: list[Blob] = []
        descriptors: list[dict[str, Any]] = []
        for i, (digest, size, _mime) in enumerate(record["layers"]):
            predicate = _PREDICATES[i % len(_PREDICATES)]
            statement = _dumps(
                {
                    "_type": "https://in-toto.io/Statement/v0.1",
                    "predicateType": predicate,
                    "subject": [{"name": "_", "digest": {"sha256": image_digest.split(":", 1)[1]}}],
                    "predicate": {"regdata-stand-in-for": digest},
                }
            )
            blob = Blob(_sha256(statement), statement)
            blobs.append(blob)
            descriptors.append(
                {
                    "mediaType": IN_TOTO,
                    "size": size,
                    "digest": blob.digest,
                    "annotations": {"in-toto.io/predicate-type": predicate},
                }
            )
        config = _dumps(
            {
                "architecture": "unknown",
                "os": "unknown",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [b.digest for b in blobs]},
            }
        )
        config_blob = Blob(_sha256(config), config)
        body = _dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_blob.digest},
                "layers": descriptors,
            }
        )
        return Manifest(_sha256(body), OCI_MANIFEST, body, (*blobs, config_blob))

"""A sandbox registry on loopback, filled with images built from real Docker Hub metadata.

For the demo, the notebooks and trying regdata with no internet::

    from regdata.sandbox import Sandbox

    with Sandbox.start() as sandbox:          # Debian's Distribution registry on 127.0.0.1
        sandbox.fill()                         # seconds the first time, a few HEADs after
        reg = sandbox.registry()               # a Registry reading docker.io from the sandbox
        reg.get_repository("nginx")            # rows still say docker.io/library/nginx

What is real and what is not — read this before drawing conclusions:

* **Real** (from docker-library/repo-info, as recorded from Docker Hub, see
  ``data/README.md``): the repositories and tags, each tag's platforms
  (os, architecture, variant, Windows ``os.version``) in their real order,
  each platform's build history (``created``, ``created_by``), command,
  entrypoint and shell, layer count, media types, **layer sizes** (the
  ``size`` column and the size plots show Docker Hub's compressed sizes),
  whether a tag was a manifest list or an OCI index, the buildkit attestation
  entries of the 2026 indexes, and when each tag moved (``timeline``).
* **Stand-ins**: layer *contents*.  Each layer is a tiny tar.gz derived from
  the real layer digest (so a layer shared between real images is shared
  here too), but its manifest descriptor declares the real size.
  Distribution 2.8 accepts such a manifest (it checks that a blob exists,
  not its size), so the metadata is real while the sandbox stays a few MB;
  pulling an image from the sandbox fails on the size check, by design.
  Digests are therefore the sandbox's, not Docker Hub's.
* **Reconstructed**: older versions of a tag, which the data only knows by
  their index digest and amd64 created time.  They are the recorded version
  of the tag with its newest history entries moved back to that created time
  (and those layers re-seeded); a re-push (same created time, new digest)
  is the same images under an index that lists fewer platforms, as happens
  when Docker Hub re-pushes an index as each platform finishes building.

Tags move over time with :meth:`Sandbox.fill` ``as_of=``: each tag is
pushed as it was at that time, and moving forward again moves tags forward
(never back).  ``pins=`` pushes the older images a fleet pins by digest.
"""

from __future__ import annotations

import atexit
import csv
import gzip
import hashlib
import http.client
import json
import math
import os
import shutil
import socket
import struct
import subprocess
import tarfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from .errors import RegdataError

if TYPE_CHECKING:
    import pandas as pd

    from .registry import Registry

__all__ = [
    "DEFAULT_PORT",
    "DemoData",
    "FillReport",
    "Sandbox",
    "SandboxError",
    "TagVersion",
    "data_dir",
    "load_data",
]

DEFAULT_PORT = 5055
PORT_ENV = "REGDATA_SANDBOX_PORT"
BIN_ENV = "REGDATA_REGISTRY_BIN"
DATA_ENV = "REGDATA_DEMO_DATA"
DATA_FILE = "dockerhub-subset.json.gz"
TIMELINE_FILE = "timeline-subset.csv.gz"
DATA_FORMAT = "regdata-demo-data/1"
INSTALL_HINT = "apt-get install docker-registry"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
_PREDICATES = ("https://spdx.dev/Document", "https://slsa.dev/provenance/v0.2")
_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))

# Foreign (Windows) layers carry URLs.  Real ones point at Microsoft; here they point
# at loopback port 9 (discard), so nothing that follows one can leave the machine.
FOREIGN_URL = "http://127.0.0.1:9/foreign/{digest}"
_FOREIGN_ALLOW = r"^https?://127\.0\.0\.1(:[0-9]+)?/"


class SandboxError(RegdataError):
    """The sandbox registry cannot start, or its data cannot be read or pushed."""


# --------------------------------------------------------------------------- data


def data_dir() -> Path:
    """``$REGDATA_DEMO_DATA``, else the ``data/`` directory beside the ``regdata`` package."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "data"


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    stamp = datetime.fromisoformat(text)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _text(stamp: datetime) -> str:
    """RFC 3339 in UTC, as the data spells times (``2017-12-26T18:17:01Z``)."""
    stamp = stamp.astimezone(UTC)
    fraction = f".{stamp.microsecond:06d}".rstrip("0") if stamp.microsecond else ""
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


@dataclass(frozen=True)
class TagVersion:
    """One state of a tag: what Docker Hub served under it from ``seen_at`` on.

    ``hub_digest`` is Docker Hub's index digest then; ``created`` the newest
    history time of its amd64 image; ``recorded`` whether its full metadata is
    in the data (else the sandbox reconstructs it from a recorded neighbour).
    """

    image: str
    tag: str
    seen_at: datetime
    hub_digest: str
    created: datetime | None
    recorded: bool


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
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.body)}


@dataclass(frozen=True)
class Built:
    """A tag's content: the top manifest (index or image) and, for an index, its children."""

    top: Manifest
    children: tuple[Manifest, ...] = ()

    @property
    def digest(self) -> str:
        return self.top.digest


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


# created_by of history entries that add a layer; the rest (ENV, CMD, LABEL...) are empty.
def _makes_layer(created_by: str) -> bool:
    text = created_by.lstrip()
    if text.startswith(("ADD ", "COPY ", "RUN ")):
        return True
    if text.startswith("|") and text[1:2].isdigit():
        return True
    return text.startswith("/bin/sh -c ") and not text.startswith("/bin/sh -c #(nop)")


def _empty_flags(created_bys: Sequence[str], layers: int) -> list[bool]:
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


def _json_list(value: Any) -> list[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return [str(v) for v in value]
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return [str(value)]
    return [str(v) for v in parsed] if isinstance(parsed, list) else [str(parsed)]


class DemoData:
    """The demo data of ``data/``: real tags and images, and how the tags moved.

    Load with :func:`load_data`.  Everything here is computed, nothing pushed:
    :meth:`build` gives the exact bytes the sandbox holds for a tag version,
    so a sandbox digest can be known without a sandbox.
    """

    def __init__(self, doc: Mapping[str, Any], timeline: Sequence[Mapping[str, str]]) -> None:
        if doc.get("format") != DATA_FORMAT:
            raise SandboxError(f"demo data has format {doc.get('format')!r}, expected {DATA_FORMAT!r}")
        self.doc = doc
        self.manifests: Mapping[str, Mapping[str, Any]] = doc["manifests"]
        self.indexes: Mapping[str, Mapping[str, Any]] = doc["indexes"]
        self.small: Mapping[str, list[str]] = doc.get("small", {})
        self._timeline = [dict(row) for row in timeline]
        self._blobs: dict[str, tuple[bytes, str]] = {}
        self._images: dict[tuple[Any, ...], Manifest] = {}
        self._built: dict[str, Built] = {}
        self._lock = threading.RLock()

    # -- what there is ---------------------------------------------------------

    @property
    def images(self) -> list[str]:
        """The image names (``nginx``, ``redis``...), as Docker Hub's ``library/`` repositories."""
        return sorted(self.doc["images"])

    def tags(self, image: str) -> list[str]:
        """Every tag of ``image`` in the data (the 2018 snapshot's and the 2026 ones)."""
        entry = self.doc["images"][image]
        return sorted({*entry.get("tags", {}), *entry.get("recent", {})})

    def selection(
        self, images: Iterable[str] | Mapping[str, Iterable[str]] | None = None, *, small: bool = False
    ) -> dict[str, list[str]]:
        """``{image: [tags]}``: all, the named images, ``{image: tags}`` as given, or the small subset."""
        if small:
            base = {image: list(tags) for image, tags in self.small.items()}
        else:
            base = {image: self.tags(image) for image in self.images}
        if images is None:
            return base
        if isinstance(images, Mapping):
            chosen = {str(k): [str(t) for t in v] for k, v in images.items()}
        else:
            chosen = {str(image): base.get(str(image), []) for image in images}
        for image, tags in chosen.items():
            if image not in self.doc["images"]:
                raise SandboxError(f"no image {image!r} in the demo data; it has {', '.join(self.images)}")
            known = set(self.tags(image))
            missing = [t for t in tags if t not in known]
            if missing:
                raise SandboxError(f"no tag {', '.join(missing)} of {image} in the demo data")
        return chosen

    @cached_property
    def _versions(self) -> dict[tuple[str, str], list[TagVersion]]:
        recorded = set(self.indexes)
        out: dict[tuple[str, str], list[TagVersion]] = {}
        for row in self._timeline:
            created = _time(row.get("newest_created"))
            seen = _time(row["seen_at"])
            if created is None or seen is None:
                continue  # a version the data cannot date cannot be rebuilt
            key = (row["image"], row["tag"])
            out.setdefault(key, []).append(TagVersion(
                row["image"], row["tag"], seen, row["index_digest"], created, row["index_digest"] in recorded,
            ))
        for image, entry in self.doc["images"].items():
            for group in ("tags", "recent"):
                for tag, digest in entry.get(group, {}).items():
                    versions = out.setdefault((image, tag), [])
                    if not any(v.hub_digest == digest for v in versions):
                        # Not in the timeline: it was served when the snapshot was taken.
                        when = _time(self.indexes[digest].get("seen_at")) or datetime(2018, 1, 27, tzinfo=UTC)
                        created = self._amd64_created(digest)
                        versions.append(TagVersion(image, tag, when, digest, created, True))
        for versions in out.values():
            versions.sort(key=lambda v: v.seen_at)
        return out

    def versions(self, image: str, tag: str) -> list[TagVersion]:
        """Every known state of a tag, oldest first; the last is what :meth:`Sandbox.fill` pushes."""
        try:
            return list(self._versions[(image, tag)])
        except KeyError:
            raise SandboxError(f"no tag {image}:{tag} in the demo data") from None

    def version_at(self, image: str, tag: str, when: datetime | str | None) -> TagVersion | None:
        """The state of a tag at ``when`` (None: the newest); None if the tag did not exist yet."""
        versions = self.versions(image, tag)
        if when is None:
            return versions[-1]
        stamp = _time(when) if isinstance(when, str) else when
        assert stamp is not None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        past = [v for v in versions if v.seen_at <= stamp]
        return past[-1] if past else None

    def timeline(self) -> pd.DataFrame:
        """The tag moves of the data, shaped like ``timeline.csv``.

        For :func:`~regdata.freshness.classify_changes`.
        """
        import pandas as pd

        frame = pd.DataFrame(self._timeline, columns=["image", "tag", "seen_at", "index_digest",
                                                      "newest_created"])
        for column in ("seen_at", "newest_created"):
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        return frame

    def versions_frame(self, image: str, tag: str) -> pd.DataFrame:
        """The states of one tag with the digest each has in the sandbox (``digest``)."""
        import pandas as pd

        rows = [
            {"image": v.image, "tag": v.tag, "seen_at": v.seen_at, "hub_digest": v.hub_digest,
             "created": v.created, "recorded": v.recorded, "digest": self.build(v).digest}
            for v in self.versions(image, tag)
        ]
        frame = pd.DataFrame(rows, columns=["image", "tag", "seen_at", "hub_digest", "created", "recorded",
                                            "digest"])
        for column in ("seen_at", "created"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    # -- building ------------------------------------------------------------

    def _amd64(self, index_digest: str) -> Mapping[str, Any]:
        entries = [self.manifests[d] for d in self.indexes[index_digest]["manifests"]]
        images = [m for m in entries if not m.get("attestation")]
        return next((m for m in images if m["architecture"] == "amd64"), images[0])

    def _amd64_created(self, index_digest: str) -> datetime | None:
        return _newest(self._amd64(index_digest))

    def digest_of(self, version: TagVersion) -> str:
        """The digest ``version`` has in the sandbox."""
        return self.build(version).digest

    def build(self, version: TagVersion) -> Built:
        """The exact manifests and blobs of a tag version in the sandbox (memoised)."""
        with self._lock:
            built = self._built.get(version.hub_digest)
            if built is None:
                built = self._build(version.hub_digest)
                self._built[version.hub_digest] = built
            return built

    def _canonical(self, hub_digest: str) -> tuple[list[TagVersion], int]:
        """The version list of the first tag (by name) that held ``hub_digest``, and its position.

        A digest shared by several tags (``1.13``, ``1.13.8``, ``mainline``)
        is rebuilt the same way whichever tag asks, so it stays shared.
        """
        for key in sorted(self._versions):
            versions = self._versions[key]
            for i, v in enumerate(versions):
                if v.hub_digest == hub_digest:
                    return versions, i
        raise SandboxError(f"index {hub_digest} is not in the demo data")

    def _build(self, hub_digest: str) -> Built:
        if hub_digest in self.indexes:
            return self._index(hub_digest, None, None)
        versions, i = self._canonical(hub_digest)
        version = versions[i]
        later = [v for v in versions[i + 1:] if v.recorded]
        earlier = [v for v in versions[:i] if v.recorded]
        template = later[0] if later else earlier[-1]
        # A run of versions with one created time is one build re-pushed: each lists more
        # of the template's platforms than the one before it.
        same = [j for j, v in enumerate(versions) if v.created == version.created]
        run = _run(same, i)
        return self._index(template.hub_digest, version.created, (run.index(i) + 1, len(run)))

    def _index(self, hub_digest: str, created: datetime | None, share: tuple[int, int] | None) -> Built:
        index = self.indexes[hub_digest]
        oci = index["mime"] == OCI_INDEX
        entries = [(d, self.manifests[d]) for d in index["manifests"]]
        amd64_created = self._amd64_created(hub_digest)
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
                att = self._attestation(record, last_image.digest)
                children.append(att)
                descriptors.append({
                    **att.descriptor(), "platform": {"architecture": "unknown", "os": "unknown"},
                    "annotations": {"vnd.docker.reference.digest": last_image.digest,
                                    "vnd.docker.reference.type": "attestation-manifest"},
                })
                continue
            keep_last = real in keep
            if not keep_last:
                continue
            cutoff = None
            if created is not None and amd64_created is not None:
                newest = _newest(record)
                if newest is not None:
                    cutoff = created + (newest - amd64_created)
            image = self._image(real, record, oci, cutoff)
            last_image = image
            children.append(image)
            descriptors.append({**image.descriptor(), "platform": _platform(record)})
        if index["mime"] is None:  # a single-manifest tag: the image is the top
            return Built(children[0])
        body = _dumps({"schemaVersion": 2, "mediaType": index["mime"], "manifests": descriptors})
        return Built(Manifest(_sha256(body), index["mime"], body), tuple(children))

    def _layer(self, seed: str, real: str, size: int) -> tuple[bytes, str]:
        found = self._blobs.get(seed)
        if found is None:
            found = self._blobs[seed] = _stand_in_layer(seed, real, size)
        return found

    def _image(self, real: str, record: Mapping[str, Any], oci: bool, cutoff: datetime | None) -> Manifest:
        key = (real, oci, cutoff)
        found = self._images.get(key)
        if found is not None:
            return found
        history = [(str(h[0]) if h[0] else None, str(h[1] or "")) for h in record["history"]]
        layers = record["layers"]
        empty = _empty_flags([by for _, by in history], len(layers))
        times = [_time(c) for c, _ in history]
        newest = max((t for t in times if t is not None), default=None)
        moved = _moved(times, newest, cutoff)
        reseed = _text(cutoff) if cutoff is not None else ""
        changed: set[int] = set()
        layer_no = 0
        config_history = []
        steps = zip(history, empty, times, moved, strict=True)
        for (created_text, created_by), is_empty, stamp, new in steps:
            entry: dict[str, Any] = {}
            if new is not None and new != stamp:
                entry["created"] = _text(new)
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
                descriptors.append({"mediaType": mime, "size": size, "digest": digest,
                                    "urls": [FOREIGN_URL.format(digest=digest)]})
                diff_ids.append(digest)
                continue
            seed = f"{digest}@{reseed}" if i in changed else digest
            data, diff_id = self._layer(seed, digest, size)
            blob = Blob(_sha256(data), data)
            blobs.append(blob)
            # The real size, not len(data): see the module docstring.
            descriptors.append({"mediaType": mime, "size": size, "digest": blob.digest})
            diff_ids.append(diff_id)
        config: dict[str, Any] = {"architecture": record["architecture"], "os": record["os"]}
        if record.get("variant"):
            config["variant"] = record["variant"]
        if record.get("os_version"):
            config["os.version"] = record["os_version"]
        inner = {name: value for name, value in (
            ("Cmd", _json_list(record.get("cmd"))), ("Entrypoint", _json_list(record.get("entrypoint"))),
            ("Shell", _json_list(record.get("shell"))),
        ) if value is not None}
        config["config"] = inner
        created = [t for t in (_time(h.get("created")) for h in config_history) if t is not None]
        if created:
            config["created"] = _text(max(created))
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
            "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, "size": len(config_bytes),
                       "digest": config_blob.digest},
            "layers": descriptors,
        }
        body = _dumps(manifest)
        built = Manifest(_sha256(body), str(manifest["mediaType"]), body, (*blobs, config_blob))
        self._images[key] = built
        return built

    def _attestation(self, record: Mapping[str, Any], image_digest: str) -> Manifest:
        """A buildkit attestation manifest for ``image_digest``: stand-in in-toto statements."""
        blobs: list[Blob] = []
        descriptors: list[dict[str, Any]] = []
        for i, (digest, size, _mime) in enumerate(record["layers"]):
            predicate = _PREDICATES[i % len(_PREDICATES)]
            statement = _dumps({
                "_type": "https://in-toto.io/Statement/v0.1", "predicateType": predicate,
                "subject": [{"name": "_", "digest": {"sha256": image_digest.split(":", 1)[1]}}],
                "predicate": {"regdata-stand-in-for": digest},
            })
            blob = Blob(_sha256(statement), statement)
            blobs.append(blob)
            descriptors.append({"mediaType": IN_TOTO, "size": size, "digest": blob.digest,
                                "annotations": {"in-toto.io/predicate-type": predicate}})
        config = _dumps({"architecture": "unknown", "os": "unknown", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [b.digest for b in blobs]}})
        config_blob = Blob(_sha256(config), config)
        body = _dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_blob.digest},
            "layers": descriptors,
        })
        return Manifest(_sha256(body), OCI_MANIFEST, body, (*blobs, config_blob))


def _run(positions: list[int], i: int) -> list[int]:
    """The run of consecutive positions around ``i``."""
    run = [i]
    while run[0] - 1 in positions:
        run.insert(0, run[0] - 1)
    while run[-1] + 1 in positions:
        run.append(run[-1] + 1)
    return run


def _newest(record: Mapping[str, Any]) -> datetime | None:
    return max((t for t in (_time(h[0]) for h in record["history"]) if t is not None), default=None)


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
    platform: dict[str, Any] = {"architecture": record["architecture"], "os": record["os"]}
    if record.get("os_version"):
        platform["os.version"] = record["os_version"]
    if record.get("variant"):
        platform["variant"] = record["variant"]
    return platform


def load_data(directory: str | os.PathLike[str] | None = None) -> DemoData:
    """The demo data of ``directory`` (default :func:`data_dir`), parsed."""
    root = Path(directory) if directory is not None else data_dir()
    path, timeline = root / DATA_FILE, root / TIMELINE_FILE
    if not path.is_file():
        raise SandboxError(
            f"demo data not found at {path}; set {DATA_ENV} to the data/ directory of a regdata checkout"
        )
    with gzip.open(path, "rt", encoding="utf-8") as f:
        doc = json.load(f)
    rows: list[dict[str, str]] = []
    if timeline.is_file():
        with gzip.open(timeline, "rt", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    return DemoData(doc, rows)


# --------------------------------------------------------------------------- pushing


class _Client:
    """HTTP/1.1 to the sandbox, one kept-alive connection per thread.

    ``http.client`` rather than ``requests``: a first fill is thousands of
    small requests, and on two cores the client's CPU per request counts.
    """

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []
        self.count = 0

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-case names, body)."""
        with self._lock:
            self.count += 1
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=dict(headers or {}))
                response = conn.getresponse()
                data = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, data
            except (ConnectionError, http.client.HTTPException) as exc:
                # A kept-alive connection the server closed: reconnect once.
                conn.close()
                if attempt == 2:
                    raise SandboxError(f"{method} {path}: {exc}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()


class _Pusher:
    """Pushes through the registry HTTP API; HEAD before every PUT.

    Distribution's filesystem storage is not safe for two concurrent writes of
    one blob or manifest (a reader can see a half-written link), and many tags
    share content: the fill writes each once, in phases (blobs, then platform
    manifests, then indexes and tags), each phase concurrent.
    """

    def __init__(self, port: int) -> None:
        self.http = _Client(port)
        self._lock = threading.Lock()
        self.blobs = self.manifests = 0

    def tags(self, repo: str) -> list[str]:
        """The tags of ``repo``; none when it does not exist yet."""
        status, _, body = self.http.request("GET", f"/v2/{repo}/tags/list")
        if status == 404:
            return []
        _check(status, body, f"tags of {repo}", 200)
        return list(json.loads(body).get("tags") or [])

    def manifest_digest(self, repo: str, reference: str) -> str | None:
        """The digest ``reference`` (a tag or digest) has, None when absent."""
        status, headers, body = self.http.request(
            "HEAD", f"/v2/{repo}/manifests/{reference}", headers={"Accept": _ACCEPT})
        if status == 404:
            return None
        _check(status, body, f"HEAD {repo}:{reference}", 200)
        return headers.get("docker-content-digest")

    def blob(self, repo: str, blob: Blob, head: bool) -> None:
        """Upload a blob (monolithic: POST, then PUT with the digest), unless a HEAD finds it."""
        if head:
            status, _, _ = self.http.request("HEAD", f"/v2/{repo}/blobs/{blob.digest}")
            if status == 200:
                return
        status, headers, body = self.http.request("POST", f"/v2/{repo}/blobs/uploads/", b"")
        _check(status, body, f"upload of {blob.digest} to {repo}", 202)
        location = urlsplit(urljoin(f"http://127.0.0.1:{self.http.port}/", headers["location"]))
        query = (location.query + "&" if location.query else "") + urlencode({"digest": blob.digest})
        status, _, body = self.http.request("PUT", f"{location.path}?{query}", blob.data,
                                            {"Content-Type": "application/octet-stream"})
        _check(status, body, f"upload of {blob.digest} to {repo}", 201)
        with self._lock:
            self.blobs += 1

    def put(self, repo: str, reference: str, manifest: Manifest) -> None:
        status, _, body = self.http.request("PUT", f"/v2/{repo}/manifests/{reference}", manifest.body,
                                            {"Content-Type": manifest.media_type})
        _check(status, body, f"PUT {repo}:{reference}", 201)
        with self._lock:
            self.manifests += 1


def _check(status: int, body: bytes, what: str, expected: int) -> None:
    if status != expected:
        raise SandboxError(f"{what}: {status} {body[:300].decode('utf-8', 'replace')!r}")


@dataclass
class FillReport:
    """What :meth:`Sandbox.fill` did."""

    tags: int = 0  # tag versions (and pins) asked for
    pushed: int = 0  # pushed, or their tag moved
    unchanged: int = 0  # already there
    blobs: int = 0  # blobs uploaded
    manifests: int = 0  # manifests put
    requests: int = 0  # HTTP requests made
    seconds: float = 0.0
    pins: dict[str, str] = field(default_factory=dict)  # pin reference -> what became of it

    def __str__(self) -> str:
        if not self.pushed:
            return f"{self.tags} tags already there ({self.requests} HEADs, {self.seconds:.1f} s)"
        return (f"{self.pushed} of {self.tags} tags pushed ({self.blobs} blobs, {self.manifests} manifests, "
                f"{self.requests} requests, {self.seconds:.1f} s)")


@dataclass(frozen=True)
class _Job:
    image: str
    tag: str
    version: TagVersion
    move_tag: bool  # put under the tag (else by digest only: an older image a fleet pins)

    @property
    def repo(self) -> str:
        return f"library/{self.image}"


class _Fill:
    """One fill, in phases: decide per tag, then check and write what is missing, once each."""

    def __init__(self, data: DemoData, pusher: _Pusher, pool: ThreadPoolExecutor,
                 progress: Callable[[int, int], None] | None) -> None:
        self.data = data
        self.pusher = pusher
        self.pool = pool
        self.progress = progress
        self.done = 0
        self.total = 0
        self.fresh: set[str] = set()  # repositories with no tag yet: nothing in them to HEAD
        self._lock = threading.Lock()

    def _each(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``fn`` over ``items`` concurrently, counting progress."""
        with self._lock:
            self.total += len(items)

        def step(item: Any) -> Any:
            try:
                return fn(item)
            finally:
                with self._lock:
                    self.done += 1
                    done, total = self.done, self.total
                if self.progress is not None:
                    self.progress(done, total)

        return list(self.pool.map(step, items))

    def _decide(self, job: _Job) -> tuple[Built, str | None, bool]:
        """(content, tag to put it under, whether the job is already done)."""
        built = self.data.build(job.version)
        if not job.move_tag:
            return built, None, False
        current = None if job.repo in self.fresh else self.pusher.manifest_digest(job.repo, job.tag)
        if current == built.digest:
            return built, None, True
        if current is not None:
            versions = self.data.versions(job.image, job.tag)
            later = versions[versions.index(job.version) + 1:]
            if any(self.data.digest_of(v) == current for v in later):
                return built, None, False  # tags move forward only: push by digest
        return built, job.tag, False

    def _missing(self, key: tuple[str, str]) -> bool:
        repo, digest = key
        return repo in self.fresh or self.pusher.manifest_digest(repo, digest) is None

    def run(self, jobs: list[_Job], report: FillReport) -> None:
        pusher = self.pusher
        repos = sorted({job.repo for job in jobs})
        self.fresh = {repo for repo, tags in zip(repos, self._each(pusher.tags, repos), strict=True)
                      if not tags}
        decisions = self._each(self._decide, jobs)
        tops: dict[tuple[str, str], tuple[Built, list[str]]] = {}
        for job, (built, tag, done) in zip(jobs, decisions, strict=True):
            if done:
                continue
            entry = tops.setdefault((job.repo, built.digest), (built, []))
            if tag is not None and tag not in entry[1]:
                entry[1].append(tag)
        top_keys = list(tops)
        missing_tops = {k for k, gone in zip(top_keys, self._each(self._missing, top_keys), strict=True)
                        if gone}
        children: dict[tuple[str, str], Manifest] = {}
        for key in missing_tops:
            for child in tops[key][0].children:
                children.setdefault((key[0], child.digest), child)
        child_keys = list(children)
        missing_children = [k for k, gone in zip(child_keys, self._each(self._missing, child_keys),
                                                 strict=True) if gone]
        blobs: dict[tuple[str, str], Blob] = {}
        for repo, digest in missing_children:
            for blob in children[(repo, digest)].blobs:
                blobs.setdefault((repo, blob.digest), blob)
        for repo, digest in missing_tops:
            for blob in tops[(repo, digest)][0].top.blobs:
                blobs.setdefault((repo, blob.digest), blob)
        self._each(lambda key: pusher.blob(key[0], blobs[key], key[0] not in self.fresh), list(blobs))
        self._each(lambda key: pusher.put(key[0], key[1], children[key]), missing_children)

        def put_top(key: tuple[str, str]) -> None:
            built, tags = tops[key]
            # One thread per manifest: the tags of one index are written one after another.
            if key in missing_tops and not tags:
                pusher.put(key[0], key[1], built.top)
            for tag in tags:
                pusher.put(key[0], tag, built.top)

        self._each(put_top, top_keys)
        report.pushed = sum(
            1 for job, (built, tag, done) in zip(jobs, decisions, strict=True)
            if not done and (tag is not None or (job.repo, built.digest) in missing_tops)
        )
        report.unchanged = report.tags - report.pushed


# --------------------------------------------------------------------------- the server


def _binary(binary: str | None) -> str:
    candidates = [binary or os.environ.get(BIN_ENV) or "/usr/bin/docker-registry"]
    found = shutil.which("docker-registry")
    if found and binary is None:
        candidates.append(found)
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SandboxError(
        f"Debian's Distribution registry is not installed ({candidates[0]} not found): "
        f"run `{INSTALL_HINT}` (or `bash scripts/demo` as root, which installs it), "
        f"or set {BIN_ENV} to a registry binary"
    )


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_root() -> Path:
    """``<user cache dir>/regdata/sandbox``: the storage and the demo's cache live here."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("regdata")) / "sandbox"


class Sandbox:
    """A running sandbox registry: Debian's Distribution registry on 127.0.0.1.

    Start with :meth:`start`; stop with :meth:`stop` (also at interpreter
    exit, and if this process dies).  ``host`` is ``127.0.0.1:<port>``,
    ``url`` its ``http://`` URL, ``mirrors`` what to give
    :class:`~regdata.Registry` so references to ``docker.io`` are read from
    here: ``Registry(mirrors=sandbox.mirrors)``.
    """

    def __init__(self, root: Path, port: int, process: subprocess.Popen[bytes],
                 data: DemoData | None = None) -> None:
        self.root = root
        self.port = port
        self.process = process
        self._data = data
        atexit.register(self.stop)

    # -- life cycle -------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        port: int | None = None,
        root: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        data: DemoData | None = None,
        timeout: float = 15.0,
    ) -> Sandbox:
        """Start the registry.

        ``port``: ``$REGDATA_SANDBOX_PORT`` or 5055 by default; when taken, a
        free port (0 asks for a free port outright).  ``root``: where its
        storage, config and log go (default ``~/.cache/regdata/sandbox``);
        a second start on the same root finds the images already there.
        """
        exe = _binary(binary)
        base = Path(root) if root is not None else default_root()
        (base / "storage").mkdir(parents=True, exist_ok=True)
        wanted = port if port is not None else int(os.environ.get(PORT_ENV) or DEFAULT_PORT)
        tries = [wanted] if wanted and not _listening(wanted) else []
        tries += [_free_port(), _free_port()]
        last = ""
        for candidate in tries:
            process = cls._spawn(exe, base, candidate)
            error = cls._wait(process, candidate, timeout)
            if error is None:
                return cls(base, candidate, process, data)
            last = error
            if "address already in use" not in error:
                break
        raise SandboxError(f"the sandbox registry did not start: {last}\n(log: {base / 'registry.log'})")

    @staticmethod
    def _spawn(exe: str, root: Path, port: int) -> subprocess.Popen[bytes]:
        config = {
            "version": 0.1,
            "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(root / "storage")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
                "cache": {"blobdescriptor": "inmemory"},
            },
            "http": {"addr": f"127.0.0.1:{port}", "secret": "regdata-sandbox"},
            "health": {"storagedriver": {"enabled": False}},
            "validation": {"manifests": {"urls": {"allow": [_FOREIGN_ALLOW]}}},
        }
        path = root / "config.yml"
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        # setpriv kills the registry if this process dies without running atexit.
        setpriv = shutil.which("setpriv")
        prefix = [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []
        with open(root / "registry.log", "ab") as log:
            return subprocess.Popen([*prefix, exe, "serve", str(path)], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, close_fds=True)

    @staticmethod
    def _wait(process: subprocess.Popen[bytes], port: int, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        session = requests.Session()
        session.trust_env = False
        try:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    return f"it exited with code {process.returncode}" + (
                        " (address already in use)" if _listening(port) else "")
                try:
                    session.get(f"http://127.0.0.1:{port}/v2/", timeout=1.0)
                    return None
                except requests.RequestException:
                    time.sleep(0.05)
        finally:
            session.close()
        process.terminate()
        return f"no answer on 127.0.0.1:{port} within {timeout:.0f} s"

    def stop(self) -> None:
        """Stop the registry (its storage stays, for the next start)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        atexit.unregister(self.stop)

    @property
    def running(self) -> bool:
        """True while the registry process runs."""
        return self.process.poll() is None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Sandbox({self.host}, root={str(self.root)!r}, running={self.running})"

    # -- addresses --------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: a registry host as references name it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}"

    @property
    def mirrors(self) -> dict[str, str]:
        """``{"docker.io": host}``, for ``Registry(mirrors=...)``."""
        return {"docker.io": self.host}

    @property
    def data(self) -> DemoData:
        """The demo data this sandbox is filled from (loaded on first use)."""
        if self._data is None:
            self._data = load_data()
        return self._data

    def registry(self, **options: Any) -> Registry:
        """A :class:`~regdata.Registry` that reads ``docker.io`` from this sandbox.

        ``options`` go to the Registry (``cache=``, ``platforms=``...); the
        cache defaults to ``memory://`` so a notebook starts clean.  A cached
        tag is trusted for ``cache_ttl`` seconds (300): to see a tag moved by
        :meth:`fill` at once, pass ``cache_ttl=0`` (or ``cache=None``).
        """
        from .registry import Registry

        options.setdefault("cache", "memory://")
        mirrors = {**self.mirrors, **options.pop("mirrors", {})}
        return Registry(mirrors=mirrors, **options)

    # -- filling ---------------------------------------------------------------

    def fill(
        self,
        images: Iterable[str] | Mapping[str, Iterable[str]] | None = None,
        *,
        as_of: datetime | str | None = None,
        pins: Iterable[str] = (),
        small: bool = False,
        concurrency: int = 8,
        progress: Callable[[int, int], None] | None = None,
    ) -> FillReport:
        """Push the demo images: every tag as it is in the data's newest state, or ``as_of`` a time.

        ``images``: image names (``["nginx", "redis"]``) or ``{image: [tags]}``;
        ``small``: the small subset the tests use.  Idempotent: a tag already
        at its version costs one HEAD.  Tags move forward only: a tag that
        already holds a later version keeps it, and the older image is pushed
        by digest.  ``pins``: references with a digest (``nginx:1.13@sha256:...``,
        as a fleet pins them) whose image is one of the older versions of that
        tag; each is pushed by digest.  ``progress(done, total)`` is called as
        tags finish.
        """
        started = time.perf_counter()
        data = self.data
        jobs = [
            _Job(image, tag, version, True)
            for image, tags in data.selection(images, small=small).items() for tag in tags
            if (version := data.version_at(image, tag, as_of)) is not None
        ]
        report = FillReport()
        for pin in pins:
            found = self._pin(pin)
            if isinstance(found, str):
                report.pins[pin] = found
            else:
                report.pins[pin] = f"{found.image}:{found.tag} as of {_text(found.seen_at)}"
                jobs.append(_Job(found.image, found.tag, found, False))
        report.tags = len(jobs)
        pusher = _Pusher(self.port)
        try:
            workers = max(1, concurrency)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="regdata-fill") as pool:
                _Fill(self.data, pusher, pool, progress).run(jobs, report)
        finally:
            pusher.http.close()
        report.blobs, report.manifests, report.requests = pusher.blobs, pusher.manifests, pusher.http.count
        report.seconds = time.perf_counter() - started
        return report

    def _pin(self, reference: str) -> TagVersion | str:
        """The tag version a pinned reference names, or why there is none."""
        from .reference import parse_reference

        ref = parse_reference(reference)
        if ref.digest is None:
            return "no digest: nothing to pin"
        image = ref.repository.removeprefix("library/")
        if ref.registry != "docker.io" or image not in self.data.images:
            return f"{ref.registry}/{ref.repository} is not in the demo data"
        tags = [ref.tag] if ref.tag else self.data.tags(image)
        for tag in tags:
            if tag not in self.data.tags(image):
                return f"no tag {image}:{tag} in the demo data"
            for version in self.data.versions(image, tag):
                if self.data.digest_of(version) == ref.digest:
                    return version
        return f"{ref.digest} is no version of {image}:{ref.tag or '*'} in the demo data"

    def versions(self, image: str, tag: str) -> pd.DataFrame:
        """The states of a tag over time, with the digest each has here (see :class:`DemoData`)."""
        return self.data.versions_frame(image, tag)


def pinned_reference(data: DemoData, image: str, tag: str, when: datetime | str) -> str:
    """``image:tag@<sandbox digest>`` of the tag as it was at ``when`` (for writing fleet files)."""
    version = data.version_at(image, tag, when)
    if version is None:
        raise SandboxError(f"{image}:{tag} did not exist at {when}")
    return f"{image}:{tag}@{data.digest_of(version)}"


"""The demo data of ``regdata/sandbox/data/``: real Docker Hub tags and images, and how the tags moved.

:func:`load_data` reads ``dockerhub-subset.json.gz`` (the tags, their indexes
and platform manifests, as recorded) and ``timeline-subset.csv.gz`` (when each
tag moved); ``scripts/make-demo-data`` writes them (see ``regdata/sandbox/data/README.md``).

A tag's versions (:class:`TagVersion`) come from the timeline.  Only some are
recorded in full; an older one is **reconstructed** from the next recorded
version of that tag: its newest history entries are moved back to the
version's created time (and their layers re-seeded), and a re-push (same
created time, new digest) lists fewer of the same images, as happens when
Docker Hub re-pushes an index as each platform finishes building.
:meth:`DemoData.build` gives the bytes (:mod:`regdata.sandbox.imagebuild`), so a
sandbox digest is known without a sandbox.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regdata.sandbox.errors import SandboxError
from regdata.sandbox.imagebuild import Built, ImageBuilder, amd64_record, newest_created, parse_time

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DATA_ENV",
    "DATA_FILE",
    "DATA_FORMAT",
    "TIMELINE_FILE",
    "DemoData",
    "SandboxError",
    "TagVersion",
    "data_dir",
    "load_data",
    "pinned_reference",
]

DATA_ENV = "REGDATA_DEMO_DATA"
DATA_FILE = "dockerhub-subset.json.gz"
TIMELINE_FILE = "timeline-subset.csv.gz"
DATA_FORMAT = "regdata-demo-data/1"
# When snapshot.json was recorded: the date of the tags the timeline does not list.
_SNAPSHOT_DAY = datetime(2018, 1, 27, tzinfo=UTC)


def data_dir() -> Path:
    """``$REGDATA_DEMO_DATA``, else the package's own ``data/`` (it ships in the wheel)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "data"


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


class DemoData:
    """The demo data of ``regdata/sandbox/data/``: real tags and images, and how the tags moved.

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
        self._builder = ImageBuilder()
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
            created = parse_time(row.get("newest_created"))
            seen = parse_time(row["seen_at"])
            if created is None or seen is None:
                continue  # a version the data cannot date cannot be rebuilt
            key = (row["image"], row["tag"])
            out.setdefault(key, []).append(
                TagVersion(
                    row["image"],
                    row["tag"],
                    seen,
                    row["index_digest"],
                    created,
                    row["index_digest"] in recorded,
                )
            )
        for image, entry in self.doc["images"].items():
            for group in ("tags", "recent"):
                for tag, digest in entry.get(group, {}).items():
                    versions = out.setdefault((image, tag), [])
                    if not any(v.hub_digest == digest for v in versions):
                        # Not in the timeline: it was served when the snapshot was taken.
                        when = parse_time(self.indexes[digest].get("seen_at")) or _SNAPSHOT_DAY
                        created = newest_created(amd64_record(self._records(digest)))
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
        stamp = parse_time(when) if isinstance(when, str) else when
        assert stamp is not None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        past = [v for v in versions if v.seen_at <= stamp]
        return past[-1] if past else None

    def timeline(self) -> pd.DataFrame:
        """The tag moves of the data, shaped like ``timeline.csv``.

        For :func:`~regdata.analysis.freshness.classify_changes`.
        """
        import pandas as pd

        frame = pd.DataFrame(
            self._timeline, columns=["image", "tag", "seen_at", "index_digest", "newest_created"]
        )
        for column in ("seen_at", "newest_created"):
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        return frame

    def versions_frame(self, image: str, tag: str) -> pd.DataFrame:
        """The states of one tag with the digest each has in the sandbox (``digest``)."""
        import pandas as pd

        rows = [
            {
                "image": v.image,
                "tag": v.tag,
                "seen_at": v.seen_at,
                "hub_digest": v.hub_digest,
                "created": v.created,
                "recorded": v.recorded,
                "digest": self.build(v).digest,
            }
            for v in self.versions(image, tag)
        ]
        frame = pd.DataFrame(
            rows, columns=["image", "tag", "seen_at", "hub_digest", "created", "recorded", "digest"]
        )
        for column in ("seen_at", "created"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    # -- building ------------------------------------------------------------

    def _records(self, index_digest: str) -> list[Mapping[str, Any]]:
        return [self.manifests[d] for d in self.indexes[index_digest]["manifests"]]

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
            return self._index(hub_digest)
        versions, i = self._canonical(hub_digest)
        version = versions[i]
        later = [v for v in versions[i + 1 :] if v.recorded]
        earlier = [v for v in versions[:i] if v.recorded]
        template = later[0] if later else earlier[-1]
        # A run of versions with one created time is one build re-pushed: each lists more
        # of the template's platforms than the one before it.
        same = [j for j, v in enumerate(versions) if v.created == version.created]
        run = _run(same, i)
        return self._index(template.hub_digest, version.created, (run.index(i) + 1, len(run)))

    def _index(
        self, hub_digest: str, created: datetime | None = None, share: tuple[int, int] | None = None
    ) -> Built:
        index = self.indexes[hub_digest]
        entries = [(d, self.manifests[d]) for d in index["manifests"]]
        return self._builder.index(index["mime"], entries, created=created, share=share)


def _run(positions: list[int], i: int) -> list[int]:
    """The run of consecutive positions around ``i``."""
    run = [i]
    while run[0] - 1 in positions:
        run.insert(0, run[0] - 1)
    while run[-1] + 1 in positions:
        run.append(run[-1] + 1)
    return run


def load_data(directory: str | os.PathLike[str] | None = None) -> DemoData:
    """The demo data of ``directory`` (default :func:`data_dir`), parsed."""
    root = Path(directory) if directory is not None else data_dir()
    path, timeline = root / DATA_FILE, root / TIMELINE_FILE
    if not path.is_file():
        raise SandboxError(
            f"demo data not found at {path}; set {DATA_ENV} to a directory holding {DATA_FILE}"
        )
    with gzip.open(path, "rt", encoding="utf-8") as f:
        doc = json.load(f)
    rows: list[dict[str, str]] = []
    if timeline.is_file():
        with gzip.open(timeline, "rt", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    return DemoData(doc, rows)


def pinned_reference(data: DemoData, image: str, tag: str, when: datetime | str) -> str:
    """``image:tag@<sandbox digest>`` of the tag as it was at ``when`` (for writing fleet files)."""
    version = data.version_at(image, tag, when)
    if version is None:
        raise SandboxError(f"{image}:{tag} did not exist at {when}")
    return f"{image}:{tag}@{data.digest_of(version)}"

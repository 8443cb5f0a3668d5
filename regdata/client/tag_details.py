"""Every tag's digest, size and times from one ``tags/list`` answer, where the registry gives them.

Google's registries (GCR, Artifact Registry's ``*-docker.pkg.dev``) add a
``manifest`` map to the answer of ``GET /v2/<name>/tags/list``, keyed by
digest::

    "manifest": {"sha256:...": {"tag": ["v1", "latest"], "mediaType": "...",
                                "imageSizeBytes": "2801", "timeCreatedMs": "1700000000000",
                                "timeUploadedMs": "1700000005000"}}

That is every tag's digest and created time in one request, where reading
the manifests and configs costs two or more per tag.  :func:`tag_details_rows`
turns it into rows of :data:`TAG_DETAILS`: one per (digest, tag), an untagged
digest once with no tag, and a listed tag the map does not know (any other
registry: all of them) with only its name.  A value of the wrong shape is
NA in its row and said in ``error``; it never loses the other rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from regdata.errors import printable
from regdata.frames import TAG_DETAILS
from regdata.oci.manifest import is_digest

__all__ = ["TAG_DETAILS", "tag_details_rows"]


def _number(value: object) -> int | None:
    """A count GCR sends as a decimal string (sometimes a number); None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    return None


def _millis(value: object) -> pd.Timestamp | None:
    ms = _number(value)
    if not ms or ms > 253_402_300_799_999:  # 0 is "unknown"; past year 9999 is nonsense
        return None
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def _entry_rows(registry: str, repository: str, digest: object, entry: object) -> list[dict[str, Any]]:
    base: dict[str, Any] = {"registry": registry, "repository": repository}
    if not isinstance(digest, str) or not is_digest(digest):
        return [{**base, "error": f"manifest map key is not a digest: {printable(str(digest), 80)!r}"}]
    base["digest"] = digest
    if not isinstance(entry, Mapping):
        return [{**base, "error": "manifest map entry is not an object"}]
    problems = []
    media = entry.get("mediaType")
    base["media_type"] = media if isinstance(media, str) else None
    base["size"] = _number(entry.get("imageSizeBytes"))
    base["created"] = _millis(entry.get("timeCreatedMs"))
    base["uploaded"] = _millis(entry.get("timeUploadedMs"))
    for field, column in (
        ("imageSizeBytes", "size"),
        ("timeCreatedMs", "created"),
        ("timeUploadedMs", "uploaded"),
    ):
        raw = entry.get(field)
        if raw is not None and base[column] is None and raw not in ("0", 0):
            problems.append(f"{field} is not a count")
    tags = entry.get("tag", [])
    if not isinstance(tags, list):
        problems.append("tag is not a list")
        tags = []
    names = [t for t in tags if isinstance(t, str)]
    if len(names) != len(tags):
        problems.append("a tag is not a string")
    base["error"] = "; ".join(problems) or None
    return [{**base, "tag": name} for name in names] or [{**base, "tag": None}]


def tag_details_rows(
    registry: str, repository: str, pages: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The rows of :data:`TAG_DETAILS` for every page of one repository's ``tags/list``."""
    rows: list[dict[str, Any]] = []
    listed: list[str] = []
    for page in pages:
        tags = page.get("tags")
        listed += [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
        manifest = page.get("manifest")
        if manifest is None:
            continue
        if not isinstance(manifest, Mapping):
            rows.append(
                {"registry": registry, "repository": repository, "error": "the manifest map is not an object"}
            )
            continue
        for digest, entry in manifest.items():
            rows += _entry_rows(registry, repository, digest, entry)
    known = {row.get("tag") for row in rows}
    rows += [
        {"registry": registry, "repository": repository, "tag": tag}
        for tag in dict.fromkeys(listed)
        if tag not in known
    ]
    return rows

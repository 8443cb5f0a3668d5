"""What a contender read, reduced to what every contender can say, to check they agree.

Timings only count when everyone read the same thing. Two projections:

- ``rows``: (tag, config digest) per image, a platform's image for an index
  (attestation manifests left out, as regdata does by default): every
  contender but skopeo, whose ``inspect`` shows one platform and no config digest;
- ``tops``: tag -> the digest the tag points to: every contender but oras-py,
  whose ``get_manifest`` returns parsed JSON, not the bytes a digest is over.

Each is hashed (sha256 of its sorted JSON), so the report stays small.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ATTESTATION", "Outcome", "digest_of_rows", "is_attestation", "is_index"]

ATTESTATION = "attestation-manifest"
_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def is_index(doc: dict[str, Any]) -> bool:
    """An OCI index or a Docker manifest list."""
    return doc.get("mediaType") in _INDEX_TYPES or (
        "manifests" in doc and "config" not in doc and "layers" not in doc
    )


def is_attestation(entry: dict[str, Any]) -> bool:
    """A buildkit attestation entry of an index."""
    return (entry.get("annotations") or {}).get("vnd.docker.reference.type") == ATTESTATION


def digest_of_rows(values: Any) -> str:
    """sha256 of the canonical JSON of ``values`` (sorted by the caller)."""
    return "sha256:" + hashlib.sha256(json.dumps(values, separators=(",", ":")).encode()).hexdigest()


@dataclass
class Outcome:
    """What one run of a contender read."""

    rows: list[tuple[str, str]] | None = None
    tops: dict[str, str] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    tags: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Counts and digests, for the report."""
        return {
            "tags": self.tags,
            "rows": None if self.rows is None else len(self.rows),
            "rows_sha256": None if self.rows is None else digest_of_rows(sorted(self.rows)),
            "tops_sha256": None if self.tops is None else digest_of_rows(sorted(self.tops.items())),
            "errors": len(self.errors),
            "first_errors": dict(sorted(self.errors.items())[:3]),
        }

    def agrees_with(self, reference: Outcome) -> tuple[bool, str]:
        """Whether this run read what ``reference`` (regdata's) read, and if not, how not.

        A contender that cannot see a tag (skopeo, a tag with no linux/amd64
        image) may say so in ``errors``; every other tag must match.
        """
        if self.tags != reference.tags:
            return False, f"{self.tags} tags listed, reference {reference.tags}"
        if self.rows is not None and reference.rows is not None:
            mine, theirs = sorted(self.rows), sorted(reference.rows)
            if mine != theirs:
                missing = len(set(theirs) - set(mine))
                extra = len(set(mine) - set(theirs))
                return False, f"rows differ: {len(mine)} vs {len(theirs)} ({missing} missing, {extra} extra)"
        if self.tops is not None and reference.tops is not None:
            wrong = [t for t, d in self.tops.items() if reference.tops.get(t) != d]
            unseen = set(reference.tops) - set(self.tops) - set(self.errors)
            if wrong or unseen:
                return False, f"tops differ: {len(wrong)} wrong, {len(unseen)} missing"
        elif self.errors:
            return False, f"{len(self.errors)} errors"
        return True, ""

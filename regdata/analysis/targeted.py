"""The targeted fleet scan: read only what the freshness judgement needs, within a pull quota.

Docker Hub counts every manifest GET as a pull (10 an hour anonymously); a
HEAD, a tag list or a blob is free.  A fleet's freshness needs, per deployed
image:

* the repository's tag list (free), and the tag names read as versions (no request);
* the digest of the deployed tag, by HEAD (free), and the image it names, on
  the judged platform only (an index and one platform manifest: 2 pulls; none
  when the cache holds the digest);
* a pinned digest the tag has moved away from: that image too;
* the best candidate of the deployed version's line: the highest version
  (:func:`regdata.analysis.fleet.line_of`), its digest by HEAD, its image read only
  when no image read already has that digest; the next one only when it is
  unusable (no such platform, an error, an attestation-only index).

The deployed images of every repository are read first, the candidates
after, so a quota that runs out leaves the fewest rows unjudged.  A row whose
reads were refused (the quota floor, a used-up quota, throttling, the
network, the budget) is not judged from what was read: :attr:`Plan.blocked`
gives its reason, and the judgement makes it ``unknown``.  A read that says
something of the image (a 404, a manifest that does not parse) makes the
candidate unusable, as it would drop out of a full scan's frame.

A digest pin without a tag needs every tag's digest to be named: its
repository is read whole, as ``full=True`` reads every repository.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from regdata.analysis.fleet import Within, in_line, line_of
from regdata.analysis.versions import Version, parse_version, versions_of
from regdata.context import Context
from regdata.errors import Cancelled, QuotaExhausted, RegdataError, TooManyRequests, TransportError
from regdata.frames import IMAGE_CATEGORIES, IMAGES, NOT_RUNNABLE, make_frame
from regdata.oci.manifest import Platform
from regdata.oci.reference import Reference, Repository

if TYPE_CHECKING:
    from regdata.client.registry import Registry

__all__ = ["AGREES_WITH_FULL", "Plan", "RepoReads", "read_targeted"]

# The freshness columns on which a targeted judgement equals a full one; newest_tag and
# newest_created may differ (the newest *built* is known only among the images read).
AGREES_WITH_FULL = (
    "image",
    "status",
    "reason",
    "deployed_tag",
    "deployed_created",
    "candidate_tag",
    "candidate_created",
    "lag_days",
    "newer_versions",
    "tag_digest",
    "tag_moved",
    "repush",
)

# Per image read on the judged platform: an index and one platform manifest.
PULLS_PER_IMAGE = 2


@dataclass
class RepoReads:
    """What a targeted scan read of one repository."""

    repo: Repository
    tags: list[str]
    digests: dict[str, str] = field(default_factory=dict)  # tag -> digest, by HEAD
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # tag or pinned digest -> rows
    by_digest: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # tag or digest -> why it could not be read

    def counted(self) -> list[str]:
        """The tags listed, less those read and found with no row at all on the platform (an
        index without it): a frame cannot say those were read, so they are left out here."""
        return [t for t in self.tags if not (t in self.rows and not self.rows[t])]

    def frame(self) -> pd.DataFrame:
        """The rows read, as an images frame."""
        rows = [row for group in self.rows.values() for row in group]
        return make_frame(rows, IMAGES, IMAGE_CATEGORIES)


@dataclass
class Plan:
    """The targeted scan's reads, and what it estimated and refused."""

    repos: dict[str, RepoReads] = field(default_factory=dict)
    # Fleet row position -> why it cannot be judged (a read it needs was refused).
    blocked: dict[int, str] = field(default_factory=dict)
    estimated_pulls: int = 0


def _refusal(exc: BaseException | None, error: str | None) -> str | None:
    """Why a read was refused, when the refusal says nothing of the image (else None: unusable)."""
    if isinstance(exc, QuotaExhausted):
        return f"pull quota used up: the registry refused ({exc}); not retried"
    if isinstance(exc, Cancelled) and str(exc).startswith("pull quota"):
        return f"{exc}: not read"
    if isinstance(exc, (TooManyRequests, TransportError, Cancelled)):
        return f"not read: {type(exc).__name__}: {exc}"
    if exc is None and error in ("cancelled", "timed out: the scan's time budget ran out"):
        return f"not read: {error}"
    return None


def _usable(row: Mapping[str, Any], platform: str) -> bool:
    return (
        row.get("platform") == platform
        and row.get("error") is None
        and row.get("created") is not None
        and row.get("kind") not in NOT_RUNNABLE
    )


class _Reader:
    def __init__(self, registry: Registry, platform: str, ctx: Context) -> None:
        self.registry = registry
        self.platform = platform
        self.filter = Platform.parse(platform)
        self.ctx = ctx

    def digest(self, reads: RepoReads, tag: str) -> str | None:
        """The tag's digest by HEAD (free); None when refused (the reason kept) or not told."""
        if tag in reads.digests:
            return reads.digests[tag]
        remote = self.registry.remote(reads.repo.registry)
        ref = Reference(reads.repo.registry, reads.repo.repository, tag, None)
        digest_of: Callable[..., str] | None = getattr(remote, "digest_of", None)
        if digest_of is None:
            return None  # a remote without it (an older mock): the tag is read by name
        try:
            digest = digest_of(ref, self.ctx)
        except RegdataError as exc:
            why = _refusal(exc, None)
            if why is not None:
                reads.refused[tag] = why
            # Else (no digest header, a 404 for a tag just deleted...) the GET by tag decides.
            return None
        reads.digests[tag] = digest
        return digest

    def read(self, reads: RepoReads, names: list[str]) -> None:
        """Read the images of ``names`` (tags, or pinned digests) not read yet, each digest once."""
        repo = reads.repo
        batch: dict[str, Reference] = {}  # a digest (or a tag whose digest is unknown) -> its read
        alias: dict[str, str] = {}  # name -> the key of batch that reads it
        for name in names:
            if name in reads.rows or name in reads.refused:
                continue
            if ":" in name:  # a pinned digest: a tag holds no ':'
                key, ref = name, Reference(repo.registry, repo.repository, None, name)
            else:
                digest = self.digest(reads, name)
                if name in reads.refused:
                    continue  # its HEAD was refused (the quota, the network...)
                key, ref = digest or name, Reference(repo.registry, repo.repository, name, digest)
            if key in reads.by_digest:
                reads.rows[name] = _renamed(reads.by_digest[key], name)
                continue
            alias[name] = key
            batch.setdefault(key, ref)
        if not batch:
            return
        got: dict[str, list[dict[str, Any]]] = {}
        for row in self.registry._read(repo, list(batch.values()), self.filter, self.ctx):
            # A read by digest has no tag (NA): its rows are found by the digest it asked for.
            found = row["tag"] if row.get("tag") is not None else row.get("digest")
            got.setdefault(str(found), []).append(row)
        results: dict[str, str | list[dict[str, Any]]] = {}
        for key, ref in batch.items():
            group = got.get(ref.tag or ref.digest or "", [])
            why = next(
                (w for r in group if (w := _refusal(r.get("exception") or r.get("cause"), r.get("error")))),
                None,
            )
            if why is not None:
                results[key] = why
                continue
            clean = [{k: v for k, v in r.items() if k not in ("exception", "cause")} for r in group]
            results[key] = clean
            if ref.digest is not None and not any(r.get("error") for r in clean):
                reads.by_digest[ref.digest] = clean
        for name, key in alias.items():
            result = results[key]
            if isinstance(result, str):
                reads.refused[name] = result
            else:
                reads.rows[name] = _renamed(result, name)

    def usable(self, reads: RepoReads, name: str) -> bool:
        return any(_usable(row, self.platform) for row in reads.rows.get(name, ()))


def read_targeted(
    registry: Registry,
    fleet: pd.DataFrame,
    *,
    platform: str,
    within: Within,
    skip: set[str],
    errors: dict[str, str],
    progress: Callable[[int, int], None] | None = None,
) -> Plan:
    """Read what the judgement of ``fleet`` needs; repositories in ``skip`` are left out.

    A repository whose tags cannot be listed goes to ``errors``, by
    ``registry/repository``, as :func:`regdata.report.scan_fleet` records it.
    """
    plan = Plan()
    ctx = registry._context()
    reader = _Reader(registry, platform, ctx)
    try:
        rows = fleet.astype(object).where(fleet.notna(), None).to_dict("records")
        wanted: list[tuple[int, RepoReads, str | None, str | None]] = []
        keys = sorted(
            {
                f"{r['registry']}/{r['repository']}"
                for r in rows
                if r.get("error") is None and r.get("repository") is not None
            }
            - skip
        )
        for done, key in enumerate(keys, start=1):
            host, _, name = key.partition("/")
            repo = Repository(host, name)
            try:
                tags = registry.remote(host).tags(repo, ctx)
            except RegdataError as exc:
                errors[key] = f"{type(exc).__name__}: {exc}"
            else:
                plan.repos[key] = RepoReads(repo, tags)
            if progress is not None:
                progress(done, len(keys))
        for position, row in enumerate(rows):
            key = f"{row.get('registry')}/{row.get('repository')}"
            reads = plan.repos.get(key)
            if reads is None or row.get("error") is not None:
                continue
            wanted.append((position, reads, row.get("tag"), row.get("digest")))
        # The estimate: each deployed image, each moved pin, each line's best candidate.
        deployed = {(id(r), t or d) for _, r, t, d in wanted}
        lines = {
            (id(r), line_of(v, within))
            for _, r, t, _ in wanted
            if t is not None and (v := parse_version(t)) is not None
        }
        plan.estimated_pulls = PULLS_PER_IMAGE * (len(deployed) + len(lines))
        # First every deployed image, so a quota that runs out leaves the fewest rows unjudged.
        for _, reads, tag, digest in wanted:
            names = [tag] if tag is not None and tag in reads.tags else []
            reader.read(reads, names)
            if digest is not None and not _holds(reads, names, digest):
                reader.read(reads, [digest])
        for position, reads, tag, digest in wanted:
            why = _deployed_refusal(reads, tag, digest)
            if why is None and tag is not None:
                version = parse_version(tag)
                if version is not None and _judgeable(reader, reads, tag, digest):
                    why = _best_candidate(reader, reads, version, within)
            if why is not None:
                plan.blocked[position] = why
    finally:
        registry._done(ctx)
    return plan


def _renamed(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Another name's rows for the same digest, as this name's (a pinned digest keeps its own)."""
    return [dict(row, tag=None if ":" in name else name) for row in rows]


def _holds(reads: RepoReads, names: list[str], digest: str) -> bool:
    """Whether the images read for ``names`` have ``digest`` (top or platform manifest)."""
    return any(
        digest in (row.get("digest"), row.get("manifest_digest"))
        for name in names
        for row in reads.rows.get(name, ())
    )


def _deployed_refusal(reads: RepoReads, tag: str | None, digest: str | None) -> str | None:
    for name in (tag, digest):
        if name is not None and name in reads.refused:
            return reads.refused[name]
    return None


def _judgeable(reader: _Reader, reads: RepoReads, tag: str, digest: str | None) -> bool:
    """Whether the judgement goes on to the line: the deployed image or the tag's is usable."""
    return reader.usable(reads, tag) or (digest is not None and reader.usable(reads, digest))


def _best_candidate(reader: _Reader, reads: RepoReads, version: Version, within: Within) -> str | None:
    """Read the line's candidates from the highest version down until one is usable; the refusal if any."""
    line = line_of(version, within)
    groups: dict[tuple[Any, ...], list[str]] = {}
    for name, candidate in versions_of(reads.tags).items():
        if candidate is not None and in_line(candidate, line):
            groups.setdefault((candidate.key, candidate.precision), []).append(name)
    for rank in sorted(groups, reverse=True):
        names = groups[rank]
        reader.read(reads, names)
        refused = [reads.refused[n] for n in names if n in reads.refused]
        if refused:
            return refused[0]
        if any(reader.usable(reads, n) for n in names):
            return None
    return None

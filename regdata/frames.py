"""Frame schemas: each frame's columns and dtypes, declared once, all of them here.

A frame is returned with all its columns, in order, with their dtypes, also
when it has no rows, so code written against a full frame works on an empty
one.  The modules that build frames (the client, analysis, instrument) import
their schema from here; a new frame's schema goes here too, so one file shows
every column regdata returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


__all__ = [
    "AGES",
    "CACHE_STATES",
    "CADENCE",
    "CADENCE_SUMMARY",
    "CHANGES",
    "CHANGE_KINDS",
    "DIFF",
    "DIFF_CHANGES",
    "FLEET",
    "FRESHNESS",
    "HISTORY",
    "IMAGES",
    "IMAGE_CATEGORIES",
    "IMAGE_KINDS",
    "LIMITER_EVENTS",
    "NEWEST",
    "NOT_RUNNABLE",
    "REQUESTS",
    "REQUEST_CATEGORIES",
    "REQUEST_KINDS",
    "REQUEST_LOG",
    "SHARED",
    "STATUSES",
    "SUMMARY",
    "TAG_DETAILS",
    "VERSIONS",
    "Schema",
    "make_frame",
]

Schema = tuple[tuple[str, str], ...]

# dtype names as pandas spells them; "string" holds pd.NA for missing text.
IMAGES: Schema = (
    ("registry", "string"),
    ("repository", "string"),
    ("tag", "string"),
    ("digest", "string"),
    ("media_type", "string"),
    ("kind", "category"),
    ("platform", "string"),
    ("os", "string"),
    ("architecture", "string"),
    ("variant", "string"),
    ("manifest_digest", "string"),
    ("config_digest", "string"),
    ("created", "datetime64[ns, UTC]"),
    ("size", "Int64"),
    ("layers", "Int64"),
    ("labels", "object"),
    ("error", "string"),
    # Past the required columns: what users asked for next.
    ("artifact_type", "string"),
    ("created_source", "string"),
    ("os_version", "string"),
    ("annotations", "object"),
    # What a signature, attestation or SBOM (kind) is about: the digest its cosign tag names.
    ("subject", "string"),
)

IMAGE_KINDS = ("image", "index", "artifact", "schema1", "signature", "attestation", "sbom")
# Kinds that describe other content rather than being an image to run: never a version,
# a candidate or a deployed image in freshness.
NOT_RUNNABLE = ("artifact", "signature", "attestation", "sbom")

HISTORY: Schema = (
    ("registry", "string"),
    ("repository", "string"),
    ("tag", "string"),
    ("platform", "string"),
    ("step", "Int64"),
    ("created", "datetime64[ns, UTC]"),
    ("created_by", "string"),
    ("empty_layer", "bool"),
    ("comment", "string"),
    ("error", "string"),
)

REQUESTS: Schema = (
    ("started", "datetime64[ns, UTC]"),
    ("host", "string"),
    ("repository", "string"),
    ("kind", "category"),
    ("method", "string"),
    ("status", "Int64"),
    ("duration_s", "float64"),
    ("bytes", "Int64"),
    ("attempt", "Int64"),
    ("cache", "category"),
    ("error", "string"),
    ("proxy", "string"),  # host:port of the forward proxy it went through; NA when direct
    # A manifest GET a quota-announcing host answered: what Docker Hub counts as a pull.
    ("pull", "boolean"),
)

REQUEST_KINDS = ("tags", "manifest", "manifest_head", "blob", "token", "catalog", "ping")
CACHE_STATES = ("hit", "miss", "none")

# The fixed categories of the schemas' ``category`` columns.
IMAGE_CATEGORIES: Mapping[str, Sequence[str]] = {"kind": IMAGE_KINDS}
REQUEST_CATEGORIES: Mapping[str, Sequence[str]] = {"kind": REQUEST_KINDS, "cache": CACHE_STATES}


# -- the client: Registry.tag_details (from GCR's tags/list manifest map) -----------------

TAG_DETAILS: Schema = (
    ("registry", "string"),
    ("repository", "string"),
    ("tag", "string"),  # NA for a digest no tag points to
    ("digest", "string"),  # NA when the registry gives no manifest map
    ("media_type", "string"),
    ("size", "Int64"),  # imageSizeBytes: what the registry says the image weighs
    ("created", "datetime64[ns, UTC]"),  # timeCreatedMs; NaT for 0 (unknown)
    ("uploaded", "datetime64[ns, UTC]"),  # timeUploadedMs
    ("error", "string"),
)


# -- instrument.requestlog: the request log with concurrency, and the limiter's decisions -----

# frames.REQUESTS plus the host's concurrency limit when the request was sent.
REQUEST_LOG: Schema = (*REQUESTS, ("concurrency", "Int64"))

LIMITER_EVENTS: Schema = (
    ("at", "datetime64[ns, UTC]"),
    ("host", "string"),
    ("event", "string"),  # start, grow, halve, hold, floor
    ("concurrency_before", "Int64"),
    ("concurrency", "Int64"),
    ("latency_s", "float64"),  # the window's median latency that decided it
    ("baseline_s", "float64"),  # the lowest window median seen at this host
    ("reason", "string"),
)


# -- instrument.summary: the request log summed by host and kind ------------------------------

SUMMARY: Schema = (
    ("host", "string"),
    ("kind", "category"),
    ("requests", "Int64"),  # HTTP requests sent, every attempt counted
    ("retries", "Int64"),  # of which attempts after the first
    ("errors", "Int64"),  # of which with no answer or an error status
    ("cache_hits", "Int64"),  # answers served from the cache instead
    ("time_s", "float64"),  # summed duration of the HTTP requests
    ("mean_s", "float64"),
    ("wall_s", "float64"),  # first start to last end: what the user waited
    ("bytes", "Int64"),  # body bytes received over HTTP
)


# -- analysis.versions: tags read as versions -----------------------------------------------

VERSIONS: Schema = (
    ("tag", "string"),
    ("is_version", "bool"),
    ("track", "string"),
    ("version", "string"),
    ("release", "string"),
    ("precision", "Int64"),
    ("prerelease", "string"),
    ("build", "Int64"),
    ("floating", "bool"),
)


# -- analysis.freshness: newest per track, cadence, shared digests, ages, changes ------------

CHANGE_KINDS = ("first", "unchanged", "rebuild", "repush", "revert", "unknown")

NEWEST: Schema = (
    ("registry", "string"),
    ("repository", "string"),
    ("track", "string"),
    ("platform", "string"),
    ("tag", "string"),
    ("version", "string"),
    ("digest", "string"),
    ("manifest_digest", "string"),
    ("created", "datetime64[ns, UTC]"),
    ("size", "Int64"),
    ("candidates", "Int64"),
)

CADENCE: Schema = (
    ("registry", "string"),
    ("repository", "string"),
    ("track", "string"),
    ("platform", "string"),
    ("created", "datetime64[ns, UTC]"),
    ("previous", "datetime64[ns, UTC]"),
    ("interval_days", "float64"),
    ("tags", "string"),
)

CADENCE_SUMMARY: Schema = (
    ("registry", "string"),
    ("repository", "string"),
    ("track", "string"),
    ("platform", "string"),
    ("images", "Int64"),
    ("first", "datetime64[ns, UTC]"),
    ("last", "datetime64[ns, UTC]"),
    ("mean_days", "float64"),
    ("median_days", "float64"),
    ("min_days", "float64"),
    ("max_days", "float64"),
)

SHARED: Schema = (
    ("registry", "string"),
    ("repository", "string"),
    ("digest", "string"),
    ("n_tags", "Int64"),
    ("tags", "object"),
    ("most_specific", "string"),
    ("platforms", "Int64"),
    ("created", "datetime64[ns, UTC]"),
)

AGES: Schema = (
    ("registry", "string"),
    ("repository", "string"),
    ("tag", "string"),
    ("platform", "string"),
    ("track", "string"),
    ("version", "string"),
    ("created", "datetime64[ns, UTC]"),
    ("age_days", "float64"),
)

CHANGES: Schema = (
    ("image", "string"),
    ("tag", "string"),
    ("seen_at", "datetime64[ns, UTC]"),
    ("index_digest", "string"),
    ("newest_created", "datetime64[ns, UTC]"),
    ("previous_digest", "string"),
    ("previous_created", "datetime64[ns, UTC]"),
    ("change", "category"),
)


# -- analysis.fleet: the deployed images and their freshness ----------------------------------

STATUSES = ("current", "behind", "unknown", "error")

FLEET: Schema = (
    ("source", "string"),
    ("workload", "string"),
    ("container", "string"),
    ("image", "string"),
    ("reference", "string"),
    ("registry", "string"),
    ("repository", "string"),
    ("tag", "string"),
    ("digest", "string"),
    ("error", "string"),
    ("namespace", "string"),
    ("role", "string"),
)

# A freshness row starts with the deployed reference as the fleet frame has it.
FRESHNESS: Schema = (
    *FLEET[: [c for c, _ in FLEET].index("error")],
    ("platform", "string"),
    ("track", "string"),
    ("version", "string"),
    ("deployed_tag", "string"),
    ("deployed_created", "datetime64[ns, UTC]"),
    ("age_days", "float64"),
    ("candidate_tag", "string"),
    ("candidate_created", "datetime64[ns, UTC]"),
    ("newest_tag", "string"),
    ("newest_created", "datetime64[ns, UTC]"),
    ("lag_days", "float64"),
    ("newer_versions", "Int64"),
    ("tag_digest", "string"),
    ("tag_moved", "boolean"),
    ("repush", "boolean"),
    ("status", "category"),
    ("reason", "string"),
)


# -- analysis.snapshots: what changed between two scans -------------------------------------

DIFF_CHANGES = ("added", "removed", "moved")

DIFF: Schema = (
    ("registry", "string"),
    ("repository", "string"),
    ("tag", "string"),
    ("platform", "string"),
    ("os_version", "string"),
    ("change", "category"),
    ("old_digest", "string"),
    ("new_digest", "string"),
    ("old_manifest_digest", "string"),
    ("new_manifest_digest", "string"),
    ("old_created", "datetime64[ns, UTC]"),
    ("new_created", "datetime64[ns, UTC]"),
    ("rebuild", "bool"),
)


def make_frame(
    rows: Iterable[Mapping[str, Any]], schema: Schema, categories: Mapping[str, Sequence[str]] | None = None
) -> pd.DataFrame:
    """Build a frame with exactly ``schema``'s columns and dtypes from row dicts.

    ``categories`` gives each ``category`` column its fixed categories
    (:data:`IMAGE_CATEGORIES` for :data:`IMAGES`...), so they are the same
    whatever rows came, and when none came.
    """
    import pandas as pd

    records = list(rows)
    columns = [column for column, _ in schema]
    data: dict[str, Any] = {c: [r.get(c) for r in records] for c in columns}
    frame = pd.DataFrame(data, columns=columns, index=pd.RangeIndex(len(records)))
    for column, dtype in schema:
        values = frame[column]
        if dtype == "category":
            if categories is None or column not in categories:
                raise ValueError(f"make_frame: no categories given for category column {column!r}")
            frame[column] = pd.Categorical(values, categories=list(categories[column]))
        elif dtype.startswith("datetime64"):
            frame[column] = pd.to_datetime(values, utc=True).astype(pd.api.types.pandas_dtype(dtype))
        elif dtype == "object":
            frame[column] = values.astype(object)
        elif dtype == "bool":
            frame[column] = values.fillna(False).astype(bool)
        else:
            frame[column] = values.astype(pd.api.types.pandas_dtype(dtype))
    return frame

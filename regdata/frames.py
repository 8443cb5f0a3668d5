"""Frame schemas: each frame's columns and dtypes, declared once.

A frame is returned with all its columns, in order, with their dtypes, also
when it has no rows, so code written against a full frame works on an empty
one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


__all__ = [
    "HISTORY", "IMAGES", "IMAGE_CATEGORIES", "NOT_RUNNABLE", "REQUESTS", "REQUEST_CATEGORIES",
    "Schema", "make_frame",
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

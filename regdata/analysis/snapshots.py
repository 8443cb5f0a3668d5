"""Frames saved to disk and read back exactly; what changed between two snapshots.

:func:`save_snapshot` writes Parquet (when pyarrow is importable and the
path ends ``.parquet``) or CSV, with the frame's schema (column order, dtypes,
categories) stored beside the data: in the Parquet key-value metadata, or on a
``#regdata-snapshot`` first line of the CSV.  :func:`load_snapshot` reads it
back with the same dtypes, also for empty frames.

Object columns (``labels``, ``annotations``, tuples of tags) are stored as
JSON text in both formats, so a dict comes back a dict, ``{}`` stays distinct
from a missing value, and tuples come back tuples.  In CSV a missing value is
written ``\\N`` and an empty string stays empty, so the one text that cannot
round-trip through CSV is a literal ``\\N``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import pandas as pd

from regdata.analysis.versions import sort_tags
from regdata.frames import DIFF, DIFF_CHANGES, make_frame
from regdata.oci.manifest import TIME_OUT_OF_RANGE

__all__ = ["DIFF", "DIFF_CHANGES", "diff_snapshots", "load_snapshot", "save_snapshot"]

_MAGIC = "#regdata-snapshot "
_PARQUET_MAGIC = b"PAR1"
_META_KEY = b"regdata"
# Written for missing values in CSV; an empty field stays an empty string.
_NA = "\\N"


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _describe(frame: pd.DataFrame) -> dict[str, Any]:
    """The schema of ``frame`` as JSON-able data: columns, dtypes, categories, object encodings."""
    columns = []
    for name, dtype in frame.dtypes.items():
        entry: dict[str, Any] = {"name": str(name), "dtype": str(dtype)}
        if isinstance(dtype, pd.CategoricalDtype):
            entry["categories"] = [_plain(c) for c in dtype.categories]
            entry["ordered"] = bool(dtype.ordered)
        elif pd.api.types.is_object_dtype(dtype):
            entry["tuples"] = any(isinstance(v, tuple) for v in frame[name])
        columns.append(entry)
    return {"version": 1, "columns": columns}


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones, for JSON."""
    return value.item() if hasattr(value, "item") else value


def _json(value: Any) -> str | None:
    if not isinstance(value, dict | list | tuple) and _missing(value):
        return None
    return json.dumps(value, default=str, ensure_ascii=False)


def _encode(frame: pd.DataFrame, schema: dict[str, Any], csv_text: bool) -> pd.DataFrame:
    """The frame as written: object columns as JSON; for CSV, times as ISO text."""
    out = frame.copy()
    for entry in schema["columns"]:
        name, dtype = entry["name"], entry["dtype"]
        if dtype == "object":
            out[name] = pd.Series([_json(v) for v in frame[name]], index=frame.index, dtype=object)
        elif csv_text and dtype.startswith("datetime64"):
            out[name] = pd.Series(
                [None if _missing(v) else pd.Timestamp(v).isoformat() for v in frame[name]],
                index=frame.index,
                dtype=object,
            )
    return out


def save_snapshot(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` to ``path`` with its schema, so that :func:`load_snapshot` restores it exactly.

    Parquet when the path ends ``.parquet`` and pyarrow is importable, CSV
    otherwise (with a warning when a ``.parquet`` path gets CSV for want of
    pyarrow; :func:`load_snapshot` tells the two apart by content).  The
    index is not kept.  Returns the path.
    """
    target = Path(path)
    schema = _describe(frame)
    if target.suffix.lower() == ".parquet":
        if _has_pyarrow():
            import pyarrow as pa
            import pyarrow.parquet as pq

            encoded = _encode(frame, schema, csv_text=False).reset_index(drop=True)
            table = pa.Table.from_pandas(encoded, preserve_index=False)
            metadata = dict(table.schema.metadata or {})
            metadata[_META_KEY] = json.dumps(schema).encode()
            pq.write_table(table.replace_schema_metadata(metadata), target)
            return target
        warnings.warn(f"pyarrow is not installed: {target} is written as CSV", stacklevel=2)
    encoded = _encode(frame, schema, csv_text=True)
    with target.open("w", encoding="utf-8", newline="") as handle:
        handle.write(_MAGIC + json.dumps(schema) + "\n")
        encoded.to_csv(handle, index=False, na_rep=_NA, quoting=csv.QUOTE_MINIMAL)
    return target


def _restore_column(values: pd.Series, entry: dict[str, Any]) -> Any:
    dtype: str = entry["dtype"]
    items = [None if _missing(v) else v for v in values.astype(object)]
    if dtype == "object":
        decoded = [None if v is None else json.loads(v) for v in items]
        if entry.get("tuples"):
            decoded = [tuple(v) if isinstance(v, list) else v for v in decoded]
        return pd.Series(decoded, index=values.index, dtype=object)
    if dtype.startswith("datetime64"):
        times = pd.to_datetime(pd.Series(items, index=values.index, dtype=object), utc=True, format="ISO8601")
        return times.astype(pd.api.types.pandas_dtype(dtype))
    if dtype == "category":
        categories = entry.get("categories", [])
        lookup = {str(c): c for c in categories}
        mapped = [None if v is None else lookup.get(str(v), v) for v in items]
        return pd.Categorical(mapped, categories=categories, ordered=entry.get("ordered", False))
    target = pd.api.types.pandas_dtype(dtype)
    if dtype in ("bool", "boolean"):
        flags = [None if v is None else (v if isinstance(v, bool) else str(v) == "True") for v in items]
        return pd.Series(flags, index=values.index, dtype=object).astype(target)
    if dtype.startswith(("Int", "UInt", "int", "uint")):
        numbers: list[Any] = [None if v is None else int(v) for v in items]
        return pd.Series(numbers, index=values.index, dtype=object).astype(target)
    if dtype.startswith(("float", "Float")):
        reals = [math.nan if v is None else float(v) for v in items]
        return pd.Series(reals, index=values.index, dtype=object).astype(target)
    if dtype.startswith("timedelta64"):
        return pd.to_timedelta(pd.Series(items, index=values.index, dtype=object)).astype(target)
    return pd.Series(items, index=values.index, dtype=object).astype(target)


def _restore(frame: pd.DataFrame, schema: dict[str, Any]) -> pd.DataFrame:
    names = [entry["name"] for entry in schema["columns"]]
    data = {entry["name"]: _restore_column(frame[entry["name"]], entry) for entry in schema["columns"]}
    return pd.DataFrame(data, columns=names, index=pd.RangeIndex(len(frame)))


def load_snapshot(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a frame written by :func:`save_snapshot`, with its columns and dtypes restored.

    The format is told by content (Parquet's magic bytes), not by the name.
    A CSV without the schema line is read with every column as text.
    """
    source = Path(path)
    with source.open("rb") as handle:
        head = handle.read(4)
    if head == _PARQUET_MAGIC:
        import pyarrow.parquet as pq

        table = pq.read_table(source)
        raw = (table.schema.metadata or {}).get(_META_KEY)
        frame: pd.DataFrame = table.to_pandas().reset_index(drop=True)
        if raw is None:
            return frame
        return _restore(frame, json.loads(raw))
    text = source.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    if not first.startswith(_MAGIC):
        plain: pd.DataFrame = pd.read_csv(
            io.StringIO(text), dtype="string", keep_default_na=False, na_values=[_NA]
        )
        return plain
    schema = json.loads(first[len(_MAGIC) :])
    names = [entry["name"] for entry in schema["columns"]]
    if not names:
        return pd.DataFrame()
    raw_frame = pd.read_csv(io.StringIO(rest), dtype=object, keep_default_na=False, na_values=[_NA])
    raw_frame.columns = names
    return _restore(raw_frame, schema)


def _keyed(images: pd.DataFrame) -> dict[tuple[Any, ...], dict[Hashable, Any]]:
    """Platform image rows without error, by (registry, repository, tag, platform)."""
    keep = images["platform"].notna() & _read(images)
    if "kind" in images:
        keep &= images["kind"].astype("string").fillna("image") != "artifact"
    rows = images.loc[keep.fillna(False).astype(bool)]
    keyed: dict[tuple[Any, ...], dict[Hashable, Any]] = {}
    for record in rows.astype(object).where(rows.notna(), None).to_dict("records"):
        # Windows tags carry one image per OS build under the same platform string.
        key = (
            record.get("registry"),
            record.get("repository"),
            record["tag"],
            record["platform"],
            record.get("os_version"),
        )
        keyed.setdefault(key, record)
    return keyed


def _read(images: pd.DataFrame) -> pd.Series:
    """Rows read: no error, or only a created time out of range (the rest of the row stands)."""
    if "error" not in images:
        return pd.Series(True, index=images.index)
    error = images["error"].astype("string")
    return (error.isna() | (error == "") | error.str.startswith(TIME_OUT_OF_RANGE)).fillna(True).astype(bool)


def _failed_tags(images: pd.DataFrame) -> set[tuple[Any, ...]]:
    if "error" not in images:
        return set()
    failed = images.loc[~_read(images)]
    columns = (failed["registry"], failed["repository"], failed["tag"])
    return set(zip(*columns, strict=True))


def diff_snapshots(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """What changed between two images frames, per tag and platform.

    ``change`` is ``added`` (in ``new`` only), ``removed`` (in ``old`` only)
    or ``moved`` (the tag's digest or the platform's manifest digest changed);
    unchanged tags are left out.  ``rebuild`` is True for a move to an image
    with a newer ``created`` time, False for a re-push of the same image (or a
    move back to an older one).  Artifact rows and rows without a platform are
    not compared; a tag with an error row on either side is neither added nor
    removed (it failed to read, it did not vanish), only compared where both
    sides read it.

    Rows are matched by registry, repository, tag, platform and ``os_version``
    (Windows tags list one image per OS build under one platform).

    Columns (:data:`DIFF`): registry, repository, tag, platform, os_version, change,
    old_digest, new_digest, old_manifest_digest, new_manifest_digest,
    old_created, new_created, rebuild.  Rows in :func:`~regdata.analysis.versions.sort_tags`
    order, then by platform.
    """
    before, after = _keyed(old), _keyed(new)
    failed = _failed_tags(old) | _failed_tags(new)
    out = []
    for key in before.keys() | after.keys():
        a, b = before.get(key), after.get(key)
        base = dict(zip(("registry", "repository", "tag", "platform", "os_version"), key, strict=True))
        if a is None or b is None:
            if key[:3] in failed:
                continue
            side, prefix = (a, "old") if a is not None else (b, "new")
            assert side is not None
            out.append(
                {
                    **base,
                    "change": "removed" if b is None else "added",
                    f"{prefix}_digest": side.get("digest"),
                    f"{prefix}_manifest_digest": side.get("manifest_digest"),
                    f"{prefix}_created": side.get("created"),
                    "rebuild": False,
                }
            )
            continue
        if (a.get("digest"), a.get("manifest_digest")) == (b.get("digest"), b.get("manifest_digest")):
            continue
        old_created, new_created = a.get("created"), b.get("created")
        out.append(
            {
                **base,
                "change": "moved",
                "old_digest": a.get("digest"),
                "new_digest": b.get("digest"),
                "old_manifest_digest": a.get("manifest_digest"),
                "new_manifest_digest": b.get("manifest_digest"),
                "old_created": old_created,
                "new_created": new_created,
                "rebuild": bool(
                    old_created is not None and new_created is not None and new_created > old_created
                ),
            }
        )
    order = {tag: i for i, tag in enumerate(sort_tags({str(o["tag"]) for o in out}))}
    out.sort(
        key=lambda o: (
            str(o["registry"]),
            str(o["repository"]),
            order[str(o["tag"])],
            str(o["platform"]),
            str(o["os_version"] or ""),
        )
    )
    return make_frame(out, DIFF, {"change": DIFF_CHANGES})

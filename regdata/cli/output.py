"""The one output path of every query command (a frame, or a list of names, as a table,
CSV, JSON or Parquet), and the progress bars on stderr."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import pandas as pd

from regdata.cli.exits import UsageError

__all__ = ["FORMATS", "TABLE_COLUMNS", "Names", "emit", "records", "table"]

FORMATS = ("table", "csv", "json", "parquet")

# What the table shows by default; csv, json and parquet carry every column.
TABLE_COLUMNS = {
    "images": ["tag", "platform", "created", "size", "layers", "digest", "error"],
    "history": ["tag", "platform", "step", "created", "empty_layer", "created_by"],
    "freshness": [
        "status",
        "image",
        "deployed_tag",
        "deployed_created",
        "candidate_tag",
        "lag_days",
        "newer_versions",
        "reason",
    ],
    "diff": ["repository", "tag", "platform", "change", "old_created", "new_created", "rebuild"],
}
_CELL_MAX = 72


@dataclass(frozen=True)
class Names:
    """A one-column list of names (tags, repositories).

    Printed without pandas, so that ``regdata tags`` answers before pandas
    could even be imported; it becomes a frame only for parquet.
    """

    column: str
    values: list[str]

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({self.column: pd.Series(self.values, dtype="string")})


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if type(value).__module__.startswith("pandas"):
        import pandas as pd

        return value is pd.NA or value is pd.NaT
    return False


def _plain(value: Any) -> Any:
    """A cell as a JSON value: NA → None, times → RFC 3339, containers → lists/dicts."""
    if isinstance(value, str):
        return value
    if _missing(value):
        return None
    if isinstance(value, datetime):  # pd.Timestamp too
        stamp = value.astimezone(UTC) if value.tzinfo else value
        text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
        if stamp.microsecond:
            text += f".{stamp.microsecond:06d}".rstrip("0")
        return text + ("Z" if value.tzinfo else "")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    return value


def records(frame: pd.DataFrame | Names) -> list[dict[str, Any]]:
    """The rows of a frame as JSON-ready dicts (column order kept)."""
    if isinstance(frame, Names):
        return [{frame.column: v} for v in frame.values]
    columns = [str(c) for c in frame.columns]
    return [
        {c: _plain(v) for c, v in zip(columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _table_cell(column: str, value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif _missing(value):
        return ""
    elif isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    elif isinstance(value, float):
        return f"{value:.1f}"
    elif column == "size" and isinstance(value, int):
        return _human(value)
    elif isinstance(value, dict | list | tuple):
        text = json.dumps(_plain(value), separators=(",", ":"))
    else:
        text = str(value)
    if text.startswith("sha256:") and len(text) > 19:
        return text[:19]
    text = text.replace("\n", " ")
    return text if len(text) <= _CELL_MAX else text[: _CELL_MAX - 1] + "…"


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{int(n)} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def table(frame: pd.DataFrame | Names) -> str:
    """An aligned text table: a header, then one line per row; numbers right-aligned."""
    if isinstance(frame, Names):
        columns, numeric = [frame.column], [False]
        cells = [[_table_cell(frame.column, v)] for v in frame.values]
    else:
        import pandas as pd

        columns = [str(c) for c in frame.columns]
        cells = [
            [_table_cell(c, v) for c, v in zip(columns, row, strict=True)]
            for row in frame.astype(object).itertuples(index=False, name=None)
        ]
        numeric = [
            pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
            for c in frame.columns
        ]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        out = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(out).rstrip()

    return "\n".join([line(columns), *(line(r) for r in cells)]) + "\n"


def emit(
    frame: pd.DataFrame | Names,
    fmt: str = "table",
    output: str | None = None,
    columns: Sequence[str] | None = None,
    stdout: TextIO | None = None,
) -> None:
    """Print or write ``frame``: the one output path of every query command.

    ``table``: aligned text; ``csv``: RFC 4180 with a header, times in RFC 3339
    UTC, NA empty, dicts and lists as JSON; ``json``: an array of objects, one
    per line, NA as null; ``parquet``: :func:`regdata.analysis.snapshots.save_snapshot`
    (needs pyarrow, and ``output``).  ``columns`` picks and orders columns.
    """
    names = [frame.column] if isinstance(frame, Names) else [str(c) for c in frame.columns]
    if columns:
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise UsageError(f"unknown column {', '.join(unknown)}; columns are: {', '.join(names)}")
        if list(columns) != names:
            frame = frame.frame() if isinstance(frame, Names) else frame
            frame = frame[list(columns)]
            names = list(columns)
    if fmt == "parquet":
        if not output:
            raise UsageError("--format parquet needs -o FILE.parquet")
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UsageError("--format parquet needs pyarrow: pip install 'regdata[parquet]'") from None
        from regdata.analysis.snapshots import save_snapshot

        target = output if output.endswith(".parquet") else output + ".parquet"
        save_snapshot(frame.frame() if isinstance(frame, Names) else frame, target)
        return
    if fmt == "table":
        text = table(frame)
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        for row in records(frame):
            writer.writerow([_csv_cell(v) for v in row.values()])
        text = buffer.getvalue()
    elif fmt == "json":
        lines = [json.dumps(r, ensure_ascii=False, separators=(", ", ": ")) for r in records(frame)]
        text = "[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n"
    else:
        raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text, encoding="utf-8")
    else:
        (stdout or sys.stdout).write(text)


class _Bars:
    """tqdm bars on stderr, only for a terminal and without --quiet; closed at the end."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bars: list[Any] = []

    def __call__(self, label: str) -> Callable[[int, int], None] | None:
        if not self.enabled:
            return None
        from tqdm.auto import tqdm

        self.close()  # one step at a time: a new bar ends the one before
        bar = tqdm(total=0, desc=label, unit="", leave=False, file=sys.stderr, dynamic_ncols=True)
        self._bars.append(bar)

        def update(done: int, total: int) -> None:
            # The total may grow as work is found (a fill learns what is missing as it goes).
            if bar.total != total:
                bar.total = total
            if done > bar.n:
                bar.update(done - bar.n)  # redraws at most every mininterval

        return update

    def close(self) -> None:
        for bar in self._bars:
            bar.close()
        self._bars.clear()

"""A regdata scan in a process of its own, for what only a fresh process shows.

- the second process against a memcached another process filled;
- peak RSS of the whole process at 10,000 tags (the interpreter, pandas and
  regdata: everything a user's process would hold), taken as the scan returns,
  before the harness builds the request-log frame it reads its figures from.

``python -m bench.worker --host 127.0.0.1:5000 --repo bench/app [--cache URL]``
prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def main(argv: list[str] | None = None) -> None:
    """Scan, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--cache", default=None, help="a regdata cache URL; none by default")
    parser.add_argument("--ttl", type=float, default=None)
    args = parser.parse_args(argv)
    if not args.host.startswith("127."):
        parser.error("loopback only")

    import regdata  # noqa: F401  (imported before the mark: its import is not the scan's memory)

    from .ours import peak_rss_mb, regdata_scan

    after_import = peak_rss_mb()
    options: dict[str, Any] = {}
    if args.ttl is not None:
        options["cache_ttl"] = args.ttl
    run, reg = regdata_scan(args.host, args.repo, cache=args.cache, **options)
    reg.close()
    result = {
        "seconds": run.seconds,
        "logged": run.logged,
        "cache_hits": run.cache_hits,
        "max_in_flight": run.max_in_flight,
        "limiter": run.limiter,
        "tags": run.outcome.tags,
        "rows": run.outcome.rows,
        "tops": run.outcome.tops,
        "errors": run.outcome.errors,
        "rss_after_import_mb": after_import,
        "peak_rss_mb": run.peak_rss_mb,
        "peak_rss_with_request_frame_mb": peak_rss_mb(),
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

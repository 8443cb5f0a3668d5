"""Many repositories in one call: read concurrently across repositories and hosts.

:meth:`Registry.get_repositories` lands here.  Each repository is what
``get_repository`` reads (its tag list, then a scan of its tags), and the
repositories of one host go through that host's lane: a few threads, each
reading one repository at a time, all of them under the host's limiter, so
however many repositories there are the host sees no more requests in
flight than its limit.  Hosts do not wait for one another.

A repository that cannot be read becomes one row (``repository`` set,
``tag`` NA, ``error`` saying why) and the rest goes on.  One context covers
the whole call: its budget and ``cancel()`` stop every lane, and each
repository not read by then gets its row saying so.

The frame is the images frame; its rows come repository by repository in
the order given (duplicates read once), each repository's rows sorted as
``get_repository`` sorts them, so the result does not depend on timing.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from regdata.client.scan import ScanOptions, describe, scan
from regdata.context import Context
from regdata.frames import IMAGE_CATEGORIES, IMAGES, make_frame
from regdata.oci.reference import Reference, Repository, canonical_host, parse_repository

if TYPE_CHECKING:
    from regdata.cache import Cache
    from regdata.client.scan import RemoteLike
    from regdata.transport.limits import Limits


class Reader(Protocol):
    """What reading many repositories needs of a :class:`~regdata.client.registry.Registry`.

    A Protocol, not the class: the Registry calls into this module, so this
    module must not import the Registry (no import cycle).
    """

    budget: float | None
    cache: Cache | None
    factory: Any
    limits: Limits
    options: ScanOptions
    progress: bool | Callable[[int, int], None] | None
    _settings: dict[str, Any]

    def remote(self, registry: str) -> RemoteLike: ...

    def _context(self) -> Context: ...

    def _done(self, ctx: Context) -> None: ...

    def close(self) -> None: ...


__all__ = ["Catalog", "RepositoryLike", "assemble", "repository_rows", "resolve"]

RepositoryLike = str | Repository | Reference

# Repositories read at once per host when the caller does not say: enough that the host's
# limiter stays full while some repositories wait on their tag list (one request each, alone
# in flight), few enough that a scan's threads stay in the dozens.
DEFAULT_PER_HOST = 16
# The fewest threads a repository's scan gets: its tags still go several at a time.
SCAN_THREADS_MIN = 4
# The sort of get_repository, behind the position of the repository in the call.
_SORT = ["created", "tag", "platform", "manifest_digest"]
_ASCENDING = [False, True, True, True]
_ORDER = "__order"


class Catalog(list[str]):
    """The repository names a registry lists (``Registry.catalog``), knowing which registry.

    A list of names as ``_catalog`` gives them (``team/app``, no host), so
    it compares equal to a plain list; ``get_repositories`` reads each name
    on :attr:`registry`.
    """

    def __init__(self, names: Iterable[str] = (), registry: str = "") -> None:
        super().__init__(names)
        self.registry = registry

    def repositories(self) -> list[Repository]:
        """Each name as a Repository of :attr:`registry`."""
        return [Repository(self.registry, name) for name in self]


@dataclass(frozen=True)
class Wanted:
    """One repository of a call: where it stands in the input, and what it is (or why it is not)."""

    order: int
    repo: Repository | None
    text: str  # as given, for the row of a name that does not parse
    error: str | None = None


def resolve(repositories: Iterable[RepositoryLike] | Catalog, registry: str | None = None) -> list[Wanted]:
    """The repositories of a call, parsed, in input order, each once.

    ``registry``: the host of names given without one (a ``Catalog``
    carries its own).  A name that does not parse is kept, with its error,
    so it gets its row instead of failing the call.
    """
    if isinstance(repositories, str | Repository | Reference):
        raise TypeError("get_repositories takes an iterable of repositories; for one, use get_repository")
    host = canonical_host(registry) if registry else None
    if isinstance(repositories, Catalog) and host is None:
        host = repositories.registry or None
    wanted: list[Wanted] = []
    seen: set[Repository] = set()
    for item in repositories:
        text = str(item)
        try:
            if isinstance(item, str) and host is not None:
                repo = Repository(host, parse_repository(f"{host}/{item.strip()}").repository)
            elif isinstance(item, str | Repository | Reference):
                repo = parse_repository(item)
            else:
                raise TypeError(f"a repository is a str, Repository or Reference, not {type(item).__name__}")
        except (ValueError, TypeError) as exc:  # InvalidReference is a ValueError
            wanted.append(Wanted(len(wanted), None, text, f"{type(exc).__name__}: {exc}"))
            continue
        if repo in seen:
            continue
        seen.add(repo)
        wanted.append(Wanted(len(wanted), repo, text))
    return wanted


def error_row(want: Wanted, error: str) -> dict[str, Any]:
    """The one row of a repository that could not be read."""
    if want.repo is None:
        return {"repository": want.text, "error": error}
    return {"registry": want.repo.registry, "repository": want.repo.repository, "error": error}


def repository_rows(
    reg: Reader,
    want: Wanted,
    ctx: Context,
    progress: Callable[[int, int], None] | None = None,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """The rows of one repository: its tags scanned, or one row saying why not. Never raises an Exception.

    ``progress(done, total)`` is called with the repository's tags as the scan goes;
    ``threads`` bounds the scan's own threads (the Registry's pool size by default).
    """
    if want.repo is None:
        return [error_row(want, want.error or "invalid repository")]
    repo = want.repo
    try:
        ctx.check()
        remote = reg.remote(repo.registry)
        tags = remote.tags(repo, ctx)
        refs = [Reference(repo.registry, repo.repository, tag, None) for tag in tags]
        options: ScanOptions = reg.options
        if threads is not None:
            options = dataclasses.replace(options, concurrency=min(threads, options.concurrency))
        if progress is not None:
            options = dataclasses.replace(options, progress=_tag_progress(len(refs), progress))
        result = scan(remote, repo, refs, options, ctx)
    except Exception as exc:  # a RegdataError, or a bug of ours: one row, never a lost call
        return [error_row(want, describe(exc))]
    # "exception" and "cause" are no columns: they let get_image raise, and would not pickle well.
    return [{k: v for k, v in row.items() if k not in ("exception", "cause")} for row in result.images]


def _tag_progress(tags: int, report: Callable[[int, int], None]) -> Callable[[int, int], None]:
    """A scan's task progress as a count of this repository's tags (platform tasks grow its total)."""

    def update(done: int, total: int) -> None:
        report(tags if done >= total else (tags * done) // max(total, 1), tags)

    return update


def assemble(parts: Sequence[tuple[int, list[dict[str, Any]]]]) -> pd.DataFrame:
    """The images frame of a call from (order, rows) of each repository, in order, each sorted."""
    rows: list[dict[str, Any]] = []
    orders: list[int] = []
    for order, part in parts:
        rows.extend(part)
        orders.extend([order] * len(part))
    frame = make_frame(rows, IMAGES, IMAGE_CATEGORIES)
    if frame.empty:
        return frame
    frame[_ORDER] = orders
    frame = frame.sort_values(
        [_ORDER, *_SORT], ascending=[True, *_ASCENDING], na_position="last", kind="stable"
    )
    return frame.drop(columns=_ORDER).reset_index(drop=True)


class _Progress:
    """One count of tags for the whole call: repositories add their tags as they list them."""

    def __init__(self, report: Callable[[int, int], None] | None) -> None:
        self.report = report
        self._done: dict[int, int] = {}
        self._total: dict[int, int] = {}
        self._lock = threading.Lock()

    def for_repository(self, order: int) -> Callable[[int, int], None] | None:
        if self.report is None:
            return None
        report = self.report

        def update(done: int, total: int) -> None:
            with self._lock:  # and the bar drawn under it: tqdm is not made for many writers
                self._done[order], self._total[order] = done, total
                report(sum(self._done.values()), sum(self._total.values()))

        return update


def read_many(
    reg: Reader,
    wanted: Sequence[Wanted],
    ctx: Context,
    progress: Callable[[int, int], None] | None = None,
    per_host: int | None = None,
) -> list[tuple[int, list[dict[str, Any]]]]:
    """(order, rows) of every repository wanted, read in per-host lanes of ``per_host`` threads."""
    lanes: dict[str, list[Wanted]] = {}
    for want in wanted:
        lanes.setdefault(want.repo.registry if want.repo is not None else "", []).append(want)
    counter = _Progress(progress)
    size = per_host or DEFAULT_PER_HOST
    # Each scan's threads: enough that the lane's scans together can fill the host's limit twice
    # over. A pool per scan as large as the limit made hundreds of threads, all on one GIL.
    threads = max(SCAN_THREADS_MIN, -(-2 * reg.limits.max_concurrency // size))
    results: dict[int, list[dict[str, Any]]] = {}
    pools = [
        ThreadPoolExecutor(max(1, min(size, len(lane))), thread_name_prefix=f"regdata-{host}")
        for host, lane in lanes.items()
    ]
    try:
        futures = [
            (
                want.order,
                pool.submit(repository_rows, reg, want, ctx, counter.for_repository(want.order), threads),
            )
            for pool, lane in zip(pools, lanes.values(), strict=True)
            for want in lane
        ]
        for order, future in futures:
            results[order] = future.result()
    except BaseException:
        ctx.cancel()  # Ctrl-C or a bug: the lanes send nothing more
        raise
    finally:
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)
    return sorted(results.items())

"""Progress of a scan: the caller's callable, a tqdm bar, or none."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(
    progress: bool | Callable[[int, int], None] | None, what: str, refs: int
) -> Iterator[Callable[[int, int], None] | None]:
    """The progress callable for one scan: the user's, a tqdm bar, or none."""
    if progress is None or progress is False:
        yield None
        return
    if progress is not True:
        yield progress
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=refs, desc=what, unit="task", leave=False)

    def report(done: int, total: int) -> None:
        if total != bar.total:
            bar.total = total
            container = getattr(bar, "container", None)  # Jupyter's widget keeps its own length
            if container is not None:
                container.children[1].max = total
        bar.n = done
        bar.refresh()

    try:
        yield report
    finally:
        bar.close()

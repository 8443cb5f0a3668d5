"""The floor: regdata's GETs with nothing around them.

A bare ``requests.Session`` and a pool of threads (8, as the issue fixes it)
make the same requests regdata makes for ``get_repository``: the tag list,
every tag's manifest, every platform manifest of an index once per digest
(attestations left out), every distinct config blob once.  No digest checks,
no parsing past what finds the next request, no rows: what is left is the
time of the HTTP itself, the cost no reader of a registry can avoid.

Work flows as it is found (a tag's manifest names its platforms, a platform
names its config), with no waiting between stages.

``client="urllib3"`` makes the same requests with a bare urllib3 connection
pool instead (``floor-urllib3``): regdata's own HTTP layer speaks urllib3,
so that floor shows what regdata's layers, checks and rows cost over the
cheapest HTTP a Python client can do, where the requests floor shows what
a reader written the usual way costs.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urljoin

import requests
import urllib3
from requests.adapters import HTTPAdapter

from .outcome import Outcome, is_attestation, is_index

__all__ = ["ACCEPT", "floor_scan"]

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
    ]
)
_CONFIG_TYPES = ("application/vnd.docker.container.image.v1+json", "application/vnd.oci.image.config.v1+json")
TIMEOUT = (10.0, 30.0)


def _session(threads: int) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=threads, max_retries=0))
    return session


# A GET: (url, headers) -> (body, headers of the answer); raises on an error status.
Get = Callable[[str, dict[str, str]], tuple[bytes, Any]]


def _requests_get(threads: int) -> tuple[Get, Callable[[], None]]:
    session = _session(threads)

    def get(url: str, headers: dict[str, str]) -> tuple[bytes, Any]:
        r = session.get(url, headers=headers, timeout=TIMEOUT)
        r.raise_for_status()
        return r.content, r.headers

    return get, session.close


def _urllib3_get(base: str, threads: int) -> tuple[Get, Callable[[], None]]:
    pool = urllib3.connection_from_url(base, maxsize=threads, retries=False)
    timeout = urllib3.Timeout(connect=TIMEOUT[0], read=TIMEOUT[1])

    def get(url: str, headers: dict[str, str]) -> tuple[bytes, Any]:
        r = pool.urlopen("GET", url[len(base) :], headers=headers, timeout=timeout, redirect=False)
        if r.status >= 400:
            raise requests.HTTPError(f"HTTP {r.status} for {url}")
        return r.data, r.headers

    return get, pool.close


def _tags(get: Get, base: str, repo: str, deadline: float) -> list[str]:
    url = f"{base}/v2/{repo}/tags/list"
    tags: list[str] = []
    for _ in range(10_000):  # pages, bounded
        body, headers = get(url, {"Accept": "application/json"})
        tags += json.loads(body).get("tags") or []
        link = requests.utils.parse_header_links(headers.get("Link", ""))
        nxt = next((item.get("url") for item in link if item.get("rel") == "next"), None)
        if not nxt or time.monotonic() > deadline:
            break
        url = urljoin(url, nxt)
    return tags


def floor_scan(
    base: str, repo: str, threads: int = 8, limit: float = 900.0, client: str = "requests"
) -> Outcome:
    """Every tag of ``base``/``repo`` (``base`` = ``http://host:port``) the bare way."""
    deadline = time.monotonic() + limit
    get, close = _urllib3_get(base, threads) if client == "urllib3" else _requests_get(threads)
    lock = threading.Lock()
    seen: set[str] = set()
    manifests: dict[str, dict[str, Any]] = {}
    top_of: dict[str, tuple[str, dict[str, Any]]] = {}
    errors: dict[str, str] = {}

    def get_manifest(ref: str) -> tuple[str, dict[str, Any]]:
        body, headers = get(f"{base}/v2/{repo}/manifests/{ref}", {"Accept": ACCEPT})
        return headers.get("Docker-Content-Digest", ""), json.loads(body)

    def once(key: str) -> bool:
        with lock:
            if key in seen:
                return False
            seen.add(key)
            return True

    def follow(doc: dict[str, Any]) -> list[Callable[[], list[Any]]]:
        if is_index(doc):
            return [
                child_task(e["digest"])
                for e in doc.get("manifests", [])
                if not is_attestation(e) and once(e["digest"])
            ]
        config = doc.get("config") or {}
        if config.get("mediaType") in _CONFIG_TYPES and once(config["digest"]):
            return [config_task(config["digest"])]
        return []

    def tag_task(tag: str) -> Callable[[], list[Any]]:
        def run() -> list[Any]:
            try:
                digest, doc = get_manifest(tag)
            except (requests.RequestException, urllib3.exceptions.HTTPError, ValueError) as exc:
                errors[tag] = str(exc)[:200]
                return []
            top_of[tag] = (digest, doc)
            return follow(doc)

        return run

    def child_task(digest: str) -> Callable[[], list[Any]]:
        def run() -> list[Any]:
            manifests[digest] = get_manifest(digest)[1]
            return follow(manifests[digest])

        return run

    def config_task(digest: str) -> Callable[[], list[Any]]:
        def run() -> list[Any]:
            get(f"{base}/v2/{repo}/blobs/{digest}", {})
            return []

        return run

    # Completed futures come back through a queue: O(1) per task, where wait() over
    # every pending future costs O(pending) each time and O(n^2) over a scan.
    finished: queue.SimpleQueue[Future[list[Any]]] = queue.SimpleQueue()
    try:
        tags = _tags(get, base, repo, deadline)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="floor") as pool:
            outstanding = 0

            def submit(task: Callable[[], list[Any]]) -> None:
                nonlocal outstanding
                outstanding += 1
                pool.submit(task).add_done_callback(finished.put)

            for tag in tags:
                submit(tag_task(tag))
            while outstanding:
                try:
                    future = finished.get(timeout=max(0.001, deadline - time.monotonic()))
                except queue.Empty:
                    raise TimeoutError(f"floor scan ran past {limit}s") from None
                outstanding -= 1
                for task in future.result():
                    submit(task)
    finally:
        close()
    return _outcome(tags, top_of, manifests, errors)


def _outcome(
    tags: list[str],
    top_of: dict[str, tuple[str, dict[str, Any]]],
    manifests: dict[str, dict[str, Any]],
    errors: dict[str, str],
) -> Outcome:
    rows: list[tuple[str, str]] = []
    for tag, (_, doc) in top_of.items():
        images = (
            [manifests[e["digest"]] for e in doc.get("manifests", []) if not is_attestation(e)]
            if is_index(doc)
            else [doc]
        )
        rows += [(tag, m["config"]["digest"]) for m in images if "config" in m]
    return Outcome(rows=rows, tops={t: d for t, (d, _) in top_of.items()}, errors=errors, tags=len(tags))

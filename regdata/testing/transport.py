"""The mock registry's HTTP answers: the Distribution API, served as the bottom transport.

As httpx's ``MockTransport``: the real :class:`~regdata.client.remote.Remote`
and every layer over HTTP (redirects, auth, retries, limits, the request
log, the cache) run unchanged; only the exchange with a server is replaced
by answers computed from a :class:`~regdata.testing.store.Store`.  So a test
that makes a tag answer 429 twice sees what a user of a real registry would:
two retried requests in the log and a good row.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from urllib3 import HTTPHeaderDict

from regdata.errors import InsecureRequest, MalformedContent, TransportError
from regdata.oci.reference import Reference
from regdata.testing.content import Content
from regdata.testing.store import Fault, Repo, Store
from regdata.transport.base import Request, Response
from regdata.transport.http import HTTPTransport

__all__ = ["MockTransport"]

_ROUTE = re.compile(
    r"^/v2/(?P<name>.+?)/(?:(?P<tags>tags/list)|manifests/(?P<ref>[^/]+)|blobs/(?P<digest>[^/]+))$"
)
_JSON = "application/json; charset=utf-8"
_REALM = 'Basic realm="regdata.testing"'

# What Distribution says in ``errors[]`` for a 404, by what was asked for, and for other statuses.
_UNKNOWN = {
    "tags": ("NAME_UNKNOWN", "repository name not known to registry"),
    "manifest": ("MANIFEST_UNKNOWN", "manifest unknown"),
    "blob": ("BLOB_UNKNOWN", "blob unknown to registry"),
}
_CODES = {
    401: ("UNAUTHORIZED", "authentication required"),
    403: ("DENIED", "requested access to the resource is denied"),
    429: ("TOOMANYREQUESTS", "too many requests"),
}

Answer = tuple[int, dict[str, str], bytes]


class MockTransport(HTTPTransport):
    """An :class:`~regdata.transport.HTTPTransport` whose server is a :class:`Store` in memory.

    A subclass, so every layer typed for the HTTP layer takes it; only
    :meth:`send` is replaced.  The plain-HTTP rule (loopback and insecure
    hosts only), the body cap and the context's cancellation and budget
    apply as over a network.  Any host is served: one the store holds no
    repository of is an empty registry.
    """

    def __init__(self, store: Store, *, insecure_hosts: frozenset[str] = frozenset()) -> None:
        super().__init__(insecure_hosts=insecure_hosts)
        self.store = store

    def __repr__(self) -> str:
        return "MockTransport()"

    def send(self, request: Request) -> Response:
        """Answer ``request`` as a Distribution registry holding the store's content would."""
        request.context.check()
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https"):
            raise InsecureRequest(f"refusing a request on scheme {parts.scheme!r}")
        if parts.scheme == "http" and not self.allows_plain_http(parts.netloc):
            raise InsecureRequest(
                f"refusing plain HTTP to {parts.netloc}: name it in insecure hosts to allow it"
            )
        where = f"{request.method} {parts.scheme}://{parts.netloc}{parts.path}"
        if self.store.latency > 0:
            request.context.sleep(self.store.latency)
        status, headers, body = _answer(self.store, request, where)
        headers.setdefault("Content-Length", str(len(body)))
        if request.method == "HEAD":
            body = b""
        elif len(body) > request.max_bytes:
            raise MalformedContent(
                f"{where}: body of {len(body)} bytes is over the {request.max_bytes}-byte cap"
            )
        return Response(
            status=status, headers=HTTPHeaderDict(headers), body=body, url=request.url, request=request
        )


def _error(status: int, code: tuple[str, str] | None, retry_after: float | None = None) -> Answer:
    errors = [{"code": code[0], "message": code[1], "detail": None}] if code else []
    headers = {"Content-Type": _JSON}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    if status == 401:
        headers["WWW-Authenticate"] = _REALM
    return status, headers, json.dumps({"errors": errors}).encode()


def _authorized(request: Request, users: dict[str, str]) -> bool:
    value = next((v for k, v in request.headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return users.get(user) == password


def _page(names: list[str], query: dict[str, list[str]], path: str) -> tuple[list[str], dict[str, str]]:
    """One page of a sorted list, and the ``Link`` to the next, as Distribution pages (``n``, ``last``)."""
    last = query.get("last", [""])[0]
    if last:
        names = [n for n in names if n > last]
    count = query.get("n", [""])[0]
    if not count.isdigit() or int(count) <= 0 or len(names) <= int(count):
        return names, {}
    page = names[: int(count)]
    return page, {"Link": f'<{path}?last={quote(page[-1])}&n={count}>; rel="next"'}


def _fault(repo: Repo | None, key: str) -> Fault | None:
    fault = repo.faults.get(key) if repo is not None else None
    return fault if fault is not None and fault.take() else None


def _answer(store: Store, request: Request, where: str) -> Answer:
    parts = urlsplit(request.url)
    host = store.host_of(parts.netloc)
    query = parse_qs(parts.query)
    path = parts.path
    match = _ROUTE.match(path)
    name = unquote(match["name"]) if match else None
    if match is None:
        what = host
    elif match["tags"]:
        what = f"{host}/{name}"
    elif match["ref"]:
        ref = unquote(match["ref"])
        what = str(Reference(host, name or "", None if ":" in ref else ref, ref if ":" in ref else None))
    else:
        what = f"{host}/{name}@{unquote(match['digest'])}"
    with store.lock:
        store.calls.append((request.kind, what))
    if store.users and not _authorized(request, store.users):
        return _error(401, _CODES[401])
    if path in ("/v2", "/v2/"):
        return 200, {"Content-Type": _JSON}, b"{}"
    if path == "/v2/_catalog":
        page, link = _page(store.catalog(host), query, path)
        return 200, {"Content-Type": _JSON, **link}, json.dumps({"repositories": page}).encode()
    if match is None or name is None:
        return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"404 page not found\n"
    kind = "tags" if match["tags"] else "manifest" if match["ref"] else "blob"
    key = "" if kind == "tags" else unquote(match["ref"] or match["digest"])
    with store.lock:
        repo = store.repos.get((host, name))
        fault = _fault(repo, key)
        tags = repo.tag_list() if repo is not None else None
        content: Content | None = None
        blob: bytes | None = None
        if repo is not None and kind == "manifest":
            content = repo.manifests.get(repo.tags.get(key, key))
        elif repo is not None and kind == "blob":
            blob = repo.blobs.get(key)
    if fault is not None:
        faulted = _faulted(fault, request, where, kind, content, blob)
        if faulted is not None:
            return faulted
    if kind == "tags":
        if tags is None:
            return _error(404, _UNKNOWN["tags"])
        page, link = _page(tags, query, path)
        return 200, {"Content-Type": _JSON, **link}, json.dumps({"name": name, "tags": page}).encode()
    if kind == "manifest":
        if content is None:
            return _error(404, _UNKNOWN["manifest"])
        return 200, _manifest_headers(content), content.body
    if blob is None:
        return _error(404, _UNKNOWN["blob"])
    return 200, {"Content-Type": "application/octet-stream", "Docker-Content-Digest": key}, blob


def _manifest_headers(content: Content | None) -> dict[str, str]:
    if content is None:
        return {}
    return {"Content-Type": content.media_type, "Docker-Content-Digest": content.digest}


def _faulted(
    fault: Fault, request: Request, where: str, kind: str, content: Content | None, blob: bytes | None
) -> Answer | None:
    """What a fault makes of the answer; None when it only delayed it."""
    if fault.delay > 0:
        request.context.sleep(fault.delay)
    if fault.drop:
        # What urllib3 reports for a server that closed the connection without answering.
        raise TransportError(
            f"connection failed for {where}: ('Connection aborted.', "
            "RemoteDisconnected('Remote end closed connection without response'))"
        )
    error: Any = fault.error
    if isinstance(error, OSError):
        raise TransportError(f"connection failed for {where}: {error}")
    if isinstance(error, Exception):
        raise error
    if isinstance(error, int):
        code = _UNKNOWN.get(kind) if error == 404 else _CODES.get(error)
        return _error(error, code, fault.retry_after)
    if not fault.corrupt:
        return None
    if fault.body is not None:
        return 200, _manifest_headers(content), fault.body
    stored = content.body if content is not None else blob
    if stored is None:
        return None
    # The stored bytes plus a newline: valid JSON, not the digest announced.
    return 200, _manifest_headers(content) if kind == "manifest" else {}, stored + b"\n"

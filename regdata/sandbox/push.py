"""Pushing built images to a registry on loopback, through the registry HTTP API.

For the sandbox (:mod:`regdata.sandbox`): plain HTTP to 127.0.0.1, no
authentication, monolithic blob uploads.  What to push and in which order is
:mod:`regdata.sandbox.fill`'s business; this module only speaks the protocol.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Mapping
from urllib.parse import urlencode, urljoin, urlsplit

from regdata.sandbox.errors import SandboxError
from regdata.sandbox.imagebuild import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Blob, Manifest

__all__ = ["Client", "Pusher"]

_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))


class Client:
    """HTTP/1.1 to 127.0.0.1:``port``, one kept-alive connection per thread.

    ``http.client`` rather than ``requests``: a first fill is thousands of
    small requests, and on two cores the client's CPU per request counts.
    """

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []
        self.count = 0

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-case names, body)."""
        with self._lock:
            self.count += 1
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=dict(headers or {}))
                response = conn.getresponse()
                data = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, data
            except (ConnectionError, http.client.HTTPException) as exc:
                # A kept-alive connection the server closed: reconnect once.
                conn.close()
                if attempt == 2:
                    raise SandboxError(f"{method} {path}: {exc}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()


class Pusher:
    """Uploads blobs and puts manifests; counts what it wrote.

    It writes what it is told: Distribution's filesystem storage is not safe
    for two concurrent writes of one blob or manifest (a reader can see a
    half-written link), so the caller writes each once (see :mod:`regdata.sandbox.fill`).
    """

    def __init__(self, port: int) -> None:
        self.http = Client(port)
        self._lock = threading.Lock()
        self.blobs = self.manifests = 0

    @property
    def requests(self) -> int:
        """HTTP requests made so far."""
        return self.http.count

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def tags(self, repo: str) -> list[str]:
        """The tags of ``repo``; none when it does not exist yet."""
        status, _, body = self.http.request("GET", f"/v2/{repo}/tags/list")
        if status == 404:
            return []
        _check(status, body, f"tags of {repo}", 200)
        return list(json.loads(body).get("tags") or [])

    def manifest_digest(self, repo: str, reference: str) -> str | None:
        """The digest ``reference`` (a tag or digest) has, None when absent."""
        status, headers, body = self.http.request(
            "HEAD", f"/v2/{repo}/manifests/{reference}", headers={"Accept": _ACCEPT}
        )
        if status == 404:
            return None
        _check(status, body, f"HEAD {repo}:{reference}", 200)
        return headers.get("docker-content-digest")

    def blob(self, repo: str, blob: Blob, head: bool) -> None:
        """Upload a blob (monolithic: POST, then PUT with the digest), unless a HEAD finds it."""
        if head:
            status, _, _ = self.http.request("HEAD", f"/v2/{repo}/blobs/{blob.digest}")
            if status == 200:
                return
        status, headers, body = self.http.request("POST", f"/v2/{repo}/blobs/uploads/", b"")
        _check(status, body, f"upload of {blob.digest} to {repo}", 202)
        location = urlsplit(urljoin(f"http://127.0.0.1:{self.http.port}/", headers["location"]))
        query = (location.query + "&" if location.query else "") + urlencode({"digest": blob.digest})
        status, _, body = self.http.request(
            "PUT", f"{location.path}?{query}", blob.data, {"Content-Type": "application/octet-stream"}
        )
        _check(status, body, f"upload of {blob.digest} to {repo}", 201)
        with self._lock:
            self.blobs += 1

    def put(self, repo: str, reference: str, manifest: Manifest) -> None:
        """PUT ``manifest`` under ``reference`` (a tag, or its digest)."""
        status, _, body = self.http.request(
            "PUT", f"/v2/{repo}/manifests/{reference}", manifest.body, {"Content-Type": manifest.media_type}
        )
        _check(status, body, f"PUT {repo}:{reference}", 201)
        with self._lock:
            self.manifests += 1


def _check(status: int, body: bytes, what: str, expected: int) -> None:
    if status != expected:
        raise SandboxError(f"{what}: {status} {body[:300].decode('utf-8', 'replace')!r}")

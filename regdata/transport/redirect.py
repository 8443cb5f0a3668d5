"""Redirects, followed above the auth layer so each hop is judged by its own host.

A registry may send a blob GET to storage elsewhere (S3, a CDN).  Following
the redirect here, above auth, means every hop goes through the auth layer
again, which gives a credential only to the registry's own host.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from regdata.errors import InsecureRequest, MalformedContent
from regdata.transport.base import Request, Response, Transport, join_url

__all__ = ["RedirectTransport"]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_HOPS = 5


@dataclass
class RedirectTransport:
    """Follows up to ``MAX_HOPS`` redirects of GET and HEAD requests."""

    inner: Transport

    def send(self, request: Request) -> Response:
        """Send, and follow where the answer points."""
        response = self.inner.send(request)
        hops = 0
        while response.status in REDIRECTS and request.method in ("GET", "HEAD"):
            location = response.headers.get("Location")
            if not location:
                return response
            hops += 1
            if hops > MAX_HOPS:
                raise MalformedContent(f"more than {MAX_HOPS} redirects from {request.url}")
            target = join_url(request.url, location)  # a broken Location is MalformedContent
            scheme = urlsplit(target).scheme
            if scheme not in ("http", "https"):
                raise InsecureRequest(f"refusing a redirect to scheme {scheme!r}")
            request = replace(request, url=target)  # a Request checks its URL
            response = self.inner.send(request)
        return response

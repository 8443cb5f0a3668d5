"""What travels through the transport: one request, one fully read response.

A transport is anything with ``send(request) -> response``.  Layers wrap an
``inner`` transport and add one concern each (go-containerregistry's
``RoundTripper`` chain); :mod:`regdata.transport.chain` stacks them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol
from urllib.parse import urljoin, urlsplit

from regdata.context import BACKGROUND, Context
from regdata.errors import MalformedContent

__all__ = ["Request", "Response", "Transport", "check_url", "host_key", "join_url"]

# The OCI distribution spec suggests registries refuse manifests over 4 MiB;
# configs and error bodies get their own caps at the call site.
DEFAULT_MAX_BYTES = 4 * 1024 * 1024


def check_url(url: str) -> None:
    """Raise MalformedContent for a URL no request can go to: a bad port, a broken IPv6 host, no host.

    URLs come from registries too (``Link``, ``Location``, a token realm);
    checked here, every layer below may parse them without a ValueError.
    The message shows no part of the URL: it may carry credentials.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port out of range or not a number
    except ValueError as exc:
        raise MalformedContent(f"unusable URL: {str(exc)[:100]}") from None
    if not parts.hostname:
        raise MalformedContent("unusable URL: no host")


def join_url(base: str, target: str) -> str:
    """``target`` resolved against ``base``, checked with :func:`check_url`."""
    try:
        url = urljoin(base, target)
    except ValueError as exc:
        raise MalformedContent(f"unusable URL: {str(exc)[:100]}") from None
    check_url(url)
    return url


_DEFAULT_PORTS = {"https": 443, "http": 80}


def host_key(url: str, scheme: str = "https") -> str:
    """The one key of a host: lower-case, IPv6 bracketed, the scheme's default port dropped.

    ``url`` is a URL, or a bare ``host[:port]`` taken as ``scheme``'s.  So
    ``ghcr.io``, ``GHCR.io:443`` and ``https://ghcr.io:443/v2/`` are one host,
    and ``http://localhost:80`` is ``localhost``.  Every per-host state is keyed
    by it: limiters, backoff, connection pools, the request log, auth, pagination.
    Userinfo, path and query are left out: they may carry credentials.
    """
    text = url if "://" in url else f"{scheme}://{url}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:  # no URL a request can go to (check_url refuses it): as written, no userinfo
        authority = text.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
        return authority.rsplit("@", 1)[-1].lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


@dataclass(frozen=True)
class Request:
    """An HTTP request, with what the layers above HTTP need to know about it.

    ``kind`` names the request for the log (tags, manifest, manifest_head,
    blob, token, catalog, ping); ``repository`` and ``scope`` tell the auth
    layer which token to use.
    """

    method: str
    url: str
    kind: str
    headers: Mapping[str, str] = field(default_factory=dict)
    repository: str | None = None
    scope: str | None = None
    data: Mapping[str, str] | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    attempt: int = 1
    cache: str = "none"  # "miss" when a cache was asked first; for the request log
    context: Context = BACKGROUND

    def __post_init__(self) -> None:
        check_url(self.url)

    def with_headers(self, **extra: str) -> Request:
        """A copy with headers added (``Authorization`` and friends)."""
        headers = dict(self.headers)
        headers.update(extra)
        return replace(self, headers=headers)

    def without_header(self, name: str) -> Request:
        """A copy without ``name`` (case-insensitively)."""
        headers = {k: v for k, v in self.headers.items() if k.lower() != name.lower()}
        return replace(self, headers=headers)

    def __repr__(self) -> str:
        # Headers may carry credentials and token query strings secrets: neither is shown.
        return f"Request({self.method} {self.url.split('?', 1)[0]} kind={self.kind})"


@dataclass
class Response:
    """A response whose body was read in full (up to the request's cap)."""

    status: int
    headers: Mapping[str, str]  # case-insensitive (urllib3's HTTPHeaderDict)
    body: bytes
    url: str
    request: Request

    @property
    def ok(self) -> bool:
        """2xx."""
        return 200 <= self.status < 300

    @property
    def media_type(self) -> str | None:
        """The Content-Type without parameters."""
        value = self.headers.get("Content-Type")
        return value.split(";", 1)[0].strip() if value else None

    def __repr__(self) -> str:
        return f"Response({self.status} {self.url.split('?', 1)[0]})"


class Transport(Protocol):
    """Anything that sends a Request and returns a Response."""

    def send(self, request: Request) -> Response:
        """Send ``request``; raise a RegdataError when no HTTP answer came."""
        ...

"""Forward proxies, chosen per request as Go's ``http.ProxyFromEnvironment`` chooses them.

Docker, skopeo, crane and regctl are Go programs: their users already set
``HTTPS_PROXY``, ``HTTP_PROXY`` and ``NO_PROXY`` (or the lowercase forms) for
them, and expect the same variables to mean the same here:

* ``HTTPS_PROXY`` for ``https://`` requests (tunnelled with ``CONNECT``),
  ``HTTP_PROXY`` for ``http://`` ones; the uppercase name wins over the
  lowercase; a value without a scheme means ``http://``.
* ``localhost`` and loopback addresses never go through a proxy.
* ``NO_PROXY`` is a comma-separated list of ``*`` (nothing is proxied), IP
  addresses, CIDR ranges, and host names, each optionally with ``:port``.
  ``corp`` matches ``corp`` and every name under it; ``.corp`` (or ``*.corp``)
  only the names under it.

A proxy URL may carry ``user:password@``: those go to the proxy alone, as
``Proxy-Authorization``, and are never shown (``repr``, logs, the request
log and errors name the proxy by ``host:port``).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from regdata.errors import RegdataError

__all__ = ["Proxies", "proxy_host"]

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _env(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name.upper()) or environ.get(name.lower()) or ""


def _normalise(url: str | None) -> str | None:
    """A proxy URL with a scheme (``http://`` when none), checked; None when empty."""
    if not url or not url.strip():
        return None
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is no number
    except ValueError:
        raise RegdataError(f"unusable proxy URL for {proxy_host(url) or 'a proxy'}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegdataError(
            f"unusable proxy URL {parts.scheme}://{proxy_host(url)}: "
            "only http:// and https:// proxies are supported"
        )
    return url


def proxy_host(url: str) -> str:
    """``host:port`` of a proxy URL, without its credentials: how a proxy is shown anywhere."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    authority = parts.netloc.rsplit("@", 1)[-1].lower()
    if ":" not in authority.rsplit("]", 1)[-1]:
        authority += ":" + _DEFAULT_PORTS.get(parts.scheme, "80")
    return authority


def split_credentials(url: str) -> tuple[str, str | None]:
    """The proxy URL without ``user:password@``, and ``user:password`` (unquoted) or None."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    bare = parts._replace(netloc=host).geturl()
    return bare, f"{unquote(user)}:{unquote(password)}"


@dataclass(frozen=True)
class _Rule:
    """One ``NO_PROXY`` entry."""

    host: str = ""  # a domain, "." first when it must be a suffix
    whole: bool = False  # the domain itself matches too (an entry without a leading dot)
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: str = ""

    def matches(self, host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, port: str) -> bool:
        if self.port and self.port != port:
            return False
        if self.network is not None:
            return ip is not None and ip in self.network
        return host.endswith(self.host) or (self.whole and host == self.host[1:])


def _parse_no_proxy(text: str) -> tuple[bool, tuple[_Rule, ...]]:
    """(everything bypassed, the rules) of a ``NO_PROXY`` value, read as Go reads it."""
    rules: list[_Rule] = []
    for raw in text.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True, ()
        try:  # a CIDR range: 10.0.0.0/8, fd00::/8
            if "/" in entry:
                rules.append(_Rule(network=ipaddress.ip_network(entry, strict=False)))
                continue
        except ValueError:
            continue  # neither a range nor a name: Go ignores it too
        host, port = _split_host_port(entry)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None:
            rules.append(_Rule(network=ipaddress.ip_network(address), port=port))
            continue
        if host.startswith("*."):
            host = host[1:]
        whole = not host.startswith(".")
        rules.append(_Rule(host=host if not whole else "." + host, whole=whole, port=port))
    return False, tuple(rules)


def _split_host_port(text: str) -> tuple[str, str]:
    """``host`` and ``port`` of ``host[:port]``, ``[v6]:port`` or a bare IPv6 address."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else ""
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, ""


@dataclass(frozen=True, repr=False)
class Proxies:
    """Which proxy, if any, a request goes through.

    Build one with :meth:`from_environment` (what regdata does by default),
    :meth:`none`, or directly / :meth:`from_mapping` with requests' keys
    ``{"https": URL, "http": URL, "no_proxy": "a,b"}``.  Given to
    ``Registry(proxies=...)`` it replaces the environment entirely.
    """

    https: str | None = None
    http: str | None = None
    no_proxy: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "https", _normalise(self.https))
        object.__setattr__(self, "http", _normalise(self.http))
        object.__setattr__(self, "_rules", _parse_no_proxy(self.no_proxy or ""))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Proxies:
        """``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY`` (uppercase first, then lowercase)."""
        env = os.environ if environ is None else environ
        return cls(
            https=_env(env, "https_proxy") or None,
            http=_env(env, "http_proxy") or None,
            no_proxy=_env(env, "no_proxy"),
        )

    @classmethod
    def none(cls) -> Proxies:
        """No proxy for anything, whatever the environment says."""
        return cls()

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str | None]) -> Proxies:
        """requests' ``proxies`` dict: ``https``, ``http`` and ``no_proxy`` keys; an empty one is no proxy."""
        unknown = set(mapping) - {"https", "http", "no_proxy"}
        if unknown:
            raise ValueError(f"unknown proxies key {sorted(unknown)[0]!r}: use https, http, no_proxy")
        return cls(
            https=mapping.get("https"), http=mapping.get("http"), no_proxy=mapping.get("no_proxy") or ""
        )

    def __bool__(self) -> bool:
        return bool(self.https or self.http)

    def bypass(self, host: str, port: str) -> bool:
        """True when ``host:port`` is reached directly: loopback, or named in ``no_proxy``."""
        host = host.lower().strip("[]")
        if host == "localhost":
            return True
        try:
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None and ip.is_loopback:
            return True
        everything, rules = self.__dict__["_rules"]
        if everything:
            return True
        return any(rule.matches(host, ip, port) for rule in rules)

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL (credentials included: for the HTTP layer only) for ``url``, or None."""
        parts = urlsplit(url)
        proxy = self.https if parts.scheme == "https" else self.http if parts.scheme == "http" else None
        if proxy is None:
            return None
        port = str(parts.port or _DEFAULT_PORTS.get(parts.scheme, ""))
        return None if self.bypass(parts.hostname or "", port) else proxy

    def __repr__(self) -> str:
        pairs = (("https", self.https), ("http", self.http))
        shown = [f"{name}={proxy_host(value)!r}" for name, value in pairs if value]
        if self.no_proxy:
            shown.append(f"no_proxy={self.no_proxy!r}")
        return f"Proxies({', '.join(shown)})"

    __str__ = __repr__

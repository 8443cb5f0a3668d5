"""Registry auth: Basic and Docker's bearer-token flow, from the ``WWW-Authenticate`` challenge.

The layer sends a request as it is; on a 401 it reads the challenge, gets a
token for the request's scope from the realm (a GET with Basic credentials,
or an OAuth2 POST when it holds an identity token) and sends it once more.
What it learned of a host's challenge is kept, so later requests carry a
token from the start.  A 401 with ``insufficient_scope`` widens the scope
once.  Tokens are kept in memory only, per realm, service, scope and
credential, until they expire.

Credentials and tokens go only to the host they belong to: a request to any
other host (a redirect to blob storage, say) is sent with no
``Authorization`` at all.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from regdata.credentials import Credential
from regdata.errors import CredentialsError, InsecureRequest, MalformedContent, error_for_status
from regdata.oci.manifest import load_json
from regdata.transport.base import Request, Response, Transport, host_key

__all__ = ["AuthTransport", "Challenge", "TokenCache", "parse_challenge"]

TOKEN_MAX_BYTES = 1024 * 1024
# The distribution token spec: "if omitted, assume 60 seconds".
DEFAULT_TOKEN_SECONDS = 60
# Refresh a little before expiry, so a token does not die in flight.
EXPIRY_MARGIN_SECONDS = 10
# A token kept longer than this is asked for again, whatever its answer said.
MAX_TOKEN_SECONDS = 24 * 3600
# What may stand after "Bearer ": visible ASCII, at most 64 KiB.  Anything else
# would break the header (CR LF, a NUL) or fail to encode (non-Latin-1).
_TOKEN = re.compile(r"[\x21-\x7e]{1,65536}")

_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*(?:,|$)')


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str  # "bearer" or "basic", lower-cased
    params: dict[str, str]

    @property
    def realm(self) -> str | None:
        """Where to get a token."""
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        """The service the token is for."""
        return self.params.get("service")


def parse_challenge(header: str | None) -> Challenge | None:
    """Parse ``Bearer realm="...",service="...",scope="..."``; None when unreadable."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    if not scheme or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", scheme):
        return None
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if not match or match.end() == pos:
            return None
        key, value = match.group(1).lower(), match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key] = value
        pos = match.end()
    return Challenge(scheme.lower(), params)


@dataclass
class _Token:
    value: str
    expires: float


@dataclass
class TokenCache:
    """Tokens in memory, by realm, service, scope and credential identity; never shared."""

    # repr=False: a token is a secret and must not show in a repr or a traceback.
    _tokens: dict[tuple[str, ...], _Token] = field(default_factory=dict, repr=False)
    _locks: dict[tuple[str, ...], threading.Lock] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, key: tuple[str, ...]) -> str | None:
        """A live token for ``key``."""
        token = self._tokens.get(key)
        if token is not None and token.expires > time.monotonic():
            return token.value
        return None

    def put(self, key: tuple[str, ...], value: str, seconds: float) -> None:
        """Keep a token for ``seconds`` (less a margin)."""
        self._tokens[key] = _Token(value, time.monotonic() + seconds - EXPIRY_MARGIN_SECONDS)

    def drop(self, key: tuple[str, ...]) -> None:
        """Forget a token the registry refused."""
        self._tokens.pop(key, None)

    def lock(self, key: tuple[str, ...]) -> threading.Lock:
        """One lock per key, so concurrent requests fetch a token once."""
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())


def _basic(credential: Credential) -> str:
    raw = f"{credential.username or ''}:{credential.password or ''}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@dataclass
class AuthTransport:
    """Adds ``Authorization`` for one registry host; fetches tokens through ``token_transport``."""

    inner: Transport
    host: str  # the registry API host as it stands in URLs: "127.0.0.1:5000", "ghcr.io"
    credential: Credential
    token_transport: Transport
    tokens: TokenCache = field(default_factory=TokenCache, repr=False)
    _challenge: Challenge | None = None

    def _same_host(self, url: str) -> bool:
        # One host however written (ghcr.io, GHCR.io:443): the token goes to it, and nowhere else.
        return host_key(url) == host_key(self.host, urlsplit(url).scheme)

    def send(self, request: Request) -> Response:
        """Send with the credential this host wants, retrying once after a 401."""
        if not self._same_host(request.url):
            return self.inner.send(request.without_header("Authorization"))
        sent_auth = False
        challenge = self._challenge
        if challenge is not None:
            header = self._authorization(challenge, request, request.scope)
            if header:
                request = request.with_headers(Authorization=header)
                sent_auth = True
        response = self.inner.send(request)
        if response.status != 401:
            return response
        challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
        if challenge is None or challenge.scheme not in ("bearer", "basic"):
            return response
        self._challenge = challenge
        scope = request.scope
        if challenge.scheme == "bearer":
            asked = challenge.params.get("scope")
            if sent_auth and challenge.params.get("error") == "insufficient_scope" and asked:
                scope = _widen(scope, asked)
            elif sent_auth:
                self.tokens.drop(self._token_key(challenge, scope))
            elif scope is None and asked:
                scope = asked
        elif sent_auth or not (self.credential.username and self.credential.password):
            return response
        header = self._authorization(challenge, request, scope)
        if not header:
            return response
        return self.inner.send(request.with_headers(Authorization=header))

    def _authorization(self, challenge: Challenge, request: Request, scope: str | None) -> str | None:
        if challenge.scheme == "basic":
            if self.credential.username and self.credential.password:
                return _basic(self.credential)
            return None
        if self.credential.registry_token:
            if not _TOKEN.fullmatch(self.credential.registry_token):
                raise CredentialsError(f"{self.host}: the registry token cannot go in a header")
            return f"Bearer {self.credential.registry_token}"
        token = self._token(challenge, scope, request)
        return f"Bearer {token}"

    def _token_key(self, challenge: Challenge, scope: str | None) -> tuple[str, ...]:
        return (challenge.realm or "", challenge.service or "", scope or "", self.credential.identity())

    def _token(self, challenge: Challenge, scope: str | None, request: Request) -> str:
        key = self._token_key(challenge, scope)
        cached = self.tokens.get(key)
        if cached:
            return cached
        with self.tokens.lock(key):
            cached = self.tokens.get(key)
            if cached:
                return cached
            value, seconds = self._fetch_token(challenge, scope, request)
            if seconds > EXPIRY_MARGIN_SECONDS:
                self.tokens.put(key, value, seconds)
            return value

    def _fetch_token(self, challenge: Challenge, scope: str | None, request: Request) -> tuple[str, float]:
        realm = challenge.realm
        if not realm:
            raise MalformedContent(f"{self.host}: bearer challenge without a realm")
        try:
            parts = urlsplit(realm)
        except ValueError:  # a broken host ("http://[::1"); a bad port is caught by the Request
            raise MalformedContent(f"{self.host}: unusable token realm") from None
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InsecureRequest(f"{self.host}: refusing token realm {realm[:100]!r}")
        query: dict[str, str] = {}
        if challenge.service:
            query["service"] = challenge.service
        scopes = scope.split(" ") if scope else []
        if self.credential.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": self.credential.identity_token,
                "client_id": "regdata",
                **query,
            }
            if scopes:
                form["scope"] = " ".join(scopes)
            token_request = Request(
                "POST",
                realm,
                "token",
                data=form,
                max_bytes=TOKEN_MAX_BYTES,
                repository=request.repository,
                context=request.context,
            )  # the HTTP layer form-encodes ``data`` and says so
        else:
            pairs = list(query.items()) + [("scope", s) for s in scopes]
            if self.credential.username:
                pairs.append(("account", self.credential.username))
            url = realm + ("&" if parts.query else "?") + urlencode(pairs) if pairs else realm
            headers = {}
            if self.credential.username and self.credential.password:
                headers["Authorization"] = _basic(self.credential)
            token_request = Request(
                "GET",
                url,
                "token",
                headers=headers,
                max_bytes=TOKEN_MAX_BYTES,
                repository=request.repository,
                context=request.context,
            )
        response = self.token_transport.send(token_request)
        if not response.ok:
            raise error_for_status(
                response.status,
                f"token endpoint {parts.scheme}://{parts.netloc}{parts.path}",
                detail="token request refused",
            )
        doc = load_json(response.body, "token answer", quote=False)  # its first bytes may be the token
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise MalformedContent("token answer has no usable token")
        return token, _lifetime(doc.get("expires_in", DEFAULT_TOKEN_SECONDS))


def _lifetime(value: object) -> float:
    """Seconds a token lives, from ``expires_in``: the default when unreadable, at most a day."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return DEFAULT_TOKEN_SECONDS
    try:
        seconds = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return MAX_TOKEN_SECONDS
    if seconds != seconds:  # NaN
        return DEFAULT_TOKEN_SECONDS
    return min(seconds, MAX_TOKEN_SECONDS)


def _widen(current: str | None, asked: str) -> str:
    """The union of two space-separated scope lists, once."""
    scopes = (current or "").split() + [s for s in asked.split() if s not in (current or "").split()]
    return " ".join(scopes)

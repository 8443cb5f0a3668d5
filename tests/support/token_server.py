"""A Docker token-auth server of our own, for Distribution's ``auth.token`` mode.

It speaks both token endpoints of the Docker auth spec on one path (``/token``):

* ``GET /token?service=S&scope=repository:a/b:pull,push&scope=...`` with optional Basic auth
  (``offline_token=true`` adds a refresh token);
* ``POST /token`` (OAuth2 form): ``grant_type=password`` with ``username``/``password``,
  or ``grant_type=refresh_token`` with ``refresh_token``; ``access_type=offline`` adds one.

Tokens are RS256 JWTs. Distribution 2.8 finds the verifying key through the ``kid``
header, which must be the libtrust fingerprint of a public key found in its
``rootcertbundle``; we write a self-signed certificate of our key there.

Distribution accepts a token for 60 s past its ``exp`` (``token.Leeway``), so a test that
wants the registry to refuse an expired token sets ``exp_shift`` to below -60.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fnmatch
import hashlib
import json
import secrets
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from .registry_server import TokenAuthConfig

__all__ = [
    "AclRule",
    "Grant",
    "TokenRequest",
    "TokenServer",
    "libtrust_key_id",
    "parse_scope",
    "start_token_server",
]


def libtrust_key_id(public_key: PublicKeyTypes) -> str:
    """The key ID libtrust (and so Distribution) gives a public key.

    SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits, base32 without padding,
    in 12 groups of 4 joined by ':'.
    """
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


@dataclass(frozen=True)
class AclRule:
    """Who may do what. Globs use fnmatch; the anonymous account is the empty string,
    so ``account="*"`` includes anonymous and ``account="?*"`` means any signed-in user."""

    account: str = "*"
    name: str = "*"
    actions: tuple[str, ...] = ("pull",)
    type: str = "repository"

    def allows(self, account: str, type_: str, name: str) -> bool:
        return (
            fnmatch.fnmatchcase(account, self.account)
            and self.type == type_
            and fnmatch.fnmatchcase(name, self.name)
        )


@dataclass(frozen=True)
class Grant:
    type: str
    name: str
    actions: tuple[str, ...]

    def claim(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


def parse_scope(scope: str) -> Grant | None:
    """``repository:host:5000/a/b:pull,push`` → Grant; the name may itself hold ':'."""
    try:
        head, actions = scope.rsplit(":", 1)
        type_, name = head.split(":", 1)
    except ValueError:
        return None
    # "repository(plugin)" is a resource class; the type is what precedes it.
    type_ = type_.split("(", 1)[0]
    return Grant(type_, name, tuple(a for a in actions.split(",") if a))


@dataclass
class TokenRequest:
    """One request the token server saw."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    authorization: bool
    auth_scheme: str | None
    account: str | None  # None: credentials were bad or missing where required
    status: int
    scopes: list[str] = field(default_factory=list)
    granted: list[Grant] = field(default_factory=list)
    refresh_token_issued: bool = False
    at: float = field(default_factory=time.time)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.owner._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.owner._handle(self, "POST")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: TokenServer


class TokenServer:
    """The token server; construct with users and ACL, then ``start()``.

    Attributes that tests may change while it runs: ``lifetime`` (seconds, reported as
    ``expires_in`` and used for ``exp``), ``exp_shift`` (added to ``exp`` only),
    ``users``, ``acl``, ``allow_anonymous``, ``require_client_id``.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        acl: Sequence[AclRule] = (),
        *,
        service: str = "regdata-test-registry",
        issuer: str = "regdata-test-issuer",
        lifetime: int = 300,
        workdir: Path | None = None,
        path: str = "/token",
        token_only: bool = False,
    ) -> None:
        """``path``: where the realm is (``/oauth2/token`` for ACR, ``/v2/auth`` for Quay);
        ``token_only``: a GET is answered with ``{"token": ...}`` alone, as GHCR and Quay do."""
        self.path = path
        self.token_only = token_only
        self.users: dict[str, str] = dict(users or {})
        self.acl: list[AclRule] = list(acl)
        self.service = service
        self.issuer = issuer
        self.lifetime = lifetime
        self.exp_shift = 0
        self.allow_anonymous = True
        self.require_client_id = True
        self.requests: list[TokenRequest] = []
        self.refresh_tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="regdata-token-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = libtrust_key_id(self._key.public_key())
        self.rootcertbundle = self.workdir / "token-root.pem"
        self.rootcertbundle.write_bytes(self._self_signed_cert())
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- setup
    def _self_signed_cert(self) -> bytes:
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.issuer)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .sign(self._key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    def start(self) -> TokenServer:
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one poll
            name=f"token-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> TokenServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        return f"{self.url}{self.path}"

    def registry_config(self) -> TokenAuthConfig:
        return TokenAuthConfig(
            realm=self.realm,
            service=self.service,
            issuer=self.issuer,
            rootcertbundle=self.rootcertbundle,
        )

    # -- test helpers
    def fail_next(self, status: int = 500, count: int = 1) -> None:
        """Answer the next ``count`` requests with ``status`` and no token."""
        with self._lock:
            self._failures.extend([status] * count)

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def requests_for(self, account: str | None) -> list[TokenRequest]:
        with self._lock:
            return [r for r in self.requests if r.account == account]

    def issue(self, account: str, grants: Iterable[Grant]) -> str:
        """A signed token for ``account`` with exactly ``grants`` (no ACL check)."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": account,
            "aud": self.service,
            "exp": now + self.lifetime + self.exp_shift,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [g.claim() for g in grants],
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id})

    def allowed(self, account: str, wanted: Grant) -> Grant:
        """The part of ``wanted`` the ACL gives ``account`` (possibly no actions)."""
        permitted: set[str] = set()
        for rule in self.acl:
            if rule.allows(account, wanted.type, wanted.name):
                permitted.update(rule.actions)
        wildcard = "*" in permitted
        actions = tuple(a for a in wanted.actions if wildcard or a in permitted)
        return Grant(wanted.type, wanted.name, actions)

    # -- HTTP
    def _check_basic(self, header: str) -> str | None:
        try:
            raw = base64.b64decode(header.split(" ", 1)[1], validate=True).decode()
            user, password = raw.split(":", 1)
        except (IndexError, ValueError, binascii.Error, UnicodeDecodeError):
            return None
        expected = self.users.get(user)
        if expected is None or not secrets.compare_digest(expected, password):
            return None
        return user

    def _handle(self, h: _Handler, method: str) -> None:
        parsed = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        form: dict[str, list[str]] = {}
        if method == "POST":
            length = int(h.headers.get("Content-Length") or 0)
            body = h.rfile.read(length).decode("utf-8", "replace")
            form = urllib.parse.parse_qs(body, keep_blank_values=True)
        auth_header = h.headers.get("Authorization")
        rec = TokenRequest(
            method=method,
            path=parsed.path,
            query=query,
            form=form,
            authorization=auth_header is not None,
            auth_scheme=auth_header.split(" ", 1)[0] if auth_header else None,
            account=None,
            status=0,
        )
        with self._lock:
            self.requests.append(rec)
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            self._reply(h, rec, failure, {"errors": [{"code": "UNAVAILABLE", "message": "forced"}]})
            return
        if parsed.path != self.path:
            self._reply(h, rec, 404, {"errors": [{"code": "NOT_FOUND", "message": parsed.path}]})
            return
        if method == "GET":
            self._handle_get(h, rec, auth_header)
        else:
            self._handle_post(h, rec)

    def _scopes(self, values: Iterable[str]) -> list[str]:
        # GET repeats scope=; OAuth2 POST separates scopes by spaces. Accept both anywhere.
        return [s for v in values for s in v.split(" ") if s]

    def _grants(self, account: str, scopes: list[str]) -> list[Grant]:
        out = []
        for s in scopes:
            wanted = parse_scope(s)
            if wanted is not None:
                out.append(self.allowed(account, wanted))
        return out

    def _handle_get(self, h: _Handler, rec: TokenRequest, auth_header: str | None) -> None:
        q = rec.query
        account: str | None
        if auth_header is None:
            account = "" if self.allow_anonymous else None
        elif auth_header.lower().startswith("basic "):
            account = self._check_basic(auth_header)
        else:
            account = None
        if account is None:
            self._unauthorized(h, rec)
            return
        rec.account = account
        if q.get("service", [self.service])[0] != self.service:
            self._reply(h, rec, 400, {"errors": [{"code": "INVALID_SERVICE"}]})
            return
        rec.scopes = self._scopes(q.get("scope", []))
        rec.granted = self._grants(account, rec.scopes)
        token = self.issue(account, rec.granted)
        body: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": self.lifetime,
            "issued_at": _now_rfc3339(),
        }
        if self.token_only:
            body = {"token": token}
        if account and q.get("offline_token", ["false"])[0].lower() == "true":
            body["refresh_token"] = self._new_refresh_token(account)
            rec.refresh_token_issued = True
        self._reply(h, rec, 200, body)

    def _handle_post(self, h: _Handler, rec: TokenRequest) -> None:
        f = rec.form

        def one(key: str) -> str | None:
            values = f.get(key)
            return values[0] if values else None

        grant_type = one("grant_type")
        if self.require_client_id and not one("client_id"):
            self._reply(h, rec, 400, {"error": "invalid_request", "error_description": "client_id"})
            return
        if one("service") not in (None, self.service):
            self._reply(h, rec, 400, {"error": "invalid_request", "error_description": "service"})
            return
        account: str | None
        if grant_type == "password":
            user, password = one("username") or "", one("password") or ""
            expected = self.users.get(user)
            ok = expected is not None and secrets.compare_digest(expected, password)
            account = user if ok else None
        elif grant_type == "refresh_token":
            with self._lock:
                account = self.refresh_tokens.get(one("refresh_token") or "")
        else:
            self._reply(h, rec, 400, {"error": "unsupported_grant_type"})
            return
        if account is None:
            self._reply(h, rec, 401, {"error": "invalid_grant"})
            return
        rec.account = account
        rec.scopes = self._scopes(f.get("scope", []))
        rec.granted = self._grants(account, rec.scopes)
        body: dict[str, Any] = {
            "access_token": self.issue(account, rec.granted),
            "token_type": "Bearer",
            "scope": " ".join(rec.scopes),
            "expires_in": self.lifetime,
            "issued_at": _now_rfc3339(),
        }
        if grant_type == "refresh_token":
            body["refresh_token"] = one("refresh_token")
        elif one("access_type") == "offline":
            body["refresh_token"] = self._new_refresh_token(account)
            rec.refresh_token_issued = True
        self._reply(h, rec, 200, body)

    def _new_refresh_token(self, account: str) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.refresh_tokens[token] = account
        return token

    def _unauthorized(self, h: _Handler, rec: TokenRequest) -> None:
        self._reply(
            h,
            rec,
            401,
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            {"WWW-Authenticate": 'Basic realm="regdata-test-token"'},
        )

    def _reply(
        self,
        h: _Handler,
        rec: TokenRequest,
        status: int,
        body: dict[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        rec.status = status
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)


def _now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def start_token_server(
    users: Mapping[str, str] | None = None,
    acl: Sequence[AclRule] = (),
    **kwargs: Any,
) -> TokenServer:
    return TokenServer(users, acl, **kwargs).start()

"""Registry credentials, read the way Docker and podman read them.

A :class:`Credential` is what one registry host gets: a username and
password, an identity (refresh) token, or a registry (bearer) token.  A
:class:`Credentials` is the set for many hosts, looked up by host with
:meth:`Credentials.for_host`.

Sources:

* Docker's ``config.json`` (``$DOCKER_CONFIG/config.json``, else
  ``~/.docker/config.json``): ``auths``, ``credHelpers`` and ``credsStore``.
* containers' ``auth.json`` as podman, buildah and skopeo write it
  (``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json`` and
  ``$XDG_CONFIG_HOME/containers/auth.json``, ``~/.config`` by default).  It is
  read with the same parser as ``config.json``.
* A plain mapping given in code.

Hosts are normalised with :func:`regdata.oci.reference.canonical_host`: scheme and
path are dropped, case is folded and Docker Hub's aliases
(``index.docker.io``, ``registry-1.docker.io``,
``https://index.docker.io/v1/``) become ``docker.io``.  The port is kept, so
``localhost:5000`` and ``localhost`` are different hosts.

An ``auth.json`` key may name a namespace (``quay.io/org``); podman then uses
it for that namespace only.  regdata keeps it simple and applies such an entry
to the whole host; an entry keyed by the bare host (or by a URL) wins over a
namespaced one, and among several namespaced ones the first in the file wins.

Credential helpers (``docker-credential-<name>``) run only when a host is
asked for, are found through ``PATH`` alone, run without a shell and under a
timeout, and their answers are kept in memory for the life of the
:class:`Credentials`.

Nothing here puts a secret in a message or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from regdata.errors import CredentialsError, printable
from regdata.oci.manifest import decode_json
from regdata.oci.reference import DOCKER_HUB, canonical_host

__all__ = [
    "DEFAULT_HELPER_TIMEOUT",
    "Credential",
    "Credentials",
    "auth_file_paths",
    "docker_config_path",
]

logger = logging.getLogger("regdata.credentials")

#: Seconds a credential helper may take before it is killed.
DEFAULT_HELPER_TIMEOUT = 10.0

# Docker's credential stores key Docker Hub by its v1 index URL, not by host.
_DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"
_TOKEN_USERNAME = "<token>"
_HELPER_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")
# The salt of the identity KDF; a new version names new cache keys for every credential.
_IDENTITY_DOMAIN = b"regdata.credential.identity.v2\x00"
# scrypt cost: 2**13 blocks of 1 KiB, about 30 ms on a laptop core.
_IDENTITY_SCRYPT_N = 2**13
_IDENTITY_LOCK = threading.Lock()
_SECRET_FIELDS = ("password", "identity_token", "registry_token")


@dataclass(frozen=True, repr=False)
class Credential:
    """What one registry host is given: basic auth, an identity token or a registry token.

    All fields are optional; a credential with none set is anonymous and
    falsy.  ``repr()`` and ``str()`` show the username but only ``<set>`` for
    the secrets.
    """

    username: str | None = None
    password: str | None = None
    #: An OAuth2 refresh token (Docker's ``identitytoken``), traded for bearer tokens.
    identity_token: str | None = None
    #: A bearer token sent to the registry as is (Docker's ``registrytoken``).
    registry_token: str | None = None

    @classmethod
    def anonymous(cls) -> Credential:
        """The empty credential: no authentication at all."""
        return cls()

    def __bool__(self) -> bool:
        """False for the anonymous credential (no field set, or all empty)."""
        return any(getattr(self, f.name) for f in fields(self))

    def identity(self) -> str:
        """A short hex digest naming this credential, for cache keys.

        Two credentials differing in any field (the secrets included) get
        different identities; the secrets cannot be read back from it.  Cache
        keys are visible to whoever can list a shared cache, so the digest is
        a slow, memory-hard KDF (scrypt, about 30 ms and 8 MiB) rather than a
        plain hash: guessing a password from a key costs that much per guess.
        The salt is a constant, so the identity is the same in every process
        and on every machine sharing a cache; it is computed once per
        Credential.  The anonymous credential's identity is ``"anonymous"``.
        """
        memo: str | None = self.__dict__.get("_identity")
        if memo is not None:
            return memo
        if not self:
            value = "anonymous"
            object.__setattr__(self, "_identity", value)
        else:
            # One at a time: a scan's threads asking at once wait for one computation
            # instead of each spending the time and the memory.
            with _IDENTITY_LOCK:
                again = self.__dict__.get("_identity")
                if isinstance(again, str):
                    return again
                # JSON keeps None apart from "" and a field's end from the next's start.
                payload = json.dumps([getattr(self, f.name) for f in fields(self)]).encode("utf-8")
                value = hashlib.scrypt(
                    payload, salt=_IDENTITY_DOMAIN, n=_IDENTITY_SCRYPT_N, r=8, p=1,
                    maxmem=64 * 1024 * 1024, dklen=8,
                ).hex()
                # Not a field: equality, hashing and repr ignore it; frozen, so set it directly.
                object.__setattr__(self, "_identity", value)
        return value

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            shown = "<set>" if f.name in _SECRET_FIELDS else repr(value)
            parts.append(f"{f.name}={shown}")
        return f"Credential({', '.join(parts)})"

    __str__ = __repr__


_ANONYMOUS = Credential()


def docker_config_path() -> Path:
    """Docker's config file: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    directory = os.environ.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path.home() / ".docker" / "config.json"


def auth_file_paths() -> list[Path]:
    """The containers auth files podman reads, first wins.

    ``$REGISTRY_AUTH_FILE`` alone when it is set; else
    ``$XDG_RUNTIME_DIR/containers/auth.json`` (when ``XDG_RUNTIME_DIR`` is
    set) and then ``$XDG_CONFIG_HOME/containers/auth.json`` (``~/.config`` by
    default).  The files need not exist.
    """
    explicit = os.environ.get("REGISTRY_AUTH_FILE")
    if explicit:
        return [Path(explicit)]
    paths = []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        paths.append(Path(runtime) / "containers" / "auth.json")
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    paths.append(Path(config_home) / "containers" / "auth.json")
    return paths


# --- reading files -----------------------------------------------------------


def _show(text: str, limit: int = 60) -> str:
    """A short, printable quotation of untrusted text, for messages."""
    clean = printable(text, limit + 1)
    return repr(clean[: limit - 3] + "..." if len(clean) > limit else clean)


def _entry_host(key: str, origin: str) -> tuple[str, bool]:
    """The canonical host of an ``auths``/``credHelpers`` key, and whether it names a namespace."""
    host = canonical_host(key)
    if not host:
        raise CredentialsError(f"{origin}: entry {_show(key)}: no registry host in the key")
    scoped = "://" not in key and "/" in key.strip().rstrip("/")
    return host, scoped


def _string_field(entry: Mapping[str, Any], name: str, where: str) -> str | None:
    value = entry.get(name)
    if value is None or isinstance(value, str):
        return value or None
    raise CredentialsError(f"{where}: {name!r} must be a string, not {type(value).__name__}")


def _parse_auth_entry(entry: object, where: str) -> Credential:
    """One ``auths`` value: ``auth`` (base64 of ``user:password``) and/or the explicit fields."""
    if not isinstance(entry, dict):
        raise CredentialsError(f"{where}: must be a JSON object, not {type(entry).__name__}")
    username = _string_field(entry, "username", where)
    password = _string_field(entry, "password", where)
    encoded = _string_field(entry, "auth", where)
    if encoded:
        # "from None" everywhere below: the chained decoder errors quote bytes of the secret.
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise CredentialsError(f"{where}: 'auth' is not valid base64 of UTF-8 text") from None
        user, colon, secret = decoded.partition(":")
        if not colon:
            raise CredentialsError(f"{where}: 'auth' does not decode to 'user:password' (no ':')")
        if not user:
            raise CredentialsError(f"{where}: 'auth' has an empty user name")
        username, password = user, secret
    return Credential(
        username=username,
        password=password,
        identity_token=_string_field(entry, "identitytoken", where),
        registry_token=_string_field(entry, "registrytoken", where),
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    """The top-level object of a config file; None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise CredentialsError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise CredentialsError(
            f"{path}: cannot be read: {exc.strerror or type(exc).__name__}"
        ) from None
    if not text.strip():
        return {}  # An empty file holds no credentials; failing on it would help nobody.
    try:
        data = decode_json(text)
    except json.JSONDecodeError as exc:
        # exc.doc holds the whole file, secrets and all: report only where it broke.
        raise CredentialsError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:  # nested too deeply, or text no string can hold
        raise CredentialsError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CredentialsError(f"{path}: must hold a JSON object, not {type(data).__name__}")
    return data


def _check_helper_name(name: object, where: str) -> str:
    if not isinstance(name, str):
        raise CredentialsError(f"{where}: helper name must be a string, not {type(name).__name__}")
    # Only a bare name: a path would let a config file pick any program to hand our hosts to.
    if not _HELPER_NAME.match(name):
        raise CredentialsError(
            f"{where}: invalid credential helper name {_show(name)} "
            "(only letters, digits, '.', '_' and '-')"
        )
    return name


@dataclass
class _Source:
    """One file or mapping: inline credentials, per-host helpers and a default store."""

    origin: str
    entries: dict[str, Credential] = field(default_factory=dict)
    helpers: dict[str, str] = field(default_factory=dict)
    store: str | None = None
    listed_hosts: set[str] = field(default_factory=set)


def _parse_config(data: Mapping[str, Any], origin: str) -> _Source:
    source = _Source(origin)
    auths = data.get("auths", {})
    if not isinstance(auths, dict):
        raise CredentialsError(
            f"{origin}: 'auths' must be a JSON object, not {type(auths).__name__}"
        )
    scoped_hosts: set[str] = set()
    for key, entry in auths.items():
        where = f"{origin}: entry {_show(key)}"
        host, scoped = _entry_host(key, origin)
        credential = _parse_auth_entry(entry, where)
        source.listed_hosts.add(host)
        if not credential:
            continue
        if host not in source.entries or (host in scoped_hosts and not scoped):
            source.entries[host] = credential
            if scoped:
                scoped_hosts.add(host)
            else:
                scoped_hosts.discard(host)

    helpers = data.get("credHelpers", {})
    if not isinstance(helpers, dict):
        raise CredentialsError(
            f"{origin}: 'credHelpers' must be a JSON object, not {type(helpers).__name__}"
        )
    for key, name in helpers.items():
        host, _ = _entry_host(key, origin)
        source.helpers.setdefault(
            host, _check_helper_name(name, f"{origin}: credHelpers {_show(key)}")
        )

    store = data.get("credsStore")
    if store is not None and store != "":
        source.store = _check_helper_name(store, f"{origin}: credsStore")
    return source


# --- credential helpers ------------------------------------------------------


def _helper_path(name: str, host: str) -> str:
    program = f"docker-credential-{_check_helper_name(name, f'credential helper for {host}')}"
    # Relative PATH entries would let the working directory choose who gets our secrets.
    search = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if os.path.isabs(p)
    )
    found = shutil.which(program, path=search)
    if found is None:
        raise CredentialsError(f"credential helper {program} for {host}: not found on PATH")
    return found


def _run_helper(
    name: str, action: str, stdin: str, host: str, timeout: float
) -> tuple[int, str, str]:
    """Run ``docker-credential-<name> <action>``; (exit status, stdout, stderr)."""
    program = _helper_path(name, host)
    label = f"credential helper docker-credential-{name} {action} for {host}"
    try:
        # A session of its own, so a timeout kills the helper's children too and
        # nothing keeps our pipes open after it.
        proc = subprocess.Popen(
            [program, action],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise CredentialsError(
            f"{label}: cannot run: {exc.strerror or type(exc).__name__}"
        ) from None
    try:
        out, err = proc.communicate(stdin.encode("utf-8"), timeout=timeout)
    except subprocess.TimeoutExpired:
        if hasattr(os, "killpg"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.kill()
        proc.communicate()
        raise CredentialsError(f"{label}: timed out after {timeout:g}s") from None
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _first_line_if_not_json(*texts: str) -> str:
    """A sanitised first line of a helper's complaint, unless it could be a JSON payload."""
    for text in texts:
        line = text.strip().split("\n", 1)[0].strip()
        if line and not line.startswith(("{", "[", '"')):
            return f": {_show(line)}"
    return ""


def _helper_get(name: str, host: str, timeout: float) -> Credential:
    server_url = _DOCKER_HUB_SERVER_URL if host == DOCKER_HUB else host
    status, out, err = _run_helper(name, "get", server_url, host, timeout)
    label = f"credential helper docker-credential-{name} get for {host}"
    if status != 0:
        if "credentials not found" in (out + err).lower():
            return _ANONYMOUS
        raise CredentialsError(f"{label}: exit status {status}{_first_line_if_not_json(err, out)}")
    # stdout of a successful get is the secret itself: never quote it.
    try:
        answer = decode_json(out)
    except ValueError:
        raise CredentialsError(f"{label}: answer is not JSON") from None
    if not isinstance(answer, dict):
        raise CredentialsError(f"{label}: answer is not a JSON object")
    username, secret = answer.get("Username", ""), answer.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str):
        raise CredentialsError(f"{label}: answer lacks string 'Username' and 'Secret'")
    if username == _TOKEN_USERNAME:
        return Credential(identity_token=secret or None)
    return Credential(username=username or None, password=secret or None)


def _helper_list(name: str, timeout: float) -> set[str]:
    """Hosts a credential store knows; empty when it cannot say."""
    try:
        status, out, _ = _run_helper(name, "list", "", "(list)", timeout)
        answer = decode_json(out) if status == 0 else {}
    except (CredentialsError, ValueError):
        return set()
    if not isinstance(answer, dict):
        return set()
    return {h for h in (canonical_host(k) for k in answer if isinstance(k, str)) if h}


# --- the set of credentials --------------------------------------------------


class Credentials:
    """Credentials for many registry hosts, from one or more sources.

    Sources are asked in order and the first that has a credential for the
    host gives it.  Credential helpers run lazily, the first time a host they
    cover is asked for, and their answer is kept.  Safe to share between
    threads.  Build one with :meth:`default`, :meth:`from_docker_config`,
    :meth:`from_auth_file`, :meth:`from_mapping` or :meth:`none`.
    """

    def __init__(
        self, sources: Iterable[_Source] = (), *, helper_timeout: float = DEFAULT_HELPER_TIMEOUT
    ) -> None:
        """A set over already parsed sources; use the class methods to build one."""
        self._sources = tuple(sources)
        self._timeout = helper_timeout
        self._cache: dict[str, Credential] = {}
        self._listed: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    @classmethod
    def none(cls) -> Credentials:
        """No credentials: every host is anonymous."""
        return cls()

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Credential | tuple[str, str]]) -> Credentials:
        """Credentials given in code: ``{host: Credential}`` or ``{host: (user, password)}``.

        Keys are normalised like config keys; when two keys name the same
        host, the last one wins.  An anonymous value is left out (it does not
        hide another source's credential in a merge).  Raises ``TypeError``
        for other value types.
        """
        source = _Source("mapping")
        for key, value in mapping.items():
            host, _ = _entry_host(key, "mapping")
            if isinstance(value, Credential):
                credential = value
            elif (
                isinstance(value, tuple)
                and len(value) == 2
                and all(isinstance(v, str) for v in value)
            ):
                credential = Credential(username=value[0], password=value[1])
            else:
                raise TypeError(
                    f"credential for {host!r} must be a Credential or a (user, password) tuple, "
                    f"not {type(value).__name__}"
                )
            if credential:
                source.entries[host] = credential
                source.listed_hosts.add(host)
        return cls([source])

    @classmethod
    def from_docker_config(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        helper_timeout: float = DEFAULT_HELPER_TIMEOUT,
        strict: bool = False,
    ) -> Credentials:
        """Credentials from Docker's ``config.json`` (default: :func:`docker_config_path`).

        For each host, Docker's order: the host's ``credHelpers`` helper, else
        the ``credsStore`` helper, else the inline ``auths`` entry (also used
        when the helper has nothing for the host).  A missing file gives no
        credentials.  A malformed one, as Docker does, gives none either and
        one warning (logger ``regdata.credentials``) naming the file and what
        is wrong; with ``strict`` it raises :class:`CredentialsError` instead.
        """
        return cls(
            _load(Path(path) if path is not None else docker_config_path(), strict),
            helper_timeout=helper_timeout,
        )

    @classmethod
    def from_auth_file(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        helper_timeout: float = DEFAULT_HELPER_TIMEOUT,
        strict: bool = False,
    ) -> Credentials:
        """Credentials from a containers ``auth.json`` (default: :func:`auth_file_paths`).

        With several default files the first that has a credential for a host
        wins.  Same format and rules as :meth:`from_docker_config` (``strict``
        included); missing files give no credentials.
        """
        paths = [Path(path)] if path is not None else auth_file_paths()
        return cls([s for p in paths for s in _load(p, strict)], helper_timeout=helper_timeout)

    @classmethod
    def default(cls, *, helper_timeout: float = DEFAULT_HELPER_TIMEOUT, strict: bool = False) -> Credentials:
        """The credentials podman would use, falling back to Docker's.

        Order, first with a credential for the host wins: the containers auth
        files of :func:`auth_file_paths`, then Docker's ``config.json``.  That
        is podman's order; unlike podman, ``$REGISTRY_AUTH_FILE`` does not
        hide Docker's config, so a ``docker login`` still counts.
        """
        paths = [*auth_file_paths(), docker_config_path()]
        return cls([s for p in paths for s in _load(p, strict)], helper_timeout=helper_timeout)

    def merge(self, other: Credentials) -> Credentials:
        """A new set asking ``other`` first, then this one: ``other`` wins on shared hosts.

        Neither input changes; the new set has its own helper cache and the
        shorter of the two helper timeouts.
        """
        timeout = min(self._timeout, other._timeout)
        return Credentials([*other._sources, *self._sources], helper_timeout=timeout)

    def for_host(self, host: str) -> Credential:
        """The credential for a registry host (an alias, URL or ``host/path`` works too).

        Anonymous when no source covers the host.  Raises
        :class:`CredentialsError` when a credential helper that should answer
        for the host is missing, fails or times out; failures are not cached.
        """
        key = canonical_host(host)
        with self._lock:
            cached = self._cache.get(key)
            if cached is None:
                cached = self._resolve(key)
                self._cache[key] = cached
            return cached

    def _resolve(self, host: str) -> Credential:
        for source in self._sources:
            helper = source.helpers.get(host) or source.store
            if helper is not None:
                credential = _helper_get(helper, host, self._timeout)
                if credential:
                    return credential
            credential = source.entries.get(host, _ANONYMOUS)
            if credential:
                return credential
        return _ANONYMOUS

    def hosts(self) -> list[str]:
        """The canonical hosts these credentials cover, sorted.

        A ``credsStore`` is asked to ``list`` its hosts; when it cannot, the
        config's ``auths`` keys stand in for it.
        """
        found: set[str] = set()
        for source in self._sources:
            found.update(source.entries, source.helpers)
            if source.store is not None:
                found.update(source.listed_hosts)
                with self._lock:
                    if source.store not in self._listed:
                        self._listed[source.store] = _helper_list(source.store, self._timeout)
                    found.update(self._listed[source.store])
        return sorted(found)

    def __repr__(self) -> str:
        origins = ", ".join(s.origin for s in self._sources)
        return f"Credentials([{origins}])"


def _load(path: Path, strict: bool = True) -> list[_Source]:
    """The file's source; a malformed file, unless ``strict``, none and a warning (Docker goes on too)."""
    try:
        data = _read_json(path)
        return [] if data is None else [_parse_config(data, str(path))]
    except CredentialsError as exc:
        if strict:
            raise
        # The messages name the file and the fault, never a secret (tests/reliability check it).
        logger.warning("%s; its credentials are not used, access goes on without them", exc)
        return []

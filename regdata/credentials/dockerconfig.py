"""Docker's config.json and containers' auth.json: where they are, and what their entries mean."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regdata.credentials.credential import Credential
from regdata.errors import CredentialsError, printable
from regdata.oci.manifest import decode_json
from regdata.oci.reference import canonical_host

__all__ = ["auth_file_paths", "docker_config_path"]

logger = logging.getLogger("regdata.credentials")


_HELPER_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")


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
        raise CredentialsError(f"{path}: cannot be read: {exc.strerror or type(exc).__name__}") from None
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
            f"{where}: invalid credential helper name {_show(name)} (only letters, digits, '.', '_' and '-')"
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
        raise CredentialsError(f"{origin}: 'auths' must be a JSON object, not {type(auths).__name__}")
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
        raise CredentialsError(f"{origin}: 'credHelpers' must be a JSON object, not {type(helpers).__name__}")
    for key, name in helpers.items():
        host, _ = _entry_host(key, origin)
        source.helpers.setdefault(host, _check_helper_name(name, f"{origin}: credHelpers {_show(key)}"))

    store = data.get("credsStore")
    if store is not None and store != "":
        source.store = _check_helper_name(store, f"{origin}: credsStore")
    return source


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

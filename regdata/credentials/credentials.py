"""The set of credentials for many hosts, and which one a host gets."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from regdata.credentials.credential import _ANONYMOUS, Credential
from regdata.credentials.dockerconfig import (
    _entry_host,
    _load,
    _Source,
    auth_file_paths,
    docker_config_path,
)
from regdata.credentials.helpers import _helper_get, _helper_list
from regdata.oci.reference import canonical_host

__all__ = ["Credentials"]

logger = logging.getLogger("regdata.credentials")

#: Seconds a credential helper may take before it is killed.
DEFAULT_HELPER_TIMEOUT = 10.0


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
            elif isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
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

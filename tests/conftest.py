"""Session-wide registry servers and builders for regdata's tests.

Fixtures (servers start once per session; a server that cannot start fails the tests
that need it with its log, it never skips them):

* ``registry`` — anonymous Distribution registry; ``builder`` pushes to it.
* ``htpasswd_registry`` — Basic auth; ``.users`` = {"alice": ..., "bob": ...};
  ``htpasswd_builder`` pushes as alice.
* ``token_server`` / ``token_registry`` — token auth. ``public/*`` is pullable by anyone
  (anonymous included), ``private/*`` by alice only, ``pusher`` may do anything, alice and
  pusher may read the catalog. ``token_registry.users`` is ``token_server.users``;
  ``token_builder`` pushes as pusher.
* ``tls_registry`` — anonymous over HTTPS with a throwaway CA (``.ca_path``);
  ``tls_builder``.
* ``memcached`` — a memcached (``.host``, ``.port``).
* ``server_factory`` — per-test servers (for kill/restart/expiry tests that must not
  disturb the shared ones), closed after the test.
* ``repo_name`` — a repository name unique to the test, for the shared registries.
* ``skopeo`` — runs skopeo isolated from the network and from the user's config.

Binaries: REGDATA_REGISTRY_BIN, REGDATA_MEMCACHED_BIN, REGDATA_SKOPEO_BIN.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.builder import Builder
from tests.support.registry_server import (
    AuthMode,
    MemcachedServer,
    RegistryServer,
    start_memcached,
    start_registry,
)
from tests.support.token_server import AclRule, TokenServer, start_token_server

SKOPEO_BIN = os.environ.get("REGDATA_SKOPEO_BIN") or "/usr/bin/skopeo"

HTPASSWD_USERS = {"alice": "alice-Secret-1", "bob": "bob-Secret-2"}
TOKEN_USERS = {"alice": "alice-Token-1", "bob": "bob-Token-2", "pusher": "pusher-Token-3"}
TOKEN_ACL = (
    AclRule(account="*", name="public/*", actions=("pull",)),
    AclRule(account="alice", name="private/*", actions=("pull",)),
    AclRule(account="pusher", name="*", actions=("*",)),
    AclRule(account="alice", name="catalog", actions=("*",), type="registry"),
    AclRule(account="pusher", name="catalog", actions=("*",), type="registry"),
)


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def registry() -> Iterator[RegistryServer]:
    server = start_registry()
    yield server
    server.close()


@pytest.fixture(scope="session")
def htpasswd_registry() -> Iterator[RegistryServer]:
    server = start_registry("htpasswd", users=HTPASSWD_USERS)
    yield server
    server.close()


@pytest.fixture(scope="session")
def token_server() -> Iterator[TokenServer]:
    server = start_token_server(TOKEN_USERS, TOKEN_ACL)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(token_server: TokenServer) -> Iterator[RegistryServer]:
    server = start_registry("token", token=token_server.registry_config())
    server.users = token_server.users
    server.token_server = token_server
    yield server
    server.close()


@pytest.fixture(scope="session")
def tls_registry() -> Iterator[RegistryServer]:
    server = start_registry(tls=True)
    yield server
    server.close()


@pytest.fixture(scope="session")
def memcached() -> Iterator[MemcachedServer]:
    server = start_memcached()
    yield server
    server.close()


# --------------------------------------------------------------------------- builders


@pytest.fixture(scope="session")
def builder(registry: RegistryServer) -> Iterator[Builder]:
    b = Builder(registry.url)
    yield b
    b.close()


@pytest.fixture(scope="session")
def htpasswd_builder(htpasswd_registry: RegistryServer) -> Iterator[Builder]:
    b = Builder(htpasswd_registry.url, "alice", htpasswd_registry.users["alice"])
    yield b
    b.close()


@pytest.fixture(scope="session")
def token_builder(token_registry: RegistryServer) -> Iterator[Builder]:
    b = Builder(token_registry.url, "pusher", token_registry.users["pusher"])
    yield b
    b.close()


@pytest.fixture(scope="session")
def tls_builder(tls_registry: RegistryServer) -> Iterator[Builder]:
    b = Builder(tls_registry.url, verify=tls_registry.verify)
    yield b
    b.close()


# --------------------------------------------------------------------------- per test


class ServerFactory:
    """Starts servers for one test and closes them all afterwards."""

    def __init__(self) -> None:
        self._closers: list[Callable[[], None]] = []

    def registry(self, auth: AuthMode = "none", **kwargs: Any) -> RegistryServer:
        """``start_registry`` arguments; ``token_server=`` wires token auth to it."""
        ts: TokenServer | None = kwargs.pop("token_server", None)
        if ts is not None:
            auth = "token"
            kwargs["token"] = ts.registry_config()
        server = start_registry(auth, **kwargs)
        if ts is not None:
            server.users = ts.users
            server.token_server = ts
        self._closers.append(server.close)
        return server

    def token_server(
        self,
        users: dict[str, str] | None = None,
        acl: Sequence[AclRule] | None = None,
        **kwargs: Any,
    ) -> TokenServer:
        server = start_token_server(
            TOKEN_USERS if users is None else users,
            TOKEN_ACL if acl is None else acl,
            **kwargs,
        )
        self._closers.append(server.stop)
        return server

    def memcached(self) -> MemcachedServer:
        server = start_memcached()
        self._closers.append(server.close)
        return server

    def builder(self, server: RegistryServer, user: str | None = None) -> Builder:
        password = server.users.get(user) if user else None
        b = Builder(server.url, user, password, verify=server.verify)
        self._closers.append(b.close)
        return b

    def close(self) -> None:
        for close in reversed(self._closers):
            close()
        self._closers.clear()


@pytest.fixture
def server_factory() -> Iterator[ServerFactory]:
    factory = ServerFactory()
    yield factory
    factory.close()


_repo_counter = itertools.count()


@pytest.fixture
def repo_name(request: pytest.FixtureRequest) -> str:
    """``test/<test-name>-<n>``: valid under the distribution name grammar, unique."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:80] or "t"
    return f"test/{slug}-{next(_repo_counter)}"


# --------------------------------------------------------------------------- skopeo


class Skopeo:
    """skopeo with a private HOME and config: no registries.conf search, no proxies,
    no user credentials; only fully qualified 127.0.0.1 references are meant for it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.registries_conf = home / "registries.conf"
        self.registries_conf.write_text('unqualified-search-registries = []\nshort-name-mode = "disabled"\n')
        self.policy = home / "policy.json"
        self.policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}\n')
        self.authfile = home / "auth.json"
        self.authfile.write_text('{"auths": {}}\n')

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
        return {
            **keep,
            "HOME": str(self.home),
            "XDG_RUNTIME_DIR": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
            "REGISTRY_AUTH_FILE": str(self.authfile),
            "NO_PROXY": "*",
        }

    def run(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        if not os.access(SKOPEO_BIN, os.X_OK):
            raise RuntimeError(f"skopeo not found at {SKOPEO_BIN} (set REGDATA_SKOPEO_BIN)")
        cmd = [
            SKOPEO_BIN,
            "--registries-conf",
            str(self.registries_conf),
            "--policy",
            str(self.policy),
            *args,
        ]
        return subprocess.run(
            cmd, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )

    def inspect_raw(
        self, server: RegistryServer, ref: str, creds: tuple[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        args = ["inspect", "--raw", "--authfile", str(self.authfile)]
        if server.tls:
            args += ["--cert-dir", str(self.cert_dir(server))]
        else:
            # Plain HTTP to loopback; with TLS off skopeo talks http:// to this host.
            args += ["--tls-verify=false"]
        if creds:
            args += ["--creds", f"{creds[0]}:{creds[1]}"]
        else:
            args += ["--no-creds"]
        return self.run(*args, f"docker://{server.host}/{ref}")

    def cert_dir(self, server: RegistryServer) -> Path:
        d = self.home / "certs" / server.host.replace(":", "_")
        d.mkdir(parents=True, exist_ok=True)
        assert server.ca_path is not None
        (d / "ca.crt").write_bytes(server.ca_path.read_bytes())
        return d


@pytest.fixture(scope="session")
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    return Skopeo(tmp_path_factory.mktemp("skopeo-home"))

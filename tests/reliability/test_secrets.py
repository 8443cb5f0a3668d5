"""Planted secrets, looked for everywhere regdata writes; and where credentials may go.

The module plants recognisable secrets: a registry password (Basic auth), a
token-server password (the GET token flow), an identity token (the OAuth2
refresh flow), a registry token given as is, a wrong password, and every
bearer token the token server issues during the run (caught on their way
through a proxy).  It then reads the registries in every way the API offers,
with a SQLite and a memcached cache, DEBUG logging on for every logger,
and errors provoked on purpose, and writes the HTML report.

Each secret is then looked for, raw and in its base64, ``user:secret``
base64 and URL-encoded forms, in: every log record; every exception's
message, repr and printed traceback, and the exceptions chained under it;
the repr of every public object; every DataFrame; every key and value of
the SQLite file and of memcached; the HTML report.  Each (place, secret)
pair is one case of the tally.

The second half checks where credentials go: only to their own host and
port, not along redirects, not to another host's pages, not to a token realm
on another scheme, never over plain HTTP to a non-loopback host, never to a
proxy for a loopback host (a proxy's own password goes to it alone, and
is looked for like the others); credential helpers from PATH only; TLS
verified by default.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sqlite3
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pandas as pd
import pytest
import requests
import urllib3

import regdata
from regdata import Credential, Credentials, Registry, RegistryError
from regdata.client.remote import RemoteFactory
from regdata.transport import HTTPTransport, Request
from tests.support.builder import Builder, ImageSpec
from tests.support.proxy import Action, RecordingServer, Seen, start_proxy
from tests.support.registry_server import (
    MemcachedServer,
    RegistryServer,
    start_memcached,
    start_registry,
)
from tests.support.tinyproxy import start_tinyproxy
from tests.support.token_server import AclRule, Grant, start_token_server
from tests.test_cache_backends import memcached_dump

from .support import CLEAN, LEAKED, RawProxy, Tally

BASIC_PASSWORD = "BasicPW-planted-7c1e"
TOKEN_PASSWORD = "TokenPW-planted-93ab"
WRONG_PASSWORD = "WrongPW-planted-51d0"
PROXY_PASSWORD = "ProxyPW-planted-2f8a"
CORP_NAME = "registry.corp.test"  # resolved by tinyproxy alone
HELPERS = Path(__file__).resolve().parent.parent / "helpers"
ACL = (
    AclRule(account="alice", name="private/*", actions=("pull",)),
    AclRule(account="pusher", name="*", actions=("*",)),
    AclRule(account="alice", name="catalog", actions=("*",), type="registry"),
)


# --------------------------------------------------------------------------- the bed


@dataclass
class Planted:
    """What the run wrote, and the secrets to look for in it."""

    secrets: dict[str, str] = field(default_factory=dict)
    bearer: set[str] = field(default_factory=set)  # issued during the run, caught by the proxy
    logs: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    objects: list[Any] = field(default_factory=list)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    sqlite: list[Path] = field(default_factory=list)
    memcached: MemcachedServer | None = None
    report: Path | None = None
    config: Path | None = None  # the docker config the password came from: a positive control

    def all_secrets(self) -> dict[str, list[str]]:
        """Each kind of secret and its values (the bearer tokens are many, one kind)."""
        out = {name: [value] for name, value in self.secrets.items()}
        out["bearer tokens issued in the run"] = sorted(self.bearer)
        return out


def forms(secret: str) -> list[str]:
    """The ways a secret could be written: raw, base64, as Basic auth, URL-encoded; a JWT's signature."""
    out = {
        secret,
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"alice:{secret}".encode()).decode(),
        quote(secret, safe=""),
        quote_plus(secret),
    }
    if secret.count(".") == 2:  # a JWT: its signature is what makes it a credential
        out.add(secret.rsplit(".", 1)[1])
    return sorted(out)


class _Records(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(self.format(record) + repr(record.args))


def _attempt(planted: Planted, call: Any) -> Any:
    try:
        return call()
    except Exception as exc:
        planted.errors.append(exc)
        return None


def _read_all(
    planted: Planted, reg: Registry, repo: str, label: str, images: dict[str, pd.DataFrame]
) -> None:
    """Every way the API reads a repository, each result or error kept."""
    frame = _attempt(planted, lambda: reg.get_repository(repo))
    if frame is not None:
        images[repo] = frame
        planted.frames[f"images of {repo} ({label})"] = frame
    for what, call in (
        ("image", lambda: reg.get_image(f"{repo}:1")),
        ("history", lambda: reg.history(f"{repo}:1")),
        ("tags", lambda: reg.tags(repo)),
        ("missing", lambda: reg.get_image(f"{repo}:missing")),
    ):
        result = _attempt(planted, call)
        if isinstance(result, pd.DataFrame):
            planted.frames[f"{what} of {repo} ({label})"] = result
        elif result is not None:
            planted.objects.append(result)


def _report_exists() -> bool:
    try:
        import regdata.report  # noqa: F401
    except ImportError:
        return False
    return True


def _compose(path: Path, images: list[str]) -> Path:
    services = {f"s{i}": {"image": image} for i, image in enumerate(images)}
    path.write_text(json.dumps({"services": services}))
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planted]:
    tmp = tmp_path_factory.mktemp("secrets")
    planted = Planted()
    records = _Records(planted.logs)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    closers: list[Any] = []
    try:
        _plant(planted, tmp, closers)
    finally:
        root.removeHandler(records)
        root.setLevel(old_level)
    yield planted
    for close in reversed(closers):
        close()


def _plant(planted: Planted, tmp: Path, closers: list[Any]) -> None:
    # Basic auth.
    basic = start_registry("htpasswd", users={"alice": BASIC_PASSWORD})
    closers.append(basic.close)
    Builder(basic.url, "alice", BASIC_PASSWORD).push_image(
        "team/app", ImageSpec(labels={"x": "1"}), tags=["1", "2"]
    )
    # Token auth, its token server behind a proxy that catches every token it issues.
    token_server = start_token_server({"alice": TOKEN_PASSWORD, "pusher": "pusher-pw"}, ACL)
    closers.append(token_server.stop)
    token_registry = start_registry("token", token=token_server.registry_config())
    closers.append(token_registry.close)
    builder = Builder(token_registry.url, "pusher", "pusher-pw")
    builder.push_image("private/app", ImageSpec(labels={"y": "2"}), tags=["1"])
    builder.push_multiarch("private/multi", ["linux/amd64", "linux/arm64/v8"], tags=["1"])
    token_proxy = RawProxy(f"127.0.0.1:{token_server.port}")
    closers.append(token_proxy.stop)

    def catch(seen: Seen) -> Action:
        def keep(status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
            if status == 200:
                doc = json.loads(body)
                planted.bearer.update(
                    str(doc[k]) for k in ("token", "access_token", "refresh_token") if k in doc
                )
            return status, headers, body

        return Action(transform=keep)

    token_proxy.add(catch)
    realm = f"{token_proxy.url}/token"

    def via_token_proxy(seen: Seen) -> Action:
        def rewrite(status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
            return (
                status,
                {
                    k: v.replace(token_server.realm, realm) if k.lower() == "www-authenticate" else v
                    for k, v in headers.items()
                },
                body,
            )

        return Action(transform=rewrite)

    # Three doors to the token registry: one per kind of credential.
    doors = []
    for _ in range(3):
        door = RawProxy(token_registry.host)
        door.add(via_token_proxy)
        closers.append(door.stop)
        doors.append(door)
    answer = requests.post(
        token_server.realm,
        data={
            "grant_type": "password",
            "username": "alice",
            "password": TOKEN_PASSWORD,
            "service": token_server.service,
            "client_id": "test",
            "access_type": "offline",
        },
        timeout=10,
    ).json()
    identity_token = answer["refresh_token"]
    registry_token = token_server.issue(
        "alice",
        [Grant("repository", "private/app", ("pull",)), Grant("repository", "private/multi", ("pull",))],
    )
    planted.secrets = {
        "Basic password": BASIC_PASSWORD,
        "token server password": TOKEN_PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "identity token": identity_token,
        "registry token": registry_token,
    }
    memcached = start_memcached()
    closers.append(memcached.close)
    planted.memcached = memcached

    # The Basic registry's password comes from a docker config file, as a user's would.
    config = planted.config = tmp / "config.json"
    config.write_text(
        json.dumps(
            {"auths": {basic.host: {"auth": base64.b64encode(f"alice:{BASIC_PASSWORD}".encode()).decode()}}}
        )
    )
    credentials = Credentials.from_docker_config(config).merge(
        Credentials.from_mapping(
            {
                doors[0].host: Credential(identity_token=identity_token),
                doors[1].host: ("alice", TOKEN_PASSWORD),
                doors[2].host: Credential(registry_token=registry_token),
            }
        )
    )
    planted.sqlite.append(tmp / "cache.sqlite")
    caches = [f"sqlite://{tmp}/cache.sqlite", f"memcached://{memcached.host}"]
    images: dict[str, pd.DataFrame] = {}
    for number, cache in enumerate(caches):
        reg = Registry(credentials=credentials, cache=cache)
        planted.objects += [reg, reg.factory, reg.cache, credentials, reg.factory.http, reg.factory.base]
        repos = [f"{basic.host}/team/app"] + [
            f"{d.host}/private/{r}" for d in doors for r in ("app", "multi")
        ]
        for repo in repos:
            _read_all(planted, reg, repo, f"scan {number}", images)
        _attempt(planted, lambda reg=reg: reg.catalog(basic.host))
        _attempt(planted, lambda reg=reg: reg.catalog(doors[1].host))
        _attempt(planted, lambda reg=reg: reg.get_repository(f"{doors[1].host}/secret/none"))  # no access
        for host in [basic.host] + [d.host for d in doors]:
            remote = reg.factory.remote(host)
            planted.objects += [
                remote,
                remote.transport,
                remote.transport.inner,  # type: ignore[attr-defined]
                remote.credential,
            ]
        planted.frames[f"requests (scan {number})"] = reg.requests
        planted.frames[f"summary (scan {number})"] = reg.summary()
        planted.frames[f"limiter log (scan {number})"] = reg.limiter_log
        planted.objects.append(reg.rate_limits)
        reg.close()
    # Errors on purpose: a wrong password, a token server failing, a token that breaks a header.
    wrong = Credentials.from_mapping(
        {basic.host: ("alice", WRONG_PASSWORD), doors[1].host: ("alice", WRONG_PASSWORD)}
    )
    with Registry(credentials=wrong, cache=None) as reg:
        _attempt(planted, lambda: reg.get_repository(f"{basic.host}/team/app"))
        _attempt(planted, lambda: reg.get_repository(f"{doors[1].host}/private/app"))
        planted.frames["requests with a wrong password"] = reg.requests
    token_server.fail_next(500, count=1)
    with Registry(credentials=credentials, cache=None) as reg:
        _attempt(planted, lambda: reg.get_repository(f"{doors[1].host}/private/app"))

    def crlf(seen: Seen) -> Action:
        def bad(status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
            doc = json.loads(body)
            for key in ("token", "access_token"):
                if key in doc:
                    planted.bearer.add(doc[key])
                    doc[key] += "\r\nX: y"
            return status, headers, json.dumps(doc).encode()

        return Action(transform=bad)

    token_proxy.faults.insert(0, crlf)
    with Registry(credentials=credentials, cache=None) as reg:
        _attempt(planted, lambda: reg.get_repository(f"{doors[0].host}/private/app"))
        _attempt(planted, lambda: reg.get_repository(f"{doors[1].host}/private/app"))
        planted.frames["requests with a broken token"] = reg.requests
    token_proxy.faults.remove(crlf)
    _plant_proxy(planted, basic, closers, images)
    assert planted.errors and planted.bearer and images
    # The HTML report of a fleet of these images.
    try:
        from regdata.report import judge_fleet, read_fleets, scan_fleet, write_report
    except ImportError:  # not written yet
        return
    fleet = read_fleets([_compose(tmp / "compose.yaml", [f"{repo}:1" for repo in images])])
    with Registry(credentials=credentials, cache=None) as reg:
        scan = scan_fleet(reg, fleet)
        planted.report = write_report(
            judge_fleet(scan),
            scan.images,
            reg.requests,
            tmp / "report.html",
            errors=scan.errors,
            cache=reg.cache,
        )


def _plant_proxy(
    planted: Planted, basic: RegistryServer, closers: list[Any], images: dict[str, pd.DataFrame]
) -> None:
    """A proxy password in the proxy URL: read through tinyproxy, then refused with a wrong one."""
    proxy = start_tinyproxy([CORP_NAME], user="alice", password=PROXY_PASSWORD)
    closers.append(proxy.stop)
    planted.secrets["proxy password"] = PROXY_PASSWORD
    host = f"{CORP_NAME}:{basic.port}"
    credentials = Credentials.from_mapping({host: ("alice", BASIC_PASSWORD)})
    for label, url in (
        ("through a proxy", proxy.url),
        ("a wrong proxy password", f"http://alice:{PROXY_PASSWORD}-wrong@{proxy.host}"),
    ):
        proxies = regdata.Proxies(http=url, https=url)
        with Registry(
            credentials=credentials,
            cache=None,
            insecure=[host],
            proxies=proxies,
            retry=regdata.RetryPolicy(attempts=1),
        ) as reg:
            planted.objects += [proxies, reg, reg.factory, reg.factory.http]
            _read_all(planted, reg, f"{host}/team/app", label, images)
            planted.frames[f"requests ({label})"] = reg.requests
    assert (planted.frames["requests (through a proxy)"]["proxy"] == proxy.host).all()


# --------------------------------------------------------------------------- looking for them


def _texts_of_exception(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    chained: BaseException | None = exc
    while chained is not None and id(chained) not in seen:  # what a tool ignoring `from None` would show
        seen.add(id(chained))
        parts += [str(chained), repr(chained)]
        chained = chained.__cause__ or chained.__context__
    return "\n".join(parts)


def _places(planted: Planted) -> dict[str, bytes]:
    places: dict[str, bytes] = {
        "log records at DEBUG, every logger": "\n".join(planted.logs).encode(),
        "exception messages, reprs and tracebacks": "\n".join(
            _texts_of_exception(e) for e in planted.errors
        ).encode(),
        "reprs of public objects": "\n".join(repr(o) + str(o) for o in planted.objects).encode(),
    }
    for name, frame in planted.frames.items():
        places[f"frame: {name}"] = (frame.to_csv() + repr(frame.to_dict("records"))).encode()
    for path in planted.sqlite:
        with sqlite3.connect(path) as con:
            rows = con.execute("SELECT key, value FROM regdata").fetchall()
        assert rows, "the SQLite cache holds entries"
        places[f"SQLite cache {path.name}: keys and values"] = b"\n".join(
            str(k).encode() + b" " + bytes(v) for k, v in rows
        )
    if planted.memcached is not None:
        dump = memcached_dump(planted.memcached.address)
        assert dump, "memcached holds entries"
        places["memcached: keys and values"] = b"\n".join(k.encode() + b" " + v for k, v in dump.items())
    if planted.report is not None:
        places["the HTML report"] = planted.report.read_bytes()
    return places


def test_no_secret_anywhere_regdata_writes(planted: Planted, tally: Tally) -> None:
    batch = tally.batch("secret", "a planted secret looked for where regdata writes")
    secrets = planted.all_secrets()
    assert len(planted.bearer) >= 3, "the token server issued tokens, caught on their way"
    for place, data in _places(planted).items():
        for name, values in secrets.items():
            hits = [form for secret in values for form in forms(secret) if form.encode() in data]
            if hits:
                at = data.find(hits[0].encode())
                context = data[max(0, at - 80) : at + 20].decode("utf-8", "replace")
                batch.record(f"{place}: {name}", LEAKED, f"found {hits[0][:12]}... in ...{context!r}")
            else:
                batch.record(f"{place}: {name}", CLEAN)
    batch.assert_clean()
    # Looked in earnest: the places are full of what a leak would sit next to, and the
    # search finds a secret where one is (the config file the password was read from).
    logs = "\n".join(planted.logs)
    assert "urllib3" in logs and "regdata" in logs and "Authorization" not in logs
    assert any(isinstance(e, RegistryError) for e in planted.errors)
    assert any(
        isinstance(e, regdata.MalformedContent) and "no usable token" in str(e) for e in planted.errors
    )
    assert planted.config is not None and any(
        f.encode() in planted.config.read_bytes() for f in forms(BASIC_PASSWORD)
    )
    assert planted.report is not None or not _report_exists()


# --------------------------------------------------------------------------- where credentials go


@pytest.fixture(scope="module")
def basic_registry() -> Iterator[tuple[RegistryServer, Builder]]:
    server = start_registry("htpasswd", users={"alice": BASIC_PASSWORD})
    builder = Builder(server.url, "alice", BASIC_PASSWORD)
    pushed = builder.push_image("team/app", ImageSpec(), tags=["1"])
    assert pushed.config is not None
    yield server, builder
    builder.close()
    server.close()


def _credentials(host: str) -> Credentials:
    return Credentials.from_mapping({host: ("alice", BASIC_PASSWORD)})


def _saw_credentials(seen: list[Seen]) -> list[Seen]:
    return [s for s in seen if s.authorization]


def test_credentials_not_sent_along_redirects(
    basic_registry: tuple[RegistryServer, Builder], tally: Tally
) -> None:
    batch = tally.batch("secret", "credentials sent only to their own host and port")
    server, _ = basic_registry
    storage = RecordingServer()
    try:
        with start_proxy(server.host) as proxy:
            port = proxy.host.rsplit(":", 1)[1]
            targets = {
                "another port of 127.0.0.1": f"{storage.url}/blob?sig=1",
                "the same port, named localhost": f"http://localhost:{port}/elsewhere",
            }
            for name, target in targets.items():
                proxy.clear()
                storage.seen.clear()
                proxy.add(
                    lambda s, target=target: (
                        Action(status=307, headers={"Location": target})
                        if "/blobs/" in s.path or "/manifests/" in s.path
                        else None
                    )
                )
                with Registry(credentials=_credentials(proxy.host), cache=None) as reg:
                    reg.get_repository(f"{proxy.host}/team/app")
                own = [s for s in proxy.seen if (s.host_header or "") == proxy.host]
                away = [s for s in proxy.seen if (s.host_header or "") != proxy.host] + storage.seen
                assert away, f"{name}: the redirect was followed"
                assert _saw_credentials(own), "the registry itself got them"
                batch.record(
                    f"redirect to {name}",
                    LEAKED if _saw_credentials(away) else CLEAN,
                    f"{len(_saw_credentials(away))} of {len(away)} requests away carried them",
                )
    finally:
        storage.stop()
    batch.assert_clean()


def test_credentials_not_sent_to_other_pages_or_realms(
    basic_registry: tuple[RegistryServer, Builder], tally: Tally
) -> None:
    batch = tally.batch("secret", "credentials sent only to their own host and port")
    server, _ = basic_registry
    elsewhere = RecordingServer()
    try:
        with start_proxy(server.host) as proxy:
            other = elsewhere.url.split("://", 1)[1]
            # A Link to another host's page: pagination stops, nothing is sent there.
            proxy.add(
                lambda s: (
                    Action(
                        status=200,
                        headers={
                            "Content-Type": "application/json",
                            "Link": f'<{elsewhere.url}/v2/team/app/tags/list?n=1000&last=1>; rel="next"',
                        },
                        body=b'{"name":"team/app","tags":["1"]}',
                    )
                    if "/tags/list" in s.path
                    else None
                )
            )
            with (
                Registry(credentials=_credentials(proxy.host), cache=None) as reg,
                pytest.raises(regdata.MalformedContent, match="another host"),
            ):
                reg.get_repository(f"{proxy.host}/team/app")
            batch.record("a Link to another host", LEAKED if elsewhere.seen else CLEAN)
            # A token realm on another scheme (the recording server listens there too).
            for realm in (
                f"ftp://{other}/token",
                f"gopher://{other}/token",
                f"file://{other}/token",
                "http://203.0.113.9/token",
            ):
                proxy.clear()
                proxy.add(
                    lambda s, realm=realm: Action(
                        status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="x"'}
                    )
                )
                with (
                    Registry(credentials=_credentials(proxy.host), cache=None) as reg,
                    pytest.raises(regdata.InsecureRequest),
                ):
                    reg.get_repository(f"{proxy.host}/team/app")
                batch.record(
                    f"a token realm {realm.split(':', 1)[0]}:// elsewhere",
                    LEAKED if elsewhere.seen else CLEAN,
                )
    finally:
        elsewhere.stop()
    batch.assert_clean()


def test_never_plain_http_to_a_host_not_named_insecure(monkeypatch: pytest.MonkeyPatch, tally: Tally) -> None:
    batch = tally.batch("secret", "no plain HTTP to a host not named insecure")
    sent: list[str] = []
    real = urllib3.HTTPConnectionPool.urlopen  # the HTTPS pool's too: where every request leaves

    def record(self: urllib3.HTTPConnectionPool, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(f"{self.scheme}://{self.host}:{self.port}{url}")
        return real(self, method, url, *args, **kwargs)

    monkeypatch.setattr(urllib3.HTTPConnectionPool, "urlopen", record)
    # The spy sees what does leave: a loopback request (to a port nobody listens on) is recorded.
    with pytest.raises(regdata.TransportError):
        HTTPTransport().send(Request("GET", "http://127.0.0.1:1/v2/", "ping"))
    assert sent == ["http://127.0.0.1:1/v2/"]
    sent.clear()
    credentials = Credentials.from_mapping(
        {"203.0.113.9": ("alice", BASIC_PASSWORD), "registry.example": ("alice", BASIC_PASSWORD)}
    )
    factory = RemoteFactory(credentials=credentials, cache=None)
    for host in ("203.0.113.9", "registry.example"):
        remote = factory.remote(host)
        for url in (f"http://{host}/v2/", f"http://{host}:80/v2/team/app/tags/list"):
            request = Request("GET", url, "tags", headers={"Authorization": "Basic x"})
            with pytest.raises(regdata.InsecureRequest, match="plain HTTP"):
                remote.transport.send(request)
            batch.record(f"plain HTTP to {host}", LEAKED if sent else CLEAN, f"sent: {sent}")
    # Named insecure, it would be allowed (and is not tried here: nothing leaves this machine).
    assert HTTPTransport(insecure_hosts=frozenset({"203.0.113.9"})).allows_plain_http("203.0.113.9")
    assert not HTTPTransport().allows_plain_http("203.0.113.9")
    batch.assert_clean()


def test_a_redirect_to_plain_http_elsewhere_is_refused(
    basic_registry: tuple[RegistryServer, Builder], tally: Tally
) -> None:
    batch = tally.batch("secret", "no plain HTTP to a host not named insecure")
    server, _ = basic_registry
    with start_proxy(server.host) as proxy:
        proxy.add(
            lambda s: (
                Action(status=302, headers={"Location": "http://203.0.113.9/blob"})
                if "/blobs/" in s.path
                else None
            )
        )
        with Registry(credentials=_credentials(proxy.host), cache=None) as reg:
            frame = reg.get_repository(f"{proxy.host}/team/app")
    assert frame["error"].str.startswith("InsecureRequest").all()
    batch.record("a blob redirected to plain HTTP on another host", CLEAN, frame["error"].iloc[0])
    batch.assert_clean()


def test_environment_proxies_and_netrc_are_not_used(
    basic_registry: tuple[RegistryServer, Builder],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tally: Tally,
) -> None:
    batch = tally.batch("secret", "credentials sent only to their own host and port")
    server, _ = basic_registry
    trap = RecordingServer()
    try:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, trap.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        netrc = tmp_path / ".netrc"
        netrc.write_text(f"machine 127.0.0.1 login mallory password {WRONG_PASSWORD}\n")
        monkeypatch.setenv("NETRC", str(netrc))
        with Registry(credentials=_credentials(server.host), cache=None) as reg:
            frame = reg.get_repository(f"{server.host}/team/app")
        assert frame["error"].isna().all()
        batch.record("an HTTP proxy named in the environment", LEAKED if trap.seen else CLEAN)
        with Registry(credentials=Credentials.none(), cache=None) as reg, pytest.raises(regdata.Unauthorized):
            reg.get_repository(f"{server.host}/team/app")  # ~/.netrc's login is not picked up
        batch.record("a .netrc login for the host", CLEAN)
    finally:
        trap.stop()
    batch.assert_clean()


def test_credential_helpers_run_from_path_only_and_time_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tally: Tally
) -> None:
    batch = tally.batch("secret", "credential helpers: validated names, PATH only, a timeout")
    log = tmp_path / "helper.log"
    monkeypatch.setenv("REGDATA_TEST_HELPER_LOG", str(log))
    monkeypatch.delenv("REGDATA_TEST_HELPER_MODE", raising=False)
    config = tmp_path / "config.json"
    # A name with a path in it is refused before anything runs.
    for name in (str(HELPERS / "docker-credential-regdatatest"), "../helpers/regdatatest", "regdatatest;id"):
        config.write_text(json.dumps({"credHelpers": {"ghcr.io": name}}))
        with pytest.raises(regdata.CredentialsError, match="invalid credential helper name"):
            Credentials.from_docker_config(config, strict=True).for_host("ghcr.io")
        batch.record(f"helper named {name[-30:]!r}", LEAKED if log.exists() else CLEAN)
    # Found through a relative PATH entry: not run.
    monkeypatch.chdir(HELPERS.parent)
    monkeypatch.setenv("PATH", f"helpers{os.pathsep}./helpers{os.pathsep}/usr/bin{os.pathsep}/bin")
    config.write_text(json.dumps({"credHelpers": {"ghcr.io": "regdatatest"}}))
    with pytest.raises(regdata.CredentialsError, match="not found on PATH"):
        Credentials.from_docker_config(config).for_host("ghcr.io")
    batch.record("a helper only on a relative PATH entry", LEAKED if log.exists() else CLEAN)
    # On PATH, hanging: killed at the timeout.
    monkeypatch.setenv("PATH", f"{HELPERS}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.setenv("REGDATA_TEST_HELPER_MODE", "hang")
    started = time.monotonic()
    with pytest.raises(regdata.CredentialsError, match="timed out"):
        Credentials.from_docker_config(config, helper_timeout=0.5).for_host("ghcr.io")
    assert time.monotonic() - started < 3
    batch.record("a helper that hangs", CLEAN, f"{time.monotonic() - started:.1f}s")
    batch.assert_clean()


def test_tls_is_verified_by_default(tls_registry: RegistryServer, tls_builder: Builder, tally: Tally) -> None:
    batch = tally.batch("secret", "TLS verified by default")
    tls_builder.push_image("reliability/tls", ImageSpec(), tags=["1"])
    repo = f"{tls_registry.host}/reliability/tls"
    credentials = _credentials(tls_registry.host)
    with (
        Registry(credentials=credentials, cache=None) as reg,
        pytest.raises(regdata.TransportError, match="TLS failure") as info,
    ):
        reg.get_repository(repo)
    assert not info.value.temporary
    # The handshake failed before any request: no row of the log shows an HTTP status.
    assert reg.requests["status"].isna().all()
    batch.record("a self-signed registry, default settings", CLEAN, str(info.value)[:100])
    with Registry(credentials=credentials, cache=None, verify=str(tls_registry.ca_path)) as reg:
        frame = reg.get_repository(repo)
    assert frame["error"].isna().all() and frame["tag"].tolist() == ["1"]
    batch.record("the same registry with its CA given", CLEAN)
    batch.assert_clean()

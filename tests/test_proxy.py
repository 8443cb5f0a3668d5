"""Proxies as Go reads them, through a real tinyproxy, to registries reached by name.

``registry.corp.test`` resolves nowhere on this machine but inside tinyproxy
(tests/support/tinyproxy.py): a request that did not go through the proxy
cannot reach the registry.  Tests that go direct on purpose (``NO_PROXY``)
resolve the name in this process with a resolver hook.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import regdata
from regdata.transport.proxy import Proxies
from tests.support.builder import Builder, ImageSpec
from tests.support.registry_server import RegistryServer, start_registry
from tests.support.tinyproxy import TinyProxy, start_tinyproxy

NAME = "registry.corp.test"
PROXY_USER, PROXY_PASSWORD = "corp-user", "Pr0xy-S3cret-p4ss"
_ENV = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy", "ALL_PROXY")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def tinyproxy() -> Iterator[TinyProxy]:
    proxy = start_tinyproxy([NAME])
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def auth_proxy() -> Iterator[TinyProxy]:
    proxy = start_tinyproxy([NAME], user=PROXY_USER, password=PROXY_PASSWORD)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def corp_tls() -> Iterator[RegistryServer]:
    server = start_registry(tls=True, tls_hosts=(NAME, "127.0.0.1"))
    b = Builder(server.url, verify=server.verify)
    b.push_image("corp/app", ImageSpec(), tags=["1", "2"])
    b.close()
    yield server
    server.close()


@pytest.fixture
def resolve_corp(monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolver hook: registry.corp.test is 127.0.0.1 in this process (for direct requests)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == NAME else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _reg(**kwargs: Any) -> regdata.Registry:
    return regdata.Registry(cache=None, credentials=regdata.Credentials.none(), **kwargs)


# --------------------------------------------------------------------------- which proxy, if any


def test_environment_is_read_as_go_reads_it() -> None:
    env = {
        "HTTPS_PROXY": "proxy.corp:3128",
        "https_proxy": "http://lower:1",
        "http_proxy": "http://plain:8080",
    }
    proxies = Proxies.from_environment(env)
    assert (
        proxies.proxy_for("https://ghcr.io/v2/") == "http://proxy.corp:3128"
    )  # uppercase wins, http:// added
    assert proxies.proxy_for("http://registry.lan:5000/v2/") == "http://plain:8080"
    assert Proxies.from_environment({}).proxy_for("https://ghcr.io/v2/") is None


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost:5000/v2/",
        "https://127.0.0.1/v2/",
        "https://127.8.9.1/v2/",
        "https://[::1]:5000/v2/",
    ],
)
def test_loopback_is_never_proxied(url: str) -> None:
    assert Proxies(https="http://p:3128", http="http://p:3128").proxy_for(url) is None


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("*", "https://ghcr.io/v2/", True),
        ("ghcr.io", "https://ghcr.io/v2/", True),
        ("ghcr.io", "https://pkg.ghcr.io/v2/", True),  # a name covers the names under it
        ("ghcr.io", "https://notghcr.io/v2/", False),
        (".corp", "https://registry.corp/v2/", True),  # a suffix ...
        (".corp", "https://corp/v2/", False),  # ... not the name itself
        ("*.corp", "https://a.b.corp/v2/", True),
        ("corp", "https://corp/v2/", True),
        ("registry.corp:5000", "https://registry.corp:5000/v2/", True),
        ("registry.corp:5000", "https://registry.corp/v2/", False),  # another port
        ("10.0.0.0/8", "https://10.1.2.3:5000/v2/", True),
        ("10.0.0.0/8", "https://11.1.2.3/v2/", False),
        ("fd00::/8", "https://[fd12::1]/v2/", True),
        ("192.168.1.5", "https://192.168.1.5:443/v2/", True),
        (" GHCR.IO , quay.io", "https://quay.io/v2/", True),  # spaces and case
        ("", "https://ghcr.io/v2/", False),
    ],
)
def test_no_proxy_entries(no_proxy: str, url: str, direct: bool) -> None:
    proxies = Proxies(https="http://proxy:3128", no_proxy=no_proxy)
    assert (proxies.proxy_for(url) is None) is direct


def test_the_proxy_credentials_never_show() -> None:
    proxies = Proxies(https=f"http://{PROXY_USER}:{PROXY_PASSWORD}@proxy.corp:3128")
    for text in (repr(proxies), str(proxies), repr(_reg(proxies=proxies).factory)):
        assert PROXY_PASSWORD not in text
    assert "proxy.corp:3128" in repr(proxies)
    with pytest.raises(ValueError, match="unknown proxies key"):
        Proxies.from_mapping({"ftp": "http://p"})


# --------------------------------------------------------------------------- through tinyproxy


def test_every_request_of_a_scan_goes_through_the_proxy(
    tinyproxy: TinyProxy,
    registry: RegistryServer,
    builder: Builder,
    repo_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    builder.push_image(repo_name, ImageSpec(), tags=["1", "2", "3"])
    host = f"{NAME}:{registry.port}"
    with pytest.raises(OSError):
        socket.getaddrinfo(NAME, registry.port)  # nothing could reach it but through the proxy
    monkeypatch.setenv("HTTP_PROXY", tinyproxy.url)
    monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url)
    tinyproxy.clear()
    reg = _reg(insecure=[host])  # plain HTTP, by name: Docker's insecure registry
    df = reg.get_repository(f"{host}/{repo_name}")
    assert sorted(df["tag"]) == ["1", "2", "3"] and df["error"].isna().all()
    log = reg.requests
    assert (log["proxy"] == tinyproxy.host).all()
    seen = tinyproxy.requests()
    forwarded = [target for method, target in seen if method != "CONNECT"]
    # Each HTTP request of the log is one forwarded request; the TLS probe is the CONNECT.
    assert len(forwarded) == len(log)
    assert all(t.startswith(f"http://{host}/v2/") for t in forwarded)
    assert [t for m, t in seen if m == "CONNECT"] == [host]


def test_https_goes_through_a_connect_tunnel(
    tinyproxy: TinyProxy, corp_tls: RegistryServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = f"{NAME}:{corp_tls.port}"
    monkeypatch.setenv("https_proxy", tinyproxy.url)  # lowercase works too
    tinyproxy.clear()
    reg = _reg(verify=str(corp_tls.ca_path))
    df = reg.get_repository(f"{host}/corp/app")
    assert sorted(df["tag"]) == ["1", "2"] and df["error"].isna().all()
    assert (reg.requests["proxy"] == tinyproxy.host).all()
    seen = tinyproxy.requests()
    assert seen and all(m == "CONNECT" and t == host for m, t in seen)


def test_no_proxy_goes_direct(
    tinyproxy: TinyProxy, corp_tls: RegistryServer, resolve_corp: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = f"{NAME}:{corp_tls.port}"
    monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url)
    for no_proxy in (NAME, ".corp.test", "corp.test", host, "*"):
        monkeypatch.setenv("NO_PROXY", no_proxy)
        tinyproxy.clear()
        reg = _reg(verify=str(corp_tls.ca_path))
        assert sorted(reg.tags(f"{host}/corp/app")) == ["1", "2"]
        assert reg.requests["proxy"].isna().all()
        assert tinyproxy.requests() == [], no_proxy
    monkeypatch.setenv("NO_PROXY", f"{NAME}:1")  # another port: proxied
    tinyproxy.clear()
    assert sorted(_reg(verify=str(corp_tls.ca_path)).tags(f"{host}/corp/app")) == ["1", "2"]
    assert tinyproxy.requests() == [("CONNECT", host)]


def test_proxies_given_in_code_replace_the_environment(
    tinyproxy: TinyProxy, corp_tls: RegistryServer, resolve_corp: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = f"{NAME}:{corp_tls.port}"
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens there
    tinyproxy.clear()
    assert sorted(_reg(verify=str(corp_tls.ca_path), proxies={}).tags(f"{host}/corp/app")) == ["1", "2"]
    reg = _reg(verify=str(corp_tls.ca_path), proxies={"https": tinyproxy.url})
    assert sorted(reg.tags(f"{host}/corp/app")) == ["1", "2"]
    assert tinyproxy.requests() == [("CONNECT", host)]
    with pytest.raises(regdata.TransportError, match=r"proxy 127\.0\.0\.1:9 failed"):
        _reg(verify=str(corp_tls.ca_path), retry=regdata.RetryPolicy(attempts=1)).tags(f"{host}/corp/app")


def test_proxy_credentials_go_to_the_proxy_and_show_nowhere(
    auth_proxy: TinyProxy,
    corp_tls: RegistryServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = f"{NAME}:{corp_tls.port}"
    monkeypatch.setenv("HTTPS_PROXY", auth_proxy.url)
    with caplog.at_level(logging.DEBUG):
        reg = _reg(verify=str(corp_tls.ca_path))
        df = reg.get_repository(f"{host}/corp/app")
        assert df["error"].isna().all() and len(df) == 2
        monkeypatch.setenv("HTTPS_PROXY", f"http://{PROXY_USER}:wrong-{PROXY_PASSWORD}@{auth_proxy.host}")
        refused = _reg(verify=str(corp_tls.ca_path), retry=regdata.RetryPolicy(attempts=1))
        with pytest.raises(regdata.TransportError) as info:
            refused.tags(f"{host}/corp/app")
    # tinyproxy refuses with a 401 where the RFC says 407: either is the proxy's refusal.
    assert "Tunnel connection failed: 401" in str(info.value) and auth_proxy.host in str(info.value)
    outputs = [
        repr(reg),
        repr(reg.factory),
        repr(reg.factory.http),
        df.to_csv(),
        reg.requests.to_csv(),
        refused.requests.to_csv(),
        str(info.value),
        repr(info.value),
        caplog.text,
    ]
    for text in outputs:
        assert PROXY_PASSWORD not in text and f"{PROXY_USER}:" not in text


def test_cli_reads_the_proxy_from_the_environment(
    tinyproxy: TinyProxy,
    corp_tls: RegistryServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from regdata.cli import main

    host = f"{NAME}:{corp_tls.port}"
    monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url)
    tinyproxy.clear()
    assert (
        main(
            [
                "tags",
                f"{host}/corp/app",
                "--cache",
                "none",
                "--ca-file",
                str(corp_tls.ca_path),
                "--format",
                "csv",
            ]
        )
        == 0
    )
    assert sorted(capsys.readouterr().out.split()) == ["1", "2", "tag"]
    assert tinyproxy.requests() == [("CONNECT", host)]

"""One host key: ghcr.io and ghcr.io:443 are one host to every layer that keeps state per host."""

from __future__ import annotations

import pytest

from regdata.credentials import Credential
from regdata.transport.auth import AuthTransport
from regdata.transport.base import host_key
from regdata.transport.limits import Limiters, Limits
from regdata.transport.retry import RetryTransport


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("ghcr.io", "ghcr.io"),
        ("GHCR.io:443", "ghcr.io"),
        ("https://ghcr.io:443/v2/library/x/tags/list?n=10", "ghcr.io"),
        ("https://user:secret@ghcr.io/v2/", "ghcr.io"),
        ("https://ghcr.io:8443/v2/", "ghcr.io:8443"),
        ("http://localhost:80/v2/", "localhost"),
        ("https://localhost:80/v2/", "localhost:80"),
        ("http://localhost:443/v2/", "localhost:443"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("http://[::1]:5000/v2/", "[::1]:5000"),
        ("https://[::1]:443/v2/", "[::1]"),
        ("[::1]", "[::1]"),
    ],
)
def test_host_key(text: str, key: str) -> None:
    assert host_key(text) == key


def test_a_bare_host_takes_the_given_scheme() -> None:
    assert host_key("localhost:80", "http") == "localhost" and host_key("localhost:80") == "localhost:80"


def test_the_key_holds_no_secret() -> None:
    assert "secret" not in host_key("https://user:secret@ghcr.io/v2/?token=secret")
    assert "secret" not in host_key("https://user:secret@ghcr.io:99999/")  # not a URL: still no userinfo


def test_ghcr_io_and_ghcr_io_443_share_one_limiter_and_one_backoff() -> None:
    limiters = Limiters(Limits(), per_host={"GHCR.io:443": Limits(concurrency=3)})
    one = limiters.for_url("https://ghcr.io/v2/a/tags/list")
    assert limiters.for_url("https://ghcr.io:443/v2/b/manifests/1") is one
    assert limiters.for_host("ghcr.io:443") is one and limiters.for_host("GHCR.IO") is one
    assert one.concurrency == 3 and limiters.concurrency("ghcr.io:443") == 3
    assert list(limiters.hosts()) == ["ghcr.io"]

    retry = RetryTransport(inner=None)  # type: ignore[arg-type]  # only its per-host state is used
    state = retry.host("https://ghcr.io/v2/")
    assert retry.host("https://ghcr.io:443/v2/x") is state and retry.host("https://GHCR.io/") is state
    assert retry.host("https://ghcr.io:8443/v2/") is not state


def test_auth_knows_its_host_however_written() -> None:
    auth = AuthTransport(None, "ghcr.io", Credential.anonymous(), None)  # type: ignore[arg-type]
    for url in ("https://ghcr.io/v2/", "https://ghcr.io:443/v2/", "https://GHCR.io/v2/"):
        assert auth._same_host(url), url
    for url in ("https://ghcr.io:8443/v2/", "https://ghcr.io.evil.example/v2/", "http://ghcr.io:443/v2/"):
        assert not auth._same_host(url), url

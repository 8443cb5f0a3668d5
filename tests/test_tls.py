"""TLS: verification is on by default; a self-signed registry is refused until its CA is given."""

from __future__ import annotations

import logging

import pytest

import regdata
from tests.support.builder import Builder, ImageSpec
from tests.support.registry_server import RegistryServer


def test_self_signed_registry_refused_then_trusted_with_its_ca(
    tls_registry: RegistryServer, tls_builder: Builder
) -> None:
    tls_builder.push_image("tls/app", ImageSpec(), tags=["1"])
    repo = f"{tls_registry.host}/tls/app"
    with pytest.raises(regdata.TransportError, match="TLS failure") as info:
        regdata.Registry(cache=None, credentials=regdata.Credentials.none()).get_repository(repo)
    assert not info.value.temporary  # a bad certificate does not get better by retrying
    assert tls_registry.ca_path is not None
    trusting = regdata.Registry(
        cache=None, credentials=regdata.Credentials.none(), verify=str(tls_registry.ca_path)
    )
    df = trusting.get_repository(repo)
    assert df["tag"].tolist() == ["1"] and df["error"].isna().all()


def test_loopback_plain_http_falls_back_but_tls_is_tried_first(
    registry: RegistryServer, builder: Builder, caplog: pytest.LogCaptureFixture
) -> None:
    builder.push_image("tls/plain", ImageSpec(), tags=["1"])
    reg = regdata.Registry(cache=None, credentials=regdata.Credentials.none())
    with caplog.at_level(logging.INFO, logger="regdata.client.remote"):
        assert reg.tags(f"{registry.host}/tls/plain") == ["1"]
    messages = [r.getMessage() for r in caplog.records if r.name == "regdata.client.remote"]
    assert len(messages) == 1 and messages[0].startswith(f"{registry.host} does not speak TLS")
    # A TLS hello refused is no HTTP request: the log has the tag list only, and no failure.
    log = reg.requests
    assert log["kind"].astype(str).tolist() == ["tags"] and log["error"].isna().all()

"""Each registry's own ways, against a local stand-in for it (the real registry behind it)."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest

import regdata
from regdata.client.tag_details import TAG_DETAILS, tag_details_rows
from tests.conftest import ServerFactory
from tests.support.builder import Builder, ImageSpec
from tests.support.gcr import UPLOADED_MS, start_gcr
from tests.support.proxy import Action, FaultProxy, Seen
from tests.support.registry_server import RegistryServer
from tests.support.token_server import AclRule, TokenServer


def _reg() -> regdata.Registry:
    return regdata.Registry(cache=None, credentials=regdata.Credentials.none())


# --------------------------------------------------------------------------- GCR / Artifact Registry


@pytest.fixture(scope="module")
def gcr(registry: RegistryServer, builder: Builder) -> Iterator[FaultProxy]:
    builder.push_image("gcr/app", ImageSpec(created="2024-03-01T10:00:00Z"), tags=["1.0", "stable"])
    builder.push_image("gcr/app", ImageSpec(created="2024-05-02T12:30:00.5Z"), tags=["2.0"])
    builder.push_multiarch("gcr/app", ["linux/amd64", "linux/arm64/v8"], tags=["multi"])
    proxy = start_gcr(registry.host)
    yield proxy
    proxy.stop()


def test_gcr_tag_details_in_one_request(gcr: FaultProxy) -> None:
    reg = _reg()
    details = reg.tag_details(f"{gcr.host}/gcr/app")
    assert list(details.columns) == [c for c, _ in TAG_DETAILS]
    assert [str(details[c].dtype) for c in details.columns] == [d for _, d in TAG_DETAILS]
    assert details["tag"].tolist() == ["2.0", "1.0", "stable", "multi"]  # newest first, unknown time last
    assert details["created"].tolist()[:3] == [
        pd.Timestamp("2024-05-02T12:30:00.5Z"),
        pd.Timestamp("2024-03-01T10:00:00Z"),
        pd.Timestamp("2024-03-01T10:00:00Z"),
    ]
    assert (details["uploaded"] == pd.Timestamp(UPLOADED_MS, unit="ms", tz="UTC")).all()
    assert details["error"].isna().all() and (details["size"].iloc[:3] > 0).all()
    assert reg.requests["kind"].astype(str).tolist() == ["tags"]  # one request for all of it
    # The digests are those the manifests have, as a full scan finds them.
    images = _reg().get_repository(f"{gcr.host}/gcr/app").drop_duplicates("tag").set_index("tag")
    assert details.set_index("tag")["digest"].to_dict() == images["digest"].to_dict()


def test_tag_details_of_a_registry_without_the_map_lists_the_tags(
    registry: RegistryServer, builder: Builder
) -> None:
    builder.push_image("gcr/plain", ImageSpec(), tags=["a"])
    details = _reg().tag_details(f"{registry.host}/gcr/plain")
    assert details["tag"].tolist() == ["a"] and details["digest"].isna().all()


def test_a_bad_manifest_map_entry_is_its_rows_error() -> None:
    digest = "sha256:" + "a" * 64
    pages = [
        {
            "tags": ["ok", "bad", "orphan"],
            "manifest": {
                digest: {"tag": ["ok"], "imageSizeBytes": "12", "timeCreatedMs": "1700000000000"},
                "sha256:" + "b" * 64: {"tag": ["bad", 7], "imageSizeBytes": "-3", "timeCreatedMs": "soon"},
                "not-a-digest": {"tag": ["x"]},
                "sha256:" + "c" * 64: "nope",
            },
        }
    ]
    rows = {(r.get("tag"), r.get("digest")): r for r in tag_details_rows("gcr.io", "p/app", pages)}
    assert rows[("ok", digest)]["size"] == 12 and rows[("ok", digest)]["error"] is None
    bad = rows[("bad", "sha256:" + "b" * 64)]
    assert bad["size"] is None and bad["created"] is None
    assert (
        bad["error"] == "imageSizeBytes is not a count; timeCreatedMs is not a count; a tag is not a string"
    )
    assert rows[(None, None)]["error"].startswith("manifest map key is not a digest")
    assert rows[(None, "sha256:" + "c" * 64)]["error"] == "manifest map entry is not an object"
    assert ("orphan", None) in rows  # listed, but not in the map


# --------------------------------------------------------------------------- token services and helpers


PULL_ALL = (
    AclRule(account="*", name="*", actions=("pull",)),
    AclRule(account="pusher", name="*", actions=("*",)),
)


def _token_registry(
    server_factory: ServerFactory,
    users: dict[str, str],
    **token: Any,
) -> tuple[RegistryServer, TokenServer, Builder]:
    ts = server_factory.token_server({**users, "pusher": "pusher-pw"}, PULL_ALL, **token)
    server = server_factory.registry(token_server=ts)
    return server, ts, server_factory.builder(server, "pusher")


def _helper(folder: Path, name: str, username: str, secret: str) -> None:
    """A ``docker-credential-<name>`` that answers ``get`` as the real one does."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / f"docker-credential-{name}"
    script.write_text(
        '#!/bin/sh\n[ "$1" = get ] || exit 1\nIFS= read -r url\n'
        f'printf \'{{"ServerURL": "%s", "Username": "{username}", "Secret": "{secret}"}}\\n\' "$url"\n'
    )
    script.chmod(0o755)


def _config(tmp_path: Path, doc: dict[str, Any]) -> regdata.Credentials:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    return regdata.Credentials.from_docker_config(path, strict=True)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_docker_hub_token_service_and_the_library_scope(server_factory: ServerFactory) -> None:
    server, ts, builder = _token_registry(server_factory, {}, service="registry.docker.io")
    builder.push_image("library/alpine", ImageSpec(), tags=["3.20"])
    ts.clear_requests()
    reg = regdata.Registry(
        cache=None, credentials=regdata.Credentials.none(), mirrors={"docker.io": server.host}
    )
    df = reg.get_repository("alpine")
    assert df["repository"].tolist() == ["library/alpine"] and df["error"].isna().all()
    (asked,) = {(r.method, r.query["service"][0], " ".join(r.query["scope"])) for r in ts.requests}
    assert asked == ("GET", "registry.docker.io", "repository:library/alpine:pull")
    assert not any(r.authorization for r in ts.requests)  # anonymous, as a pull of a public image


def test_ghcr_anonymous_token_for_a_public_image(server_factory: ServerFactory) -> None:
    server, ts, builder = _token_registry(server_factory, {}, service="ghcr.io", token_only=True)
    builder.push_image("octo/app", ImageSpec(), tags=["v1"])
    ts.clear_requests()
    reg = _reg()
    assert reg.get_image(f"{server.host}/octo/app:v1")["error"].isna().all()
    assert ts.requests and all(not r.authorization and r.query["service"] == ["ghcr.io"] for r in ts.requests)
    # {"token": ...} alone, no expires_in: kept the spec's 60 s, so one token serves the scan.
    assert len(ts.requests) == 1


def test_quay_robot_account_at_v2_auth(server_factory: ServerFactory, tmp_path: Path) -> None:
    robot, password = "org+reader", "ROBOT-pw-0a1b"
    server, ts, builder = _token_registry(
        server_factory, {robot: password}, service="quay.io", path="/v2/auth", token_only=True
    )
    builder.push_image("org/app", ImageSpec(), tags=["1"])
    ts.clear_requests()
    credentials = _config(tmp_path, {"auths": {server.host: {"auth": _b64(f"{robot}:{password}")}}})
    reg = regdata.Registry(cache=None, credentials=credentials)
    assert reg.tags(f"{server.host}/org/app") == ["1"]
    (request,) = ts.requests
    assert request.path == "/v2/auth" and request.account == robot and request.query["account"] == [robot]


def test_acr_identity_token_is_exchanged_at_oauth2_token(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server, ts, builder = _token_registry(
        server_factory, {"alice": "alice-pw"}, service="regdatatest.azurecr.io", path="/oauth2/token"
    )
    builder.push_image("team/app", ImageSpec(), tags=["1"])
    refresh = ts._new_refresh_token("alice")  # what `az acr login` leaves in the docker config
    ts.clear_requests()
    credentials = _config(
        tmp_path,
        {
            "auths": {
                server.host: {"auth": _b64("00000000-0000-0000-0000-000000000000:"), "identitytoken": refresh}
            }
        },
    )
    reg = regdata.Registry(cache=None, credentials=credentials)
    assert reg.get_repository(f"{server.host}/team/app")["error"].isna().all()
    (exchange,) = ts.requests
    assert (exchange.method, exchange.path, exchange.account) == ("POST", "/oauth2/token", "alice")
    assert exchange.form["grant_type"] == ["refresh_token"]
    assert exchange.form["service"] == ["regdatatest.azurecr.io"]
    assert exchange.form["scope"] == ["repository:team/app:pull"]


def test_google_oauth2accesstoken_and_the_gcloud_helper(
    server_factory: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access, helped = "ya29.ACCESS-token-1", "ya29.HELPER-token-2"
    server, ts, builder = _token_registry(
        server_factory,
        {"oauth2accesstoken": access, "_dcgcloud_token": helped},
        service="gcr.io",
        path="/v2/token",
    )
    builder.push_image("project/app", ImageSpec(), tags=["1"])
    repo = f"{server.host}/project/app"
    # docker login -u oauth2accesstoken -p "$(gcloud auth print-access-token)"
    ts.clear_requests()
    login = _config(tmp_path, {"auths": {server.host: {"auth": _b64(f"oauth2accesstoken:{access}")}}})
    assert regdata.Registry(cache=None, credentials=login).tags(repo) == ["1"]
    assert [r.account for r in ts.requests] == ["oauth2accesstoken"]
    # gcloud auth configure-docker: a credHelpers entry for docker-credential-gcloud.
    _helper(tmp_path / "bin", "gcloud", "_dcgcloud_token", helped)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    ts.clear_requests()
    helper = _config(tmp_path, {"credHelpers": {server.host: "gcloud"}})
    assert regdata.Registry(cache=None, credentials=helper).tags(repo) == ["1"]
    assert [r.account for r in ts.requests] == ["_dcgcloud_token"]


def test_ecr_basic_auth_from_ecr_login_and_1000_tag_pages(
    server_factory: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "eyJwYXlsb2FkIjoiRUNSLXRva2VuIn0"  # what GetAuthorizationToken hands out, for user AWS
    server = server_factory.registry("htpasswd", users={"AWS": password})
    builder = server_factory.builder(server, "AWS")
    pushed = builder.push_image("team/app", ImageSpec(), tags=["t0000"])
    builder.tag("team/app", pushed, *(f"t{i:04d}" for i in range(1, 1001)))
    ecr = FaultProxy(server.host)
    seen: list[str] = []

    def as_ecr(request: Seen) -> Action | None:
        seen.append(request.path)
        match = re.search(r"[?&]n=(\d+)", request.path)
        if match and int(match.group(1)) > 1000:  # ECR refuses a page over 1000
            return Action(status=400, body=b'{"errors":[{"code":"INVALID_PARAMETER","message":"n"}]}')

        def challenge(status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
            if status == 401:  # ECR's challenge (Go spells the header Www-Authenticate)
                headers = {k: v for k, v in headers.items() if k.lower() != "www-authenticate"}
                headers["WWW-Authenticate"] = f'Basic realm="https://{ecr.host}/",service="ecr.amazonaws.com"'
            if status == 200 and "/tags/list" in request.path:  # ECR pages; Distribution 2.8 does not
                query = parse_qs(urlsplit(request.path).query)
                size, last = int(query["n"][0]), query.get("last", [""])[0]
                doc = json.loads(body)
                rest = sorted(t for t in doc["tags"] if t > last)
                doc["tags"] = rest[:size]
                headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
                if len(rest) > size:
                    path = urlsplit(request.path).path
                    headers["Link"] = f'<{path}?last={rest[size - 1]}&n={size}>; rel="next"'
                body = json.dumps(doc).encode()
                headers["Content-Length"] = str(len(body))
            return status, headers, body

        return Action(transform=challenge)

    ecr.add(as_ecr)
    try:
        _helper(tmp_path / "bin", "ecr-login", "AWS", password)
        monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
        credentials = _config(tmp_path, {"credHelpers": {ecr.host: "ecr-login"}})
        reg = regdata.Registry(cache=None, credentials=credentials)
        tags = reg.tags(f"{ecr.host}/team/app")
    finally:
        ecr.stop()
    assert len(tags) == 1001 and len(set(tags)) == 1001
    lists = [p for p in seen if "/tags/list" in p]
    assert len(lists) == 3 and all("n=1000" in p for p in lists)  # a 401, then two pages of at most 1000
    assert reg.requests["status"].tolist() == [401, 200, 200]  # the challenge, then the two pages


def test_tag_details_through_the_mock_factory() -> None:
    from regdata.testing import MockRegistry, image

    mock = MockRegistry()
    mock.push("example.com/team/app:1", image(created="2024-01-01T00:00:00Z"))
    details = mock.registry().tag_details("example.com/team/app")
    assert details["tag"].tolist() == ["1"] and details["digest"].isna().all()

"""The Remote against the real Distribution registry: media types, digests, auth, errors.

Faults a real registry cannot produce (pagination of tags, 429, a redirect to
a second host, a corrupted body) come from our proxy in front of it.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import regdata
from regdata import Credential, Credentials, parse_reference, parse_repository
from regdata.client.remote import RemoteFactory
from regdata.oci.manifest import ImageManifest, Index, Schema1Manifest
from regdata.transport import HTTPTransport, Request, RetryPolicy
from regdata.transport.http import tls_context
from tests.support.builder import Builder, ImageSpec, Schema1Spec, helm_chart_spec
from tests.support.proxy import Action, RecordingServer, Seen, start_proxy
from tests.support.registry_server import RegistryServer

NO_RETRY = RetryPolicy(attempts=1, max_retry_after=0)  # no retry, and no Retry-After waited for


def factory(**kwargs: object) -> RemoteFactory:
    return RemoteFactory(cache=None, **kwargs)  # type: ignore[arg-type]


def ref(server: RegistryServer | str, text: str) -> regdata.Reference:
    host = server if isinstance(server, str) else server.host
    return parse_reference(f"{host}/{text}")


# -- every media type, fetched and digest-checked ---------------------------------------


def test_every_media_type_fetched_and_verified(
    registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    docker = builder.push_image(repo_name, ImageSpec(format="docker"), tags=["docker"])
    oci = builder.push_image(repo_name, ImageSpec(format="oci"), tags=["oci"])
    listing = builder.push_multiarch(
        repo_name, ["linux/amd64", "linux/arm/v7"], tags=["list"], format="docker"
    )
    index = builder.push_multiarch(
        repo_name, ["linux/amd64", "linux/arm64/v8"], tags=["index"], format="oci", attest=True
    )
    artifact = builder.push_artifact(repo_name, helm_chart_spec(), tags=["chart"])
    schema1 = builder.push_schema1(repo_name, "v1", Schema1Spec())
    remote = factory().remote(registry.host)

    for pushed, tag, kind in [
        (docker, "docker", ImageManifest),
        (oci, "oci", ImageManifest),
        (listing, "list", Index),
        (index, "index", Index),
        (artifact, "chart", ImageManifest),
        (schema1, "v1", Schema1Manifest),
    ]:
        fetched = remote.manifest(ref(registry, f"{repo_name}:{tag}"))
        assert fetched.digest == pushed.digest, tag
        assert fetched.media_type == pushed.media_type, tag
        assert isinstance(fetched.manifest, kind), tag
        by_digest = remote.manifest(ref(registry, f"{repo_name}@{pushed.digest}"))
        assert by_digest.digest == pushed.digest
        if kind is not Schema1Manifest:  # Distribution signs schema1 anew on every GET
            assert by_digest.body == fetched.body == pushed.manifest_bytes
        assert remote.head(ref(registry, f"{repo_name}:{tag}"))[0] == pushed.digest

    manifest = remote.manifest(ref(registry, f"{repo_name}:oci")).manifest
    assert isinstance(manifest, ImageManifest) and oci.config is not None
    assert (
        remote.blob(parse_repository(f"{registry.host}/{repo_name}"), manifest.config.digest)
        == oci.config.data
    )
    fetched_index = remote.manifest(ref(registry, f"{repo_name}:index")).manifest
    assert isinstance(fetched_index, Index)
    assert sum(d.is_attestation for d in fetched_index.manifests) == 2


def test_tags_and_catalog(registry: RegistryServer, builder: Builder, repo_name: str) -> None:
    builder.push_image(repo_name, ImageSpec(), tags=["a", "b", "c"])
    f = factory()
    remote = f.remote(registry.host)
    assert sorted(remote.tags(parse_repository(f"{registry.host}/{repo_name}"))) == ["a", "b", "c"]
    for other in ("cat/one", "cat/two", "cat/three"):
        builder.push_image(other, ImageSpec(), tags=["x"])
    remote.page_size = 2  # Distribution paginates the catalog: follow its Link headers
    everything = remote.catalog()
    assert {"cat/one", "cat/two", "cat/three", repo_name} <= set(everything)
    pages = [r for r in f.log.records() if r.kind == "catalog"]
    assert len(pages) >= len(everything) // 2


def _paged_tags(pages: list[list[str]], absolute_host: str | None = None):  # type: ignore[no-untyped-def]
    def fault(seen: Seen) -> Action | None:
        if "/tags/list" not in seen.path:
            return None
        page = 0 if "last=" not in seen.path else int(seen.path.rsplit("last=p", 1)[1]) + 1
        headers = {"Content-Type": "application/json"}
        if page + 1 < len(pages):
            target = f"/v2/x/tags/list?n=2&last=p{page}"
            if absolute_host:
                target = f"http://{absolute_host}{target}"
            headers["Link"] = f'<{target}>; rel="next"'
        return Action(
            status=200, headers=headers, body=json.dumps({"name": "x", "tags": pages[page]}).encode()
        )

    return fault


def test_tags_follow_relative_and_absolute_links(registry: RegistryServer) -> None:
    pages = [["1", "2"], ["3", "4"], ["5"]]
    with start_proxy(registry.host) as proxy:
        proxy.add(_paged_tags(pages))
        repo = parse_repository(f"{proxy.host}/x")
        assert factory().remote(proxy.host).tags(repo) == ["1", "2", "3", "4", "5"]
        proxy.clear()
        proxy.add(_paged_tags(pages, absolute_host=proxy.host))
        assert factory().remote(proxy.host).tags(repo) == ["1", "2", "3", "4", "5"]
        first = next(s for s in proxy.seen if "/tags/list" in s.path)
        assert "n=1000" in first.path


def test_pagination_to_another_host_or_in_a_loop_stops(registry: RegistryServer) -> None:
    with start_proxy(registry.host) as proxy:
        proxy.add(_paged_tags([["1"], ["2"]], absolute_host="127.0.0.2:1"))
        with pytest.raises(regdata.MalformedContent, match="another host"):
            factory().remote(proxy.host).tags(parse_repository(f"{proxy.host}/x"))
        proxy.clear()
        proxy.add(
            lambda s: (
                Action(
                    status=200,
                    headers={"Link": '</v2/x/tags/list?n=1000>; rel="next"'},
                    body=b'{"tags": ["a"]}',
                )
                if "/tags/list" in s.path
                else None
            )
        )
        with pytest.raises(regdata.MalformedContent, match="loops"):
            factory().remote(proxy.host).tags(parse_repository(f"{proxy.host}/x"))


# -- registry errors -------------------------------------------------------------------


def test_not_found_carries_the_spec_error_code(
    registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    builder.push_image(repo_name, ImageSpec(), tags=["here"])
    remote = factory().remote(registry.host)
    with pytest.raises(regdata.NotFound) as info:
        remote.manifest(ref(registry, f"{repo_name}:missing"))
    assert info.value.codes == ("MANIFEST_UNKNOWN",)
    assert info.value.status == 404 and not info.value.temporary
    assert f"{registry.host}/v2/{repo_name}/manifests/missing" in str(info.value)
    with pytest.raises(regdata.NotFound, match="NAME_UNKNOWN"):
        remote.tags(parse_repository(f"{registry.host}/no/such/repo"))


@pytest.mark.parametrize(
    ("status", "error", "temporary"),
    [
        (429, regdata.TooManyRequests, True),
        (500, regdata.ServerError, False),
        (503, regdata.ServerError, True),
        (403, regdata.Denied, False),
        (418, regdata.RegistryError, False),
    ],
)
def test_error_statuses_map_to_types(
    registry: RegistryServer, status: int, error: type[regdata.RegistryError], temporary: bool
) -> None:
    body = json.dumps({"errors": [{"code": "SOME_CODE", "message": "said the registry"}]}).encode()
    with start_proxy(registry.host) as proxy:
        proxy.add(
            lambda s: (
                Action(status=status, body=body, headers={"Retry-After": "1"}) if "/tags/" in s.path else None
            )
        )
        with pytest.raises(error) as info:
            factory(retry=NO_RETRY).remote(proxy.host).tags(parse_repository(f"{proxy.host}/x"))
    assert type(info.value) is error
    assert info.value.temporary is temporary
    assert "SOME_CODE: said the registry" in str(info.value) and str(status) in str(info.value)


def test_html_error_page_is_named_not_parsed(registry: RegistryServer) -> None:
    with start_proxy(registry.host) as proxy:
        proxy.add(
            lambda s: Action(
                status=502,
                headers={"Content-Type": "text/html"},
                body=b"<html><body>Bad Gateway</body></html>",
            )
        )
        with pytest.raises(regdata.ServerError, match="non-JSON answer: text/html"):
            factory(retry=NO_RETRY).remote(proxy.host).tags(parse_repository(f"{proxy.host}/x"))


def test_body_not_matching_its_digest_is_refused(
    registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    pushed = builder.push_image(repo_name, ImageSpec(), tags=["t"])

    def corrupt(status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        return status, headers, body.replace(b'"schemaVersion":2', b'"schemaVersion": 2')

    with start_proxy(registry.host) as proxy:
        proxy.add(lambda s: Action(transform=corrupt) if "/manifests/" in s.path else None)
        remote = factory().remote(proxy.host)
        with pytest.raises(regdata.DigestMismatch) as info:
            remote.manifest(ref(proxy.host, f"{repo_name}:t"))
        assert info.value.expected == pushed.digest
        with pytest.raises(regdata.DigestMismatch):
            remote.manifest(ref(proxy.host, f"{repo_name}@{pushed.digest}"))


# -- auth ------------------------------------------------------------------------------------


def test_basic_auth(htpasswd_registry: RegistryServer, htpasswd_builder: Builder, repo_name: str) -> None:
    htpasswd_builder.push_image(repo_name, ImageSpec(), tags=["t"])
    repo = parse_repository(f"{htpasswd_registry.host}/{repo_name}")
    with pytest.raises(regdata.Unauthorized):
        factory().remote(htpasswd_registry.host).tags(repo)
    wrong = Credentials.from_mapping({htpasswd_registry.host: ("alice", "not-the-password")})
    with pytest.raises(regdata.Unauthorized):
        factory(credentials=wrong).remote(htpasswd_registry.host).tags(repo)
    right = Credentials.from_mapping({htpasswd_registry.host: ("alice", htpasswd_registry.users["alice"])})
    f = factory(credentials=right)
    assert f.remote(htpasswd_registry.host).tags(repo) == ["t"]
    assert f.remote(htpasswd_registry.host).tags(repo) == ["t"]
    # The challenge is remembered: the second listing goes with credentials at once.
    statuses = [r.status for r in f.log.records() if r.kind == "tags"]
    assert statuses == [401, 200, 200]


def test_token_auth_public_private_and_users(token_registry: RegistryServer, token_builder: Builder) -> None:
    token_builder.push_image("public/app", ImageSpec(), tags=["1"])
    token_builder.push_image("private/app", ImageSpec(), tags=["1"])
    host = token_registry.host
    users = token_registry.users
    anonymous = factory()
    assert anonymous.remote(host).tags(parse_repository(f"{host}/public/app")) == ["1"]
    with pytest.raises(regdata.Unauthorized, match="insufficient_scope|UNAUTHORIZED"):
        anonymous.remote(host).tags(parse_repository(f"{host}/private/app"))
    bob = factory(credentials=Credentials.from_mapping({host: ("bob", users["bob"])}))
    with pytest.raises(regdata.Unauthorized):
        bob.remote(host).tags(parse_repository(f"{host}/private/app"))
    alice = factory(credentials=Credentials.from_mapping({host: ("alice", users["alice"])}))
    remote = alice.remote(host)
    assert remote.tags(parse_repository(f"{host}/private/app")) == ["1"]
    assert remote.manifest(ref(host, "private/app:1")).digest
    # One token per scope, reused: tags and manifest share repository:private/app:pull.
    tokens = [r for r in alice.log.records() if r.kind == "token"]
    assert len(tokens) == 1 and tokens[0].status == 200
    wrong = factory(credentials=Credentials.from_mapping({host: ("alice", "nope")}))
    with pytest.raises(regdata.Unauthorized, match="token"):
        wrong.remote(host).tags(parse_repository(f"{host}/private/app"))


def test_identity_token_uses_oauth2_post(
    token_registry: RegistryServer,
    token_server,  # type: ignore[no-untyped-def]
    token_builder: Builder,
) -> None:
    import requests

    token_builder.push_image("private/oauth", ImageSpec(), tags=["1"])
    answer = requests.post(
        token_server.realm,
        data={
            "grant_type": "password",
            "username": "alice",
            "password": token_server.users["alice"],
            "service": token_server.service,
            "client_id": "test",
            "access_type": "offline",
        },
        timeout=10,
    ).json()
    credential = Credential(identity_token=answer["refresh_token"])
    f = factory(credentials=Credentials.from_mapping({token_registry.host: credential}))
    token_server.clear_requests()
    assert f.remote(token_registry.host).tags(parse_repository(f"{token_registry.host}/private/oauth")) == [
        "1"
    ]
    assert [r.method for r in token_server.requests] == ["POST"]


def _write_config(tmp_path: Path, host: str, user: str, password: str) -> Path:
    import base64

    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {f"http://{host}/v1/": {"auth": auth}}}))
    return path


def test_credentials_from_docker_config_helper_and_auth_json(
    token_registry: RegistryServer, token_builder: Builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_builder.push_image("private/creds", ImageSpec(), tags=["1"])
    host = token_registry.host
    repo = parse_repository(f"{host}/private/creds")
    password = token_registry.users["alice"]

    config = _write_config(tmp_path, host, "alice", password)
    assert factory(credentials=Credentials.from_docker_config(config)).remote(host).tags(repo) == ["1"]

    auth_json = tmp_path / "auth.json"
    auth_json.write_text(config.read_text())
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_json))
    assert factory(credentials=Credentials.from_auth_file()).remote(host).tags(repo) == ["1"]

    helpers = Path(__file__).parent / "helpers"
    monkeypatch.setenv("PATH", f"{helpers}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("REGDATA_TEST_HELPER_USER", "alice")
    monkeypatch.setenv("REGDATA_TEST_HELPER_SECRET", password)
    helper_config = tmp_path / "helper" / "config.json"
    helper_config.parent.mkdir()
    helper_config.write_text(json.dumps({"credHelpers": {host: "regdatatest"}}))
    assert factory(credentials=Credentials.from_docker_config(helper_config)).remote(host).tags(repo) == ["1"]


def test_credential_not_sent_to_a_second_host_on_redirect(
    htpasswd_registry: RegistryServer, htpasswd_builder: Builder, repo_name: str
) -> None:
    pushed = htpasswd_builder.push_image(repo_name, ImageSpec(), tags=["t"])
    assert pushed.config is not None
    storage = RecordingServer()
    storage.body = pushed.config.data
    try:
        with start_proxy(htpasswd_registry.host) as proxy:
            proxy.add(
                lambda s: (
                    Action(status=307, headers={"Location": f"{storage.url}/blob?sig=1"})
                    if "/blobs/" in s.path
                    else None
                )
            )
            creds = Credentials.from_mapping({proxy.host: ("alice", htpasswd_registry.users["alice"])})
            remote = factory(credentials=creds).remote(proxy.host)
            remote.tags(parse_repository(f"{proxy.host}/{repo_name}"))  # learns the challenge
            body = remote.blob(parse_repository(f"{proxy.host}/{repo_name}"), pushed.config.digest)
        assert body == pushed.config.data
        blob_requests = [s for s in proxy.seen if "/blobs/" in s.path]
        assert blob_requests and all(s.authorization for s in blob_requests)
        assert storage.seen and all(s.authorization is None for s in storage.seen)
    finally:
        storage.stop()


def test_token_realm_must_be_http(registry: RegistryServer) -> None:
    with start_proxy(registry.host) as proxy:
        proxy.add(
            lambda s: Action(
                status=401, headers={"WWW-Authenticate": 'Bearer realm="file:///etc/passwd",service="x"'}
            )
        )
        creds = Credentials.from_mapping({proxy.host: ("alice", "s3cret")})
        with pytest.raises(regdata.InsecureRequest, match="token realm"):
            factory(credentials=creds).remote(proxy.host).tags(parse_repository(f"{proxy.host}/x"))


def test_plain_http_only_for_loopback_or_named_hosts() -> None:
    http = HTTPTransport()
    with pytest.raises(regdata.InsecureRequest, match="plain HTTP to example.com"):
        http.send(Request("GET", "http://example.com/v2/", "ping"))
    with pytest.raises(regdata.InsecureRequest, match="scheme 'ftp'"):
        http.send(Request("GET", "ftp://example.com/v2/", "ping"))
    assert HTTPTransport(insecure_hosts=frozenset({"example.com"})).allows_plain_http("example.com")


def test_a_refused_connection_is_a_transport_error_not_a_timeout() -> None:
    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(regdata.TransportError, match="connection failed") as caught:
            HTTPTransport().send(Request("GET", f"http://127.0.0.1:{port}/v2/", "ping"))
    assert not isinstance(caught.value, regdata.RequestTimeout)


def test_a_host_that_does_not_answer_is_never_taken_for_plain_http() -> None:
    """Only a failed TLS handshake means plain HTTP; a refused connection decides nothing."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        remote = factory().remote(f"127.0.0.1:{port}")
        with pytest.raises(regdata.TransportError, match="connection failed"):
            remote.scheme()
    assert remote.probe is not None and remote.probe.known is None  # asked again next time


def test_a_ca_bundle_that_cannot_be_read_says_so_and_is_not_retried(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(regdata.TransportError, match="cannot load the CA certificates") as caught:
        HTTPTransport(verify=str(missing)).send(Request("GET", "https://127.0.0.1:1/v2/", "ping"))
    assert caught.value.temporary is False
    # Nor does the TLS probe take it for a server without TLS.
    with pytest.raises(regdata.TransportError, match="cannot load the CA certificates"):
        factory(verify=str(missing)).remote("127.0.0.1:1").scheme()


def test_a_mirror_may_be_written_as_docker_writes_it(
    registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    """registry-mirrors in daemon.json are URLs: the host is taken from one."""
    builder.push_image(repo_name, ImageSpec(), tags=["m1"])
    remote = factory(mirrors={"Mirrored.Example": f"http://{registry.host}/"}).remote("mirrored.example")
    assert remote.api_host == registry.host
    assert remote.tags(parse_repository(f"mirrored.example/{repo_name}")) == ["m1"]


def test_one_tls_context_per_trust_setting() -> None:
    """Loading a CA bundle costs ~20 ms of CPU: done once per setting, not per connection."""
    assert tls_context(True) is tls_context(True)
    assert tls_context(False) is not tls_context(True)
    assert tls_context(False).verify_mode == ssl.CERT_NONE and tls_context(True).check_hostname


def test_cancel_stops_a_remote(registry: RegistryServer, builder: Builder, repo_name: str) -> None:
    builder.push_image(repo_name, ImageSpec(), tags=["t"])
    f = factory()
    remote = f.remote(registry.host)
    remote.cancel()
    before = len(f.log)
    with pytest.raises(regdata.Cancelled):
        remote.tags(parse_repository(f"{registry.host}/{repo_name}"))
    assert len(f.log) == before  # nothing was sent


def test_unreachable_registry_is_a_transport_error() -> None:
    from tests.support.registry_server import free_port

    host = f"127.0.0.1:{free_port()}"
    with pytest.raises(regdata.TransportError, match="connection failed"):
        factory(retry=NO_RETRY).remote(host).tags(parse_repository(f"{host}/x"))


# -- defects of issue 16 ---------------------------------------------------------------


@pytest.mark.parametrize("cache", [None, "memory://"])
def test_cancel_stops_the_work_in_flight_and_later_calls_work(
    registry: RegistryServer, builder: Builder, repo_name: str, cache: str | None
) -> None:
    """Flux's Cancel: the scan under way stops; the host is not lost for the Registry's life."""
    tags = [f"t{i}" for i in range(6)]
    builder.push_image(repo_name, ImageSpec(), tags=tags)
    with start_proxy(registry.host) as proxy:
        proxy.add(lambda s: Action(delay=0.3) if "/manifests/" in s.path else None)
        repo = f"{proxy.host}/{repo_name}"
        with regdata.Registry(credentials=Credentials.none(), cache=cache, concurrency=1) as reg:
            frames: list[object] = []
            scan = threading.Thread(target=lambda: frames.append(reg.get_repository(repo)))
            scan.start()
            deadline = time.monotonic() + 10
            while not any("/manifests/" in s.path for s in proxy.seen) and time.monotonic() < deadline:
                time.sleep(0.01)
            first: Any = reg.remote(proxy.host)
            first.cancel()
            scan.join(10)
            assert not scan.is_alive()
            stopped = frames[0]
            assert isinstance(stopped, pd.DataFrame)
            assert (stopped["error"] == "cancelled").any()  # it stopped before the last tag
            assert sum("/manifests/" in s.path for s in proxy.seen) < len(tags)

            proxy.clear()
            again = reg.get_repository(repo)  # a new Remote for the host: no Cancelled
            assert sorted(again["tag"]) == tags and again["error"].isna().all()
            second: Any = reg.remote(proxy.host)
            assert second is not first and not second.cancelled
            # The probed scheme carried over: the host is not probed again.
            assert getattr(second, "inner", second).probe is getattr(first, "inner", first).probe


@pytest.mark.parametrize("cache", [None, "memory://"])
def test_every_remote_method_takes_a_string(
    registry: RegistryServer, builder: Builder, repo_name: str, cache: str | None
) -> None:
    pushed = builder.push_image(repo_name, ImageSpec(labels={"s": "1"}), tags=["v1"])
    with regdata.Registry(credentials=Credentials.none(), cache=cache) as reg:
        remote: Any = reg.factory.remote(registry.host)
        assert remote.tags(repo_name) == ["v1"]
        assert remote.tags(f"{registry.host}/{repo_name}") == ["v1"]
        assert remote.tag_pages(repo_name)[0]["tags"] == ["v1"]
        assert remote.manifest(f"{repo_name}:v1").digest == pushed.digest
        assert remote.manifest(f"{registry.host}/{repo_name}@{pushed.digest}").digest == pushed.digest
        assert remote.head(f"{repo_name}:v1")[0] == pushed.digest
        assert remote.digest_of(f"{repo_name}:v1") == pushed.digest
        config_digest = pushed.config_digest
        assert config_digest is not None and remote.blob(repo_name, config_digest)
        assert remote.config(repo_name, config_digest).labels == {"s": "1"}
        # The example: a repository this host does not have is its NotFound, no AttributeError.
        with pytest.raises(regdata.NotFound):
            remote.tags("library/alpine")
        # A name of another registry is not this host's to answer; a repository is no manifest.
        with pytest.raises(regdata.InvalidReference, match="names registry ghcr.io"):
            remote.tags("ghcr.io/org/app")
        with pytest.raises(regdata.InvalidReference, match="tag or a digest"):
            remote.manifest(repo_name)


def test_a_name_given_as_a_string_is_read_for_the_remotes_host() -> None:
    """No registry in the string: this host's (Docker Hub's library/ rule only on Docker Hub)."""
    from regdata.oci.fetched import as_reference, as_repository

    assert str(as_repository("alpine", "docker.io")) == "docker.io/library/alpine"
    assert as_repository("app", "127.0.0.1:5000").repository == "app"
    assert as_repository("org/app", "127.0.0.1:5000").registry == "127.0.0.1:5000"
    assert as_repository("127.0.0.1:5000/org/app", "127.0.0.1:5000").repository == "org/app"
    assert as_reference("org/app:1", "ghcr.io") == parse_reference("ghcr.io/org/app:1")
    repo = parse_repository("ghcr.io/org/app")
    assert as_repository(repo, "ghcr.io") is repo
    with pytest.raises(regdata.InvalidReference, match="names registry localhost"):
        as_repository("localhost/app", "docker.io")
    with pytest.raises(regdata.InvalidReference, match="names registry docker.io"):
        as_reference("docker.io/library/alpine:3", "ghcr.io")

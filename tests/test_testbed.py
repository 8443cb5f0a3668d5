"""The test bed works: servers start, the builder pushes every kind of manifest, auth
modes behave as Distribution 2.8 does, and an independent client (skopeo) agrees."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import jwt
import pytest
import requests

from tests.conftest import ServerFactory, Skopeo
from tests.support.builder import (
    ACCEPT_ALL,
    DOCKER_CONFIG,
    DOCKER_FOREIGN_LAYER,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    EMPTY_CONFIG,
    EMPTY_TAR_GZ,
    HELM_CONFIG,
    IN_TOTO,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1_SIGNED,
    ZERO_TIME,
    ArtifactSpec,
    Blob,
    Builder,
    History,
    ImageSpec,
    Layer,
    Platform,
    Pushed,
    PushError,
    Schema1Spec,
    digest_of,
    helm_chart_spec,
    schema1_payload,
)
from tests.support.dockerhub import hub_tag, load_snapshot, push_dockerhub_repo
from tests.support.registry_server import (
    MemcachedServer,
    RegistryServer,
    start_registry,
)
from tests.support.token_server import TokenServer, libtrust_key_id


def assert_served(b: Builder, p: Pushed, accept: str | None = None) -> None:
    """GET by digest and by every tag returns the pushed bytes and digest."""
    for ref in (p.digest, *p.tags):
        r = b.get_manifest(p.repo, ref, accept or p.media_type)
        assert r.status_code == 200, r.text
        assert r.headers["Docker-Content-Digest"] == p.digest
        assert r.headers["Content-Type"] == p.media_type
        assert r.content == p.manifest_bytes
        assert digest_of(r.content) == p.digest


def assert_blobs_served(b: Builder, p: Pushed) -> None:
    for blob in ([p.config] if p.config else []) + list(p.layers):
        r = b.get_blob(p.repo, blob.digest)
        assert r.status_code == 200
        assert r.content == blob.data


# --------------------------------------------------------------------------- anonymous


def test_registry_answers(registry: RegistryServer) -> None:
    r = requests.get(f"{registry.url}/v2/", timeout=5)
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert registry.host == f"127.0.0.1:{registry.port}"
    assert registry.log_path.parent == registry.workdir


def test_docker_schema2_image(builder: Builder, repo_name: str) -> None:
    spec = ImageSpec(labels={"org.opencontainers.image.version": "1.2.3"}, indent=3)
    p = builder.push_image(repo_name, spec, tags=["v1"])
    assert p.media_type == DOCKER_MANIFEST
    assert p.config is not None and p.config.media_type == DOCKER_CONFIG
    assert_served(builder, p)
    assert_blobs_served(builder, p)
    assert p.config_json is not None
    assert p.config_json["config"]["Labels"] == {"org.opencontainers.image.version": "1.2.3"}


def test_oci_image(builder: Builder, repo_name: str) -> None:
    spec = ImageSpec(format="oci", annotations={"org.opencontainers.image.title": "x"})
    p = builder.push_image(repo_name, spec, tags=["v1"])
    assert p.media_type == OCI_MANIFEST
    assert p.config is not None and p.config.media_type == OCI_CONFIG
    assert p.manifest["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert_served(builder, p)
    assert_blobs_served(builder, p)


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_multiarch_index(builder: Builder, repo_name: str, fmt: str) -> None:
    platforms = ["linux/amd64", "linux/arm/v7", "linux/arm64/v8", "windows/amd64:10.0.17763.5458"]
    p = builder.push_multiarch(repo_name, platforms, tags=["latest"], format=fmt)  # type: ignore[arg-type]
    assert p.media_type == (OCI_INDEX if fmt == "oci" else DOCKER_MANIFEST_LIST)
    assert_served(builder, p)
    entries = p.manifest["manifests"]
    assert [e["platform"] for e in entries] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm", "os": "linux", "variant": "v7"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
        {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.5458"},
    ]
    for child, entry in zip(p.children, entries, strict=True):
        assert entry["digest"] == child.digest
        assert entry["size"] == child.size
        assert_served(builder, child)
        cfg = child.config_json
        assert cfg is not None
        assert cfg["architecture"] == entry["platform"]["architecture"]
        assert cfg.get("variant") == entry["platform"].get("variant")
        assert cfg.get("os.version") == entry["platform"].get("os.version")
    # Different platforms get different layers.
    assert len({c.layer_digests[0] for c in p.children}) == len(platforms)


def test_buildkit_index_with_attestations(builder: Builder, repo_name: str) -> None:
    amd = builder.push_image(repo_name, ImageSpec(format="oci", layers=(Layer.from_seed("a"),)))
    arm = builder.push_image(
        repo_name,
        ImageSpec(format="oci", platform=Platform.parse("linux/arm64/v8"), layers=(Layer.from_seed("b"),)),
    )
    # Only amd64 is attested: Docker Hub has such irregular indexes.
    p = builder.push_index(repo_name, [amd, arm], tags=["latest"], attestations=[amd])
    assert_served(builder, p)
    entries = p.manifest["manifests"]
    assert [e["digest"] for e in entries] == [amd.digest, p.attestations[0].digest, arm.digest]
    att_entry = entries[1]
    assert att_entry["platform"] == {"architecture": "unknown", "os": "unknown"}
    assert att_entry["annotations"] == {
        "vnd.docker.reference.digest": amd.digest,
        "vnd.docker.reference.type": "attestation-manifest",
    }
    att = p.attestations[0]
    assert_served(builder, att)
    assert {layer["mediaType"] for layer in att.manifest["layers"]} == {IN_TOTO}
    assert all("in-toto.io/predicate-type" in layer["annotations"] for layer in att.manifest["layers"])


def test_oci_artifact_with_empty_config(builder: Builder, repo_name: str) -> None:
    subject = builder.push_image(repo_name, ImageSpec(format="oci"), tags=["img"])
    spec = ArtifactSpec(
        artifact_type="application/vnd.example.sbom.v1+json",
        blobs=(Blob(b'{"sbom": true}', "application/spdx+json"),),
        subject=subject.descriptor(),
        annotations={"org.opencontainers.image.created": "2024-05-06T07:08:09Z"},
    )
    p = builder.push_artifact(repo_name, spec, tags=["sbom"])
    assert p.manifest["artifactType"] == "application/vnd.example.sbom.v1+json"
    assert p.manifest["config"] == EMPTY_CONFIG.descriptor()
    assert p.manifest["config"]["mediaType"] == OCI_EMPTY
    assert p.manifest["subject"]["digest"] == subject.digest
    assert_served(builder, p)
    r = builder.get_blob(repo_name, EMPTY_CONFIG.digest)
    assert r.content == b"{}"


def test_helm_chart_artifact(builder: Builder, repo_name: str) -> None:
    p = builder.push_artifact(repo_name, helm_chart_spec("mychart", "0.1.0"), tags=["0.1.0"])
    assert "artifactType" not in p.manifest
    assert p.manifest["config"]["mediaType"] == HELM_CONFIG
    assert_served(builder, p)
    assert_blobs_served(builder, p)


@pytest.mark.parametrize(
    "created",
    [None, ZERO_TIME, "2023-05-04T10:20:30.123456789+02:00", "2024-01-02T03:04:05Z"],
    ids=["absent", "zero", "offset-nanos", "plain"],
)
def test_config_created_variants(builder: Builder, repo_name: str, created: str | None) -> None:
    history = (
        History(created="2020-01-01T00:00:00Z", created_by="ADD rootfs"),
        History(created="2020-01-01T00:00:01Z", created_by="ENV A=1", empty_layer=True),
        History(created=created, created_by="RUN make", comment="buildkit.dockerfile.v0"),
    )
    spec = ImageSpec(
        created=created,
        history=history,
        layers=(Layer.from_seed("root"), Layer.from_seed(f"app-{created}")),
    )
    p = builder.push_image(repo_name, spec, tags=["t"])
    cfg = p.config_json
    assert cfg is not None
    if created is None:
        assert "created" not in cfg
    else:
        assert cfg["created"] == created
    assert cfg["history"][1] == {
        "created": "2020-01-01T00:00:01Z",
        "created_by": "ENV A=1",
        "empty_layer": True,
    }
    # diff_ids count equals the non-empty history entries.
    assert len(cfg["rootfs"]["diff_ids"]) == sum(not h.get("empty_layer") for h in cfg["history"])
    assert p.config is not None
    assert builder.get_blob(repo_name, p.config.digest).content == p.config.data


def test_layers_of_chosen_size_and_determinism() -> None:
    assert Layer.from_seed("x", size=12345).size == 12345
    assert Layer.from_seed("x", size=10).data == Layer.from_seed("x", size=10).data
    assert Layer.from_seed("x").digest == Layer.from_seed("x").digest
    assert Layer.from_seed("x").digest != Layer.from_seed("y").digest
    tarred = Layer.from_files({"etc/os-release": b"ID=test\n"})
    assert tarred.diff_id != tarred.digest
    assert digest_of(EMPTY_TAR_GZ) == (
        "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
    )


def test_sized_layer_is_pushed(builder: Builder, repo_name: str) -> None:
    p = builder.push_image(repo_name, ImageSpec(layers=(Layer.from_seed("big", size=300_000),)))
    assert p.manifest["layers"][0]["size"] == 300_000
    r = builder.request("HEAD", f"/v2/{repo_name}/blobs/{p.layer_digests[0]}", repo=repo_name)
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == 300_000


def test_foreign_layer_needs_no_blob(builder: Builder, repo_name: str) -> None:
    digest = "sha256:" + "ab" * 32
    spec = ImageSpec(
        platform=Platform.parse("windows/amd64:10.0.14393.2007"),
        layers=(Layer.foreign(digest, 252_691_002), Layer.from_seed("win-app")),
    )
    p = builder.push_image(repo_name, spec, tags=["nanoserver"])
    layer = p.manifest["layers"][0]
    assert layer["mediaType"] == DOCKER_FOREIGN_LAYER
    assert layer["digest"] == digest and layer["size"] == 252_691_002
    assert layer["urls"][0].startswith("http://127.0.0.1:")
    assert_served(builder, p)
    assert not builder.blob_exists(repo_name, digest)


def test_same_manifest_under_several_tags(builder: Builder, repo_name: str) -> None:
    p = builder.push_image(repo_name, ImageSpec(), tags=["1", "1.0"])
    p = builder.tag(repo_name, p, "latest")
    assert sorted(builder.tags(repo_name)) == ["1", "1.0", "latest"]
    digests = {
        builder.request(
            "HEAD", f"/v2/{repo_name}/manifests/{t}", repo=repo_name, headers={"Accept": ACCEPT_ALL}
        ).headers["Docker-Content-Digest"]
        for t in p.tags
    }
    assert digests == {p.digest}


def test_delete_config_blob(builder: Builder, repo_name: str) -> None:
    p = builder.push_image(repo_name, ImageSpec(), tags=["v1"])
    assert p.config_digest is not None
    builder.delete_blob(repo_name, p.config_digest)
    assert builder.get_blob(repo_name, p.config_digest).status_code == 404
    # The manifest is still served: only its config is gone.
    assert_served(builder, p)


# --------------------------------------------------------------------------- schema1


def test_signed_schema1_push(builder: Builder, repo_name: str) -> None:
    spec = Schema1Spec(
        labels={"maintainer": "someone"},
        history=(
            History("2017-01-01T00:00:00Z", "ADD file:abc in /"),
            History("2017-01-01T00:00:01Z", 'CMD ["sh"]', empty_layer=True),
        ),
        layers=(Layer.from_seed("s1-base"),),
    )
    p = builder.push_schema1(repo_name, "old", spec)
    assert p.media_type == SCHEMA1_SIGNED
    r = builder.get_manifest(repo_name, "old")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == SCHEMA1_SIGNED
    assert r.headers["Docker-Content-Digest"] == p.digest
    # The registry serves the same payload (hence digest) under signatures of its own.
    assert schema1_payload(r.content) == p.manifest_bytes
    m = json.loads(r.content)
    assert m["schemaVersion"] == 1 and m["name"] == repo_name and m["tag"] == "old"
    assert [f["blobSum"] for f in m["fsLayers"]] == [
        digest_of(EMPTY_TAR_GZ),
        Layer.from_seed("s1-base").digest,
    ]
    top = json.loads(m["history"][0]["v1Compatibility"])
    assert top["config"]["Labels"] == {"maintainer": "someone"}
    assert top["created"] == "2017-01-01T00:00:01Z"
    assert top["architecture"] == "amd64" and top["os"] == "linux"
    assert json.loads(m["history"][1]["v1Compatibility"])["id"] == top["parent"]


def test_unsigned_schema1_is_refused(builder: Builder, repo_name: str) -> None:
    with pytest.raises(PushError) as err:
        builder.push_schema1(repo_name, "unsigned", Schema1Spec(signed=False))
    assert err.value.status == 400


# --------------------------------------------------------------------------- Distribution 2.8 facts


def test_schema2_by_tag_without_accept_is_converted_to_schema1(builder: Builder, repo_name: str) -> None:
    p = builder.push_image(repo_name, ImageSpec(), tags=["v1"])
    r = builder.get_manifest(repo_name, "v1", accept="")
    assert r.headers["Content-Type"] == SCHEMA1_SIGNED
    assert r.headers["Docker-Content-Digest"] != p.digest
    # By digest it is not converted.
    r = builder.get_manifest(repo_name, p.digest, accept="")
    assert r.headers["Docker-Content-Digest"] == p.digest


def test_oci_with_docker_only_accept_is_404(builder: Builder, repo_name: str) -> None:
    idx = builder.push_multiarch(repo_name, ["linux/amd64"], tags=["idx"], format="oci")
    img = builder.push_image(repo_name, ImageSpec(format="oci"), tags=["img"])
    docker_only = f"{DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST}"
    for ref in ("idx", idx.digest, "img", img.digest):
        r = builder.get_manifest(repo_name, ref, docker_only)
        assert r.status_code == 404
        assert r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_tags_list_ignores_n_and_catalog_paginates(builder: Builder, registry: RegistryServer) -> None:
    repo = "test/pagination"
    p = builder.push_image(repo, ImageSpec(), tags=["a", "b", "c"])
    assert p.digest
    r = requests.get(f"{registry.url}/v2/{repo}/tags/list?n=1", timeout=5)
    # All tags despite n=1, and in directory order, not sorted.
    assert sorted(r.json()["tags"]) == ["a", "b", "c"]
    assert "Link" not in r.headers
    r = requests.get(f"{registry.url}/v2/_catalog?n=1", timeout=5)
    assert len(r.json()["repositories"]) == 1
    assert re.match(r'^</v2/_catalog\?last=[^>]+&n=1>; rel="next"$', r.headers["Link"])
    assert repo in builder.catalog(n=2)


def test_manifest_list_with_image_only_accept_gives_amd64_child(builder: Builder, repo_name: str) -> None:
    p = builder.push_multiarch(repo_name, ["linux/arm64/v8", "linux/amd64"], tags=["l"], format="docker")
    # By tag, a registry that may not send the list picks the linux/amd64 image itself.
    r = builder.get_manifest(repo_name, "l", DOCKER_MANIFEST)
    assert r.status_code == 200
    assert r.headers["Docker-Content-Digest"] == p.children[1].digest
    assert r.content == p.children[1].manifest_bytes


def test_schema1_is_resigned_on_every_get(builder: Builder, repo_name: str) -> None:
    p = builder.push_schema1(repo_name, "v1")
    first = builder.get_manifest(repo_name, "v1").content
    second = builder.get_manifest(repo_name, "v1").content
    assert first != second != p.signed_bytes
    assert schema1_payload(first) == schema1_payload(second) == p.manifest_bytes


def test_tags_null_after_last_manifest_deleted(
    builder: Builder, registry: RegistryServer, repo_name: str
) -> None:
    p = builder.push_image(repo_name, ImageSpec(), tags=["only"])
    builder.delete_manifest(repo_name, p.digest)
    r = requests.get(f"{registry.url}/v2/{repo_name}/tags/list", timeout=5)
    assert r.status_code == 200
    assert r.json() == {"name": repo_name, "tags": None}
    assert builder.get_manifest(repo_name, "only").status_code == 404


# --------------------------------------------------------------------------- htpasswd


def test_htpasswd(htpasswd_registry: RegistryServer, htpasswd_builder: Builder, repo_name: str) -> None:
    url = f"{htpasswd_registry.url}/v2/"
    r = requests.get(url, timeout=5)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic ")
    for user, password in htpasswd_registry.users.items():
        assert requests.get(url, auth=(user, password), timeout=5).status_code == 200
    assert requests.get(url, auth=("alice", "wrong"), timeout=5).status_code == 401
    p = htpasswd_builder.push_image(repo_name, ImageSpec(), tags=["v1"])
    assert_served(htpasswd_builder, p)
    r = requests.get(
        f"{htpasswd_registry.url}/v2/{repo_name}/manifests/v1",
        headers={"Accept": DOCKER_MANIFEST},
        auth=("bob", htpasswd_registry.users["bob"]),
        timeout=5,
    )
    assert r.content == p.manifest_bytes


# --------------------------------------------------------------------------- token


def _token(ts: TokenServer, scope: str, auth: tuple[str, str] | None = None) -> requests.Response:
    return requests.get(ts.realm, params={"service": ts.service, "scope": scope}, auth=auth, timeout=5)


def _pull(registry: RegistryServer, repo: str, ref: str, user: tuple[str, str] | None) -> requests.Response:
    """The client side of the challenge dance, done by hand."""
    url = f"{registry.url}/v2/{repo}/manifests/{ref}"
    r = requests.get(url, headers={"Accept": ACCEPT_ALL}, timeout=5)
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    realm = re.search(r'realm="([^"]+)"', challenge)
    service = re.search(r'service="([^"]+)"', challenge)
    scope = re.search(r'scope="([^"]+)"', challenge)
    assert realm and service and scope
    t = requests.get(
        realm.group(1),
        params={"service": service.group(1), "scope": scope.group(1)},
        auth=user,
        timeout=5,
    )
    assert t.status_code == 200, t.text
    token = t.json()["token"]
    return requests.get(url, headers={"Accept": ACCEPT_ALL, "Authorization": f"Bearer {token}"}, timeout=5)


def test_token_auth_acl(
    token_registry: RegistryServer, token_server: TokenServer, token_builder: Builder
) -> None:
    pub = token_builder.push_image("public/tb-acl", ImageSpec(), tags=["v1"])
    priv = token_builder.push_image("private/tb-acl", ImageSpec(), tags=["v1"])
    users = token_registry.users
    alice = ("alice", users["alice"])
    bob = ("bob", users["bob"])

    token_server.clear_requests()
    r = _pull(token_registry, "public/tb-acl", "v1", None)
    assert r.status_code == 200 and r.content == pub.manifest_bytes
    seen = token_server.requests[-1]
    assert seen.account == "" and not seen.authorization
    assert seen.scopes == ["repository:public/tb-acl:pull"]

    assert _pull(token_registry, "private/tb-acl", "v1", None).status_code == 401
    denied = _pull(token_registry, "private/tb-acl", "v1", bob)
    # Distribution 2.8 answers a token without the needed access with 401, not 403.
    assert denied.status_code == 401
    assert 'error="insufficient_scope"' in denied.headers["WWW-Authenticate"]
    assert token_server.requests[-1].account == "bob"
    assert token_server.requests[-1].granted[0].actions == ()
    r = _pull(token_registry, "private/tb-acl", "v1", alice)
    assert r.status_code == 200 and r.content == priv.manifest_bytes
    assert token_server.requests[-1].authorization


def test_token_server_grants_intersection(token_server: TokenServer) -> None:
    r = _token(token_server, "repository:public/x:pull,push,delete", ("bob", token_server.users["bob"]))
    claims = jwt.decode(r.json()["token"], options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": "public/x", "actions": ["pull"]}]
    assert claims["aud"] == token_server.service and claims["iss"] == token_server.issuer
    assert {"sub", "exp", "nbf", "iat", "jti"} <= set(claims)
    header = jwt.get_unverified_header(r.json()["token"])
    assert header["alg"] == "RS256" and header["kid"] == token_server.key_id
    assert _token(token_server, "repository:public/x:pull", ("bob", "wrong")).status_code == 401
    assert _token(token_server, "repository:public/x:pull", ("nobody", "x")).status_code == 401


def test_libtrust_key_id_shape(token_server: TokenServer) -> None:
    assert re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", token_server.key_id)
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert libtrust_key_id(key) == libtrust_key_id(key)


def test_token_oauth2_post_and_refresh(
    token_registry: RegistryServer, token_server: TokenServer, token_builder: Builder
) -> None:
    p = token_builder.push_image("private/tb-oauth", ImageSpec(), tags=["v1"])
    form = {
        "grant_type": "password",
        "username": "alice",
        "password": token_server.users["alice"],
        "service": token_server.service,
        "client_id": "regdata-tests",
        "access_type": "offline",
        "scope": "repository:private/tb-oauth:pull",
    }
    r = requests.post(token_server.realm, data=form, timeout=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "token" not in body  # the OAuth2 answer has only access_token
    refresh = body["refresh_token"]
    url = f"{token_registry.url}/v2/private/tb-oauth/manifests/v1"
    headers = {"Accept": DOCKER_MANIFEST, "Authorization": f"Bearer {body['access_token']}"}
    assert requests.get(url, headers=headers, timeout=5).content == p.manifest_bytes

    r = requests.post(
        token_server.realm,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": token_server.service,
            "client_id": "regdata-tests",
            "scope": "repository:private/tb-oauth:pull",
        },
        timeout=5,
    )
    assert r.status_code == 200
    headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
    assert token_server.requests[-1].account == "alice"

    bad = dict(form, password="wrong")
    assert requests.post(token_server.realm, data=bad, timeout=5).status_code == 401
    bad = {"grant_type": "refresh_token", "refresh_token": "nope", "client_id": "x"}
    assert requests.post(token_server.realm, data=bad, timeout=5).status_code == 401


def test_token_expiry(server_factory: ServerFactory) -> None:
    ts = server_factory.token_server(lifetime=2)
    # Distribution allows 60 s past exp; shifting exp back by 60 s leaves a 2 s token.
    ts.exp_shift = -60
    reg = server_factory.registry(token_server=ts)
    b = server_factory.builder(reg, "pusher")
    p = b.push_image("public/expiry", ImageSpec(), tags=["v1"])
    token = _token(ts, "repository:public/expiry:pull").json()
    assert token["expires_in"] == 2
    url = f"{reg.url}/v2/public/expiry/manifests/v1"
    headers = {"Accept": DOCKER_MANIFEST, "Authorization": f"Bearer {token['token']}"}
    assert requests.get(url, headers=headers, timeout=5).content == p.manifest_bytes
    time.sleep(3.1)
    r = requests.get(url, headers=headers, timeout=5)
    assert r.status_code == 401
    # Already expired for the registry at issue time.
    ts.exp_shift = -(ts.lifetime + 61)
    stale = _token(ts, "repository:public/expiry:pull").json()["token"]
    headers["Authorization"] = f"Bearer {stale}"
    assert requests.get(url, headers=headers, timeout=5).status_code == 401


def test_token_server_forced_failure(server_factory: ServerFactory) -> None:
    ts = server_factory.token_server()
    ts.fail_next(503, count=2)
    assert _token(ts, "repository:public/a:pull").status_code == 503
    assert _token(ts, "repository:public/a:pull").status_code == 503
    assert _token(ts, "repository:public/a:pull").status_code == 200
    assert [r.status for r in ts.requests] == [503, 503, 200]


# --------------------------------------------------------------------------- life cycle


def test_restart_keeps_content(server_factory: ServerFactory) -> None:
    reg = server_factory.registry()
    b = server_factory.builder(reg)
    p = b.push_image("keep/me", ImageSpec(), tags=["v1"])
    port = reg.port
    reg.kill()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{reg.url}/v2/", timeout=2)
    reg.restart()
    assert reg.port == port
    assert_served(Builder(reg.url), p)
    reg.restart(kill=True)
    assert_served(Builder(reg.url), p)


def test_pause_makes_requests_time_out(server_factory: ServerFactory) -> None:
    reg = server_factory.registry()
    reg.pause()
    try:
        with pytest.raises(requests.Timeout):
            requests.get(f"{reg.url}/v2/", timeout=0.3)
    finally:
        reg.resume()
    assert requests.get(f"{reg.url}/v2/", timeout=5).status_code == 200


def test_failed_start_raises_with_log(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not an executable"):
        start_registry(binary=str(tmp_path / "missing"))
    with pytest.raises(RuntimeError, match=r"(?s)exited with code.*tail of"):
        start_registry(extra_config={"storage": {"nosuchdriver": {}}})


def test_memcached(memcached: MemcachedServer, server_factory: ServerFactory) -> None:
    import socket

    def roundtrip(server: MemcachedServer) -> bytes:
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(b"set k 0 0 1\r\nv\r\nget k\r\n")
            data = b""
            while not data.endswith(b"END\r\n"):
                data += s.recv(1024)
            return data

    assert b"VALUE k 0 1\r\nv" in roundtrip(memcached)
    mc = server_factory.memcached()
    mc.restart(kill=True)
    assert b"STORED" in roundtrip(mc)


# --------------------------------------------------------------------------- TLS


def test_tls_registry(tls_registry: RegistryServer, tls_builder: Builder, repo_name: str) -> None:
    assert tls_registry.url.startswith("https://")
    assert tls_registry.ca_path is not None and tls_registry.ca_path.is_file()
    p = tls_builder.push_image(repo_name, ImageSpec(), tags=["v1"])
    assert_served(tls_builder, p)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{tls_registry.url}/v2/", timeout=5)


# --------------------------------------------------------------------------- skopeo


def test_skopeo_reads_builder_images(
    skopeo: Skopeo, registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    img = builder.push_image(repo_name, ImageSpec(format="oci"), tags=["img"])
    idx = builder.push_multiarch(repo_name, ["linux/amd64", "linux/arm/v7"], tags=["idx"], attest=True)
    for tag, p in (("img", img), ("idx", idx)):
        r = skopeo.inspect_raw(registry, f"{repo_name}:{tag}")
        assert r.returncode == 0, r.stderr
        assert r.stdout.encode() == p.manifest_bytes
    r = skopeo.run("inspect", "--tls-verify=false", "--no-creds", f"docker://{registry.host}/{repo_name}:img")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Digest"] == img.digest


def test_skopeo_with_token_auth(
    skopeo: Skopeo, token_registry: RegistryServer, token_builder: Builder
) -> None:
    p = token_builder.push_image("private/tb-skopeo", ImageSpec(), tags=["v1"])
    alice = ("alice", token_registry.users["alice"])
    r = skopeo.inspect_raw(token_registry, "private/tb-skopeo:v1", creds=alice)
    assert r.returncode == 0, r.stderr
    assert r.stdout.encode() == p.manifest_bytes
    r = skopeo.inspect_raw(token_registry, "private/tb-skopeo:v1")
    assert r.returncode != 0


def test_skopeo_over_tls(skopeo: Skopeo, tls_registry: RegistryServer, tls_builder: Builder) -> None:
    p = tls_builder.push_image("test/skopeo-tls", ImageSpec(), tags=["v1"])
    r = skopeo.inspect_raw(tls_registry, "test/skopeo-tls:v1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.encode() == p.manifest_bytes


# --------------------------------------------------------------------------- Docker Hub data


def test_dockerhub_alpine(builder: Builder) -> None:
    pushed = push_dockerhub_repo(builder, "alpine", tags=["3.7", "latest", "3.6"], target_repo="hub/alpine")
    real = load_snapshot()["alpine"]
    # Tags that shared a real digest share one here, and only those.
    assert (pushed["3.7"].digest == pushed["latest"].digest) == (
        real["3.7"]["index_digest"] == real["latest"]["index_digest"]
    )
    assert pushed["3.6"].digest != pushed["3.7"].digest
    idx = pushed["3.7"]
    assert idx.media_type == DOCKER_MANIFEST_LIST
    assert_served(builder, idx)
    plats = real["3.7"]["platforms"]
    assert [e["platform"]["architecture"] for e in idx.manifest["manifests"]] == [
        p["architecture"] for p in plats
    ]
    assert [e["platform"].get("variant") for e in idx.manifest["manifests"]] == [p["variant"] for p in plats]
    for child, rec in zip(idx.children, plats, strict=True):
        cfg = child.config_json
        assert cfg is not None
        assert cfg["created"] == max(h["created"] for h in rec["history"])
        assert [h["created_by"] for h in cfg["history"]] == [h["created_by"] for h in rec["history"]]
        assert len(child.layers) == len(rec["layers"])


def test_dockerhub_recent_attestations(builder: Builder) -> None:
    pushed = push_dockerhub_repo(
        builder, "alpine", ["3"], "hub/alpine-recent", snapshot="snapshot_recent.json"
    )
    idx = pushed["3"]
    assert idx.media_type == OCI_INDEX
    assert_served(builder, idx)
    real = load_snapshot("snapshot_recent.json")["alpine"]["3"]["platforms"]
    entries = idx.manifest["manifests"]
    assert len(entries) == len(real)
    for i, (entry, rec) in enumerate(zip(entries, real, strict=True)):
        if rec["is_attestation"]:
            assert entry["platform"] == {"architecture": "unknown", "os": "unknown"}
            assert entry["annotations"]["vnd.docker.reference.digest"] == entries[i - 1]["digest"]
        else:
            assert entry["platform"]["architecture"] == rec["architecture"]
            assert entry["mediaType"] == OCI_MANIFEST


def test_dockerhub_windows(builder: Builder) -> None:
    plan = hub_tag("golang", "1-nanoserver")
    pushed = push_dockerhub_repo(builder, "golang", ["1-nanoserver"], "hub/golang")
    child = pushed["1-nanoserver"].children[0]
    rec = plan.entries[0].record
    assert child.platform is not None and child.platform.os_version == rec["os_version"]
    foreign = [layer for layer in child.manifest["layers"] if layer["mediaType"] == DOCKER_FOREIGN_LAYER]
    real_foreign = [layer for layer in rec["layers"] if layer["mime"] == DOCKER_FOREIGN_LAYER]
    assert [(f["digest"], f["size"]) for f in foreign] == [(f["digest"], f["size"]) for f in real_foreign]
    assert_served(builder, child)


def test_builder_token_getter(token_registry: RegistryServer, token_server: TokenServer) -> None:
    calls: list[str] = []

    def getter(scope: str, challenge: dict[str, str] | object) -> str:
        calls.append(scope)
        raw = base64.b64encode(f"pusher:{token_server.users['pusher']}".encode()).decode()
        r = requests.get(
            token_server.realm,
            params={"service": token_server.service, "scope": scope.split(" ")},
            headers={"Authorization": f"Basic {raw}"},
            timeout=5,
        )
        return str(r.json()["token"])

    b = Builder(token_registry.url, token_getter=getter)
    p = b.push_image("public/tb-getter", ImageSpec(), tags=["v1"])
    assert calls and calls[0].startswith("repository:public/tb-getter:pull,push")
    assert_served(b, p)
    b.close()

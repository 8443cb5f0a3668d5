"""One contract, two registries: the real Distribution registry and regdata.testing's mock.

Every test here runs twice (the ``backend`` fixture): against the session's
Distribution registry, read through a FaultProxy (tests/support/proxy.py) for
the faults a real server cannot be made to produce, and against a
MockRegistry served as the HTTP layer under the real Remote.  Both get the
same bytes (images built with tests/support/builder.py's ImageSpec), and
both must give the same frames, the same request-log kinds and the same
retries: what a user's tests see through the mock is what the real registry
would give them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import pandas as pd
import pytest

from regdata import Registry
from regdata.credentials import Credentials
from regdata.errors import NotFound, Unauthorized
from regdata.oci.manifest import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from regdata.oci.reference import parse_reference
from regdata.testing import Content, MockRegistry
from regdata.transport import RetryPolicy
from tests.support.builder import Builder, History, ImageSpec, Layer, Platform, digest_of
from tests.support.proxy import Action, FaultProxy, Seen
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.timeout(60)

FAST = RetryPolicy(initial=0.01, maximum=0.05)
CREATED = "2024-03-04T05:06:07Z"


class Backend(Protocol):
    """A registry the contract runs against: content goes in, a Registry reads it."""

    host: str

    def image(self, repo: str, spec: ImageSpec, tags: Sequence[str] = ()) -> Content: ...

    def index(self, repo: str, children: Sequence[Content], tags: Sequence[str]) -> Content: ...

    def registry(self, **options: Any) -> Registry: ...

    def throttle(self, repo: str, tag: str, times: int, retry_after: float) -> None: ...

    def drop(self, repo: str, tag: str, times: int) -> None: ...


def image_content(spec: ImageSpec) -> Content:
    """What a spec pushes, as regdata.testing's Content (the same bytes for both backends)."""
    body, config, _ = spec.manifest()
    return Content(
        kind="image",
        media_type=spec.manifest_media_type,
        body=body,
        digest=digest_of(body),
        config=config.data,
        config_digest=config.digest,
        platform=str(spec.platform),
        layers=tuple(layer.descriptor() for layer in spec.layer_blobs()),
        declared_platform=spec.platform.json(),
    )


def index_content(children: Sequence[Content]) -> Content:
    """An OCI index over ``children``, built as Builder.push_index builds it."""
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [c.descriptor() for c in children]}
    body = json.dumps(doc, separators=(",", ":")).encode()
    return Content(
        kind="index", media_type=OCI_INDEX, body=body, digest=digest_of(body), children=tuple(children)
    )


def throttled(path: str, times: int, retry_after: float) -> Any:
    """A FaultProxy fault: ``times`` 429s with Retry-After for GETs of ``path``, then through."""
    left = [times]
    body = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": "too many requests"}]}).encode()

    def fault(seen: Seen) -> Action | None:
        if seen.method != "GET" or seen.path.split("?", 1)[0] != path or left[0] <= 0:
            return None
        left[0] -= 1
        return Action(
            status=429,
            body=body,
            headers={"Content-Type": "application/json", "Retry-After": f"{retry_after:g}"},
        )

    return fault


class Distribution:
    """The session's registry, pushed to directly and read through a FaultProxy."""

    def __init__(self, server: RegistryServer, builder: Builder) -> None:
        self.builder = builder
        self.proxy = FaultProxy(server.host)
        self.host = self.proxy.host

    def image(self, repo: str, spec: ImageSpec, tags: Sequence[str] = ()) -> Content:
        pushed = self.builder.push_image(repo, spec, tags)
        content = image_content(spec)
        assert pushed.digest == content.digest
        return content

    def index(self, repo: str, children: Sequence[Content], tags: Sequence[str]) -> Content:
        content = index_content(children)
        for tag in tags:
            self.builder.put_manifest(repo, tag, content.body, content.media_type)
        return content

    def registry(self, **options: Any) -> Registry:
        options.setdefault("cache", None)
        options.setdefault("credentials", Credentials.none())
        return Registry(proxies={}, retry=FAST, **options)

    def throttle(self, repo: str, tag: str, times: int, retry_after: float) -> None:
        self.proxy.add(throttled(f"/v2/{repo}/manifests/{tag}", times, retry_after))

    def drop(self, repo: str, tag: str, times: int) -> None:
        path, left = f"/v2/{repo}/manifests/{tag}", [times]

        def fault(seen: Seen) -> Action | None:
            if seen.method != "GET" or seen.path.split("?", 1)[0] != path or left[0] <= 0:
                return None
            left[0] -= 1
            return Action(drop=True)

        self.proxy.add(fault)


class Mock:
    """A MockRegistry under the real Remote."""

    host = "registry.test"

    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.mock = MockRegistry(users=users)

    def image(self, repo: str, spec: ImageSpec, tags: Sequence[str] = ()) -> Content:
        content = image_content(spec)
        for ref in [f"{self.host}/{repo}:{t}" for t in tags] or [f"{self.host}/{repo}@{content.digest}"]:
            self.mock.push(ref, content)
        return content

    def index(self, repo: str, children: Sequence[Content], tags: Sequence[str]) -> Content:
        content = index_content(children)
        for tag in tags:
            self.mock.push(f"{self.host}/{repo}:{tag}", content)
        return content

    def registry(self, **options: Any) -> Registry:
        return self.mock.registry(retry=FAST, **options)

    def throttle(self, repo: str, tag: str, times: int, retry_after: float) -> None:
        self.mock.fail(f"{self.host}/{repo}:{tag}", 429, times=times, retry_after=retry_after)

    def drop(self, repo: str, tag: str, times: int) -> None:
        self.mock.drop(f"{self.host}/{repo}:{tag}", times=times)


@pytest.fixture(params=["distribution", "mock"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "mock":
        yield Mock()
        return
    server: RegistryServer = request.getfixturevalue("registry")
    real = Distribution(server, request.getfixturevalue("builder"))
    try:
        yield real
    finally:
        real.proxy.stop()


USER, PASSWORD = "alice", "alice-Secret-1"  # tests/conftest.py's htpasswd user


@pytest.fixture(params=["distribution", "mock"])
def basic_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """A registry that wants HTTP Basic credentials: htpasswd for the real one, ``users=`` for the mock."""
    if request.param == "mock":
        yield Mock(users={USER: PASSWORD})
        return
    server: RegistryServer = request.getfixturevalue("htpasswd_registry")
    assert server.users[USER] == PASSWORD
    real = Distribution(server, request.getfixturevalue("htpasswd_builder"))
    try:
        yield real
    finally:
        real.proxy.stop()


def spec(seed: str, platform: str = "linux/amd64", fmt: str = "docker", **extra: Any) -> ImageSpec:
    layers = (Layer.from_seed(f"{seed}/a", 300), Layer.from_seed(f"{seed}/b", 200))
    return ImageSpec(
        layers=layers,
        platform=Platform.parse(platform),
        format=fmt,  # type: ignore[arg-type]
        created=CREATED,
        **extra,
    )


def size_of(content: Content) -> int:
    return sum(int(layer["size"]) for layer in content.layers)


# -- tags --------------------------------------------------------------------------------


def test_tags_and_the_catalog_across_pages(backend: Backend, repo_name: str) -> None:
    names = ["1.0", "1.1", "2.0", "latest", "edge"]
    for suffix in ("a", "b", "c"):
        backend.image(f"{repo_name}-{suffix}", spec(repo_name), names)
    reg = backend.registry()
    repo = f"{backend.host}/{repo_name}-a"
    # Distribution 2.8 lists tags in storage order and pages only the catalog; 3.x sorts and pages both.
    assert sorted(reg.tags(repo)) == sorted(names)
    reg.remote(backend.host).page_size = 2  # type: ignore[attr-defined]
    assert sorted(reg.tags(repo)) == sorted(names)
    catalog = reg.catalog(backend.host)
    assert {f"{repo_name}-{s}" for s in "abc"} <= set(catalog)
    assert len(catalog) == len(set(catalog))
    log = reg.requests
    assert (log["status"] == 200).all()
    assert (log["kind"] == "catalog").sum() >= 2  # followed the Link header


# -- get_repository and get_image --------------------------------------------------------


def test_repository_rows_for_schema2_oci_and_an_index(backend: Backend, repo_name: str) -> None:
    docker = backend.image(repo_name, spec(f"{repo_name}/d", labels={"team": "core"}), ["docker"])
    oci = backend.image(repo_name, spec(f"{repo_name}/o", "linux/arm64/v8", "oci"), ["oci"])
    amd = backend.image(repo_name, spec(f"{repo_name}/amd", "linux/amd64", "oci"))
    arm = backend.image(repo_name, spec(f"{repo_name}/arm", "linux/arm/v7", "oci"))
    multi = backend.index(repo_name, [amd, arm], ["multi"])
    df = backend.registry().get_repository(f"{backend.host}/{repo_name}")
    assert df["error"].isna().all()
    got = (
        df[
            [
                "tag",
                "kind",
                "media_type",
                "digest",
                "manifest_digest",
                "config_digest",
                "platform",
                "size",
                "layers",
            ]
        ]
        .astype(object)
        .values.tolist()
    )
    want = [
        [
            "docker",
            "image",
            DOCKER_MANIFEST,
            docker.digest,
            docker.digest,
            docker.config_digest,
            "linux/amd64",
            size_of(docker),
            2,
        ],
        [
            "multi",
            "index",
            OCI_INDEX,
            multi.digest,
            amd.digest,
            amd.config_digest,
            "linux/amd64",
            size_of(amd),
            2,
        ],
        [
            "multi",
            "index",
            OCI_INDEX,
            multi.digest,
            arm.digest,
            arm.config_digest,
            "linux/arm/v7",
            size_of(arm),
            2,
        ],
        [
            "oci",
            "image",
            OCI_MANIFEST,
            oci.digest,
            oci.digest,
            oci.config_digest,
            "linux/arm64/v8",
            size_of(oci),
            2,
        ],
    ]
    assert got == want
    assert (df["created"] == pd.Timestamp(CREATED)).all()
    assert df["registry"].unique().tolist() == [backend.host]
    assert df.set_index("tag").loc["docker", "labels"] == {"team": "core"}


def test_get_image_by_tag_and_by_digest(backend: Backend, repo_name: str) -> None:
    img = backend.image(repo_name, spec(repo_name), ["v1"])
    reg = backend.registry()
    by_tag = reg.get_image(f"{backend.host}/{repo_name}:v1")
    by_digest = reg.get_image(f"{backend.host}/{repo_name}@{img.digest}")
    assert by_tag["digest"].tolist() == by_digest["digest"].tolist() == [img.digest]
    assert by_tag["tag"].tolist() == ["v1"]
    columns = ["kind", "platform", "created", "config_digest", "size", "error"]
    pd.testing.assert_frame_equal(by_tag[columns], by_digest[columns])


def test_history(backend: Backend, repo_name: str) -> None:
    steps = (
        History(created=CREATED, created_by="ADD rootfs /"),
        History(created=CREATED, created_by="ENV X=1", empty_layer=True),
        History(created=CREATED, created_by="RUN make"),
    )
    backend.image(repo_name, spec(repo_name, history=steps), ["v1"])
    h = backend.registry().history(f"{backend.host}/{repo_name}:v1")
    assert h[["step", "created_by", "empty_layer"]].values.tolist() == [
        [0, "ADD rootfs /", False],
        [1, "ENV X=1", True],
        [2, "RUN make", False],
    ]
    assert (h["created"] == pd.Timestamp(CREATED)).all() and h["error"].isna().all()


# -- what is missing ---------------------------------------------------------------------


def test_a_missing_repository_and_a_missing_tag(backend: Backend, repo_name: str) -> None:
    backend.image(repo_name, spec(repo_name), ["v1"])
    reg = backend.registry()
    with pytest.raises(NotFound) as repo:
        reg.get_repository(f"{backend.host}/{repo_name}-never")
    assert repo.value.codes == ("NAME_UNKNOWN",)
    with pytest.raises(NotFound) as tag:
        reg.get_image(f"{backend.host}/{repo_name}:never")
    assert tag.value.codes == ("MANIFEST_UNKNOWN",)
    assert reg.requests["status"].tolist() == [404, 404]  # a 404 is an answer: not retried


# -- HEAD and the request log ------------------------------------------------------------


def test_head_gives_the_digest_and_media_type(backend: Backend, repo_name: str) -> None:
    img = backend.image(repo_name, spec(repo_name, fmt="oci"), ["v1"])
    remote = backend.registry().remote(backend.host)
    ref = parse_reference(f"{backend.host}/{repo_name}:v1")
    assert remote.head(ref) == (img.digest, OCI_MANIFEST)  # type: ignore[attr-defined]
    with pytest.raises(NotFound):
        remote.head(parse_reference(f"{backend.host}/{repo_name}:never"))  # type: ignore[attr-defined]


def test_request_log_kinds(backend: Backend, repo_name: str) -> None:
    amd = backend.image(repo_name, spec(f"{repo_name}/amd", "linux/amd64", "oci"))
    arm = backend.image(repo_name, spec(f"{repo_name}/arm", "linux/arm64", "oci"))
    backend.index(repo_name, [amd, arm], ["multi"])
    reg = backend.registry()
    reg.get_repository(f"{backend.host}/{repo_name}")
    reg.remote(backend.host).head(parse_reference(f"{backend.host}/{repo_name}:multi"))  # type: ignore[attr-defined]
    log = reg.requests
    assert sorted(log["kind"].tolist()) == sorted(
        ["tags", "manifest", "manifest", "manifest", "blob", "blob", "manifest_head"]
    )
    assert log["host"].unique().tolist() == [backend.host]
    assert (log["status"] == 200).all() and (log["attempt"] == 1).all() and (log["cache"] == "none").all()
    assert log["repository"].unique().tolist() == [repo_name]


# -- throttling --------------------------------------------------------------------------


def test_a_429_with_retry_after_is_retried(backend: Backend, repo_name: str) -> None:
    img = backend.image(repo_name, spec(repo_name), ["v1"])
    backend.throttle(repo_name, "v1", times=2, retry_after=0.1)
    reg = backend.registry()
    df = reg.get_image(f"{backend.host}/{repo_name}:v1")
    assert df["digest"].tolist() == [img.digest] and df["error"].isna().all()
    manifests = reg.requests[reg.requests["kind"] == "manifest"]
    assert manifests[["status", "attempt"]].values.tolist() == [[429, 1], [429, 2], [200, 3]]
    waits = manifests["started"].diff().dropna()
    assert (waits >= pd.Timedelta(0.09, "s")).all()  # Retry-After, not the 10 ms backoff


def test_a_dropped_connection_is_retried(backend: Backend, repo_name: str) -> None:
    img = backend.image(repo_name, spec(repo_name), ["v1"])
    backend.drop(repo_name, "v1", times=1)
    reg = backend.registry()
    df = reg.get_image(f"{backend.host}/{repo_name}:v1")
    assert df["digest"].tolist() == [img.digest] and df["error"].isna().all()
    manifests = reg.requests[reg.requests["kind"] == "manifest"]
    assert manifests["attempt"].tolist() == [1, 2]
    assert manifests["status"].isna().tolist() == [True, False]
    assert str(manifests["error"].iloc[0]).startswith("connection failed for GET http")


# -- the cache ---------------------------------------------------------------------------


def test_a_second_scan_comes_from_the_cache(backend: Backend, repo_name: str) -> None:
    amd = backend.image(repo_name, spec(f"{repo_name}/amd", "linux/amd64", "oci"))
    arm = backend.image(repo_name, spec(f"{repo_name}/arm", "linux/arm64", "oci"))
    backend.index(repo_name, [amd, arm], ["multi"])
    backend.image(repo_name, spec(repo_name), ["v1"])
    reg = backend.registry(cache="memory://")
    first = reg.get_repository(f"{backend.host}/{repo_name}")
    sent = len(reg.requests)
    assert set(reg.requests["cache"]) == {"miss"}
    again = reg.get_repository(f"{backend.host}/{repo_name}")
    pd.testing.assert_frame_equal(first, again)
    second = reg.requests.iloc[sent:]
    assert not second.empty and (second["cache"] == "hit").all() and (second["attempt"] == 0).all()


# -- auth --------------------------------------------------------------------------------


def test_basic_auth_a_challenge_then_credentials(basic_backend: Backend, repo_name: str) -> None:
    img = basic_backend.image(repo_name, spec(repo_name), ["v1"])
    repo = f"{basic_backend.host}/{repo_name}"
    with pytest.raises(Unauthorized):
        basic_backend.registry().tags(repo)
    reg = basic_backend.registry(credentials=Credentials.from_mapping({basic_backend.host: (USER, PASSWORD)}))
    assert reg.tags(repo) == ["v1"]
    assert reg.get_image(f"{repo}:v1")["digest"].tolist() == [img.digest]
    log = reg.requests
    assert log["status"].tolist()[:2] == [401, 200]  # the challenge, then with credentials
    assert (log["status"].iloc[1:] == 200).all()
    assert PASSWORD not in log.to_string() and PASSWORD not in repr(reg)
    with pytest.raises(Unauthorized):
        basic_backend.registry(
            credentials=Credentials.from_mapping({basic_backend.host: (USER, "wrong")})
        ).tags(repo)

"""References parse the way Docker parses them; anything else raises InvalidReference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from regdata import InvalidReference, Reference, Repository, parse_reference, parse_repository
from regdata.oci.reference import api_host, canonical_host, is_loopback_host

D = "sha256:" + "a" * 64

CASES = [
    ("alpine", "docker.io", "library/alpine", None, None),
    ("alpine:3.19", "docker.io", "library/alpine", "3.19", None),
    ("library/alpine", "docker.io", "library/alpine", None, None),
    ("docker.io/alpine", "docker.io", "library/alpine", None, None),
    ("index.docker.io/alpine:3", "docker.io", "library/alpine", "3", None),
    ("registry-1.docker.io/bitnami/redis", "docker.io", "bitnami/redis", None, None),
    ("bitnami/redis:7.2", "docker.io", "bitnami/redis", "7.2", None),
    ("ghcr.io/org/app", "ghcr.io", "org/app", None, None),
    ("localhost/app", "localhost", "app", None, None),
    ("localhost:5000/app:1", "localhost:5000", "app", "1", None),
    ("127.0.0.1:5000/team/sub/app:v1.2.3", "127.0.0.1:5000", "team/sub/app", "v1.2.3", None),
    ("[::1]:5000/app", "[::1]:5000", "app", None, None),
    (f"alpine@{D}", "docker.io", "library/alpine", None, D),
    (f"quay.io/a/b:tag@{D}", "quay.io", "a/b", "tag", D),
    ("a.b/c__d/e-f/g.h", "a.b", "c__d/e-f/g.h", None, None),
    ("Host.example/app", "Host.example", "app", None, None),
    ("example.com:443/x_y:Tag_1.0-rc", "example.com:443", "x_y", "Tag_1.0-rc", None),
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), CASES)
def test_parses_like_docker(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert parse_reference(str(ref)) == ref


BAD = [
    ("", "empty reference"),
    (" alpine", "white space"),
    ("Alpine", "must be lowercase"),
    ("a/B", "must be lowercase"),
    ("alpine:", "invalid tag ''"),
    ("alpine:-x", "invalid tag"),
    ("alpine:" + "t" * 129, "invalid tag"),
    ("alpine@sha256:abc", "invalid digest"),
    ("alpine@sha256:" + "a" * 63, "64 hex characters, got 63"),
    ("alpine@sha256:" + "a" * 70, "64 hex characters"),
    ("a" * 64, "image ID"),
    ("example.com/", "empty path component"),
    ("example.com//a", "empty path component"),
    ("a/-b", "invalid path component"),
    ("a..b/c", "invalid registry host"),
    ("example.com/a:b:c", "invalid"),
    ("x" * 256, "longer than 255"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_input_names_input_and_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_default_tag_and_identifier() -> None:
    ref = parse_reference("alpine", default_tag=True)
    assert ref.tag == "latest" and ref.identifier == "latest"
    assert parse_reference(f"alpine:1@{D}").identifier == D
    assert str(parse_reference("alpine", default_tag=True)) == "docker.io/library/alpine:latest"


def test_repository_value_and_names() -> None:
    repo = parse_repository("alpine")
    assert repo == Repository("docker.io", "library/alpine")
    assert repo.api_host == "registry-1.docker.io" and repo.name == "alpine"
    assert parse_repository("ghcr.io/o/a").name == "ghcr.io/o/a"
    assert repo.with_tag("3") == parse_reference("alpine:3")
    assert parse_repository(parse_reference("alpine:3")) == repo
    with pytest.raises(InvalidReference, match="takes no tag"):
        parse_repository("alpine:3")


def test_hosts() -> None:
    assert canonical_host("https://index.docker.io/v1/") == "docker.io"
    assert canonical_host("Registry-1.Docker.IO") == "docker.io"
    assert api_host("docker.io") == "registry-1.docker.io" and api_host("ghcr.io") == "ghcr.io"
    assert is_loopback_host("127.0.0.1:5000") and is_loopback_host("localhost")
    assert is_loopback_host("[::1]:80") and not is_loopback_host("example.com:5000")
    assert not is_loopback_host("10.0.0.1")


def test_reference_objects_pass_through() -> None:
    ref = parse_reference("alpine:3")
    assert parse_reference(ref) is ref
    assert parse_reference(Repository("ghcr.io", "a/b")) == Reference("ghcr.io", "a/b")


_alnum = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_sep = st.sampled_from([".", "_", "__", "-", "--"])
_component = st.builds(
    lambda first, rest: first + "".join(s + a for s, a in rest),
    _alnum,
    st.lists(st.tuples(_sep, _alnum), max_size=2),
)
_host = st.builds(
    lambda labels, port: ".".join(labels) + (f":{port}" if port is not None else ""),
    st.lists(_alnum, min_size=2, max_size=3),
    st.one_of(st.none(), st.integers(1, 65535)),
)
_tag = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from("aZ09_"),
    st.text(alphabet="abcXYZ019_.-", max_size=20),
)
_digest = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256:" + h)


@settings(max_examples=300, deadline=None)
@given(
    host=st.one_of(st.none(), _host),
    path=st.lists(_component, min_size=1, max_size=4),
    tag=st.one_of(st.none(), _tag),
    digest=st.one_of(st.none(), _digest),
)
def test_round_trip(host: str | None, path: list[str], tag: str | None, digest: str | None) -> None:
    if host is None and ("." in path[0] or path[0] == "localhost"):
        path = ["lib", *path]  # Docker would read that first component as a host
    text = "/".join(([host] if host else []) + path)
    if tag:
        text += f":{tag}"
    if digest:
        text += f"@{digest}"
    ref = parse_reference(text)
    assert (ref.tag, ref.digest) == (tag, digest)
    assert parse_reference(str(ref)) == ref
    assert ref.repository.endswith("/".join(path))


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=80))
def test_any_string_parses_or_raises_invalid_reference(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        assert text in str(exc) or repr(text) in str(exc)
    else:
        assert parse_reference(str(ref)) == ref


def test_one_digest_pattern() -> None:
    """Every digest is read by regdata.oci.digest's one pattern: no module writes its own."""
    from pathlib import Path

    from regdata.oci.digest import is_digest, is_verifiable

    hex64 = "ab" * 32
    assert is_verifiable(f"sha256:{hex64}") and is_verifiable(f"sha512:{hex64 * 2}")
    assert not is_verifiable(f"sha256:{hex64.upper()}") and not is_verifiable(f"sha256:{hex64[:-1]}")
    assert not is_verifiable(f"sha384:{hex64}") and is_digest(f"sha384:{hex64}")
    assert not is_digest("sha256") and not is_digest(f"SHA256:{hex64}")
    root = Path(__file__).parent.parent / "regdata"
    writers = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if any(s in p.read_text() for s in ("[0-9a-f]{64}", "[a-f0-9]{64}", "[0-9a-fA-F]{32"))
    )
    assert writers == [], writers

"""get_repositories in one process, against the real registries: many repositories, one frame."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import regdata
from regdata import cli
from regdata.client.many import Catalog
from regdata.frames import IMAGES
from tests.support.builder import Builder, ImageSpec
from tests.support.inflight import CountingProxy
from tests.support.registry_server import RegistryServer
from tests.test_registry import assert_schema

PREFIX = "many"


def client(**kwargs: object) -> regdata.Registry:
    kwargs.setdefault("cache", None)
    kwargs.setdefault("credentials", regdata.Credentials.none())
    return regdata.Registry(**kwargs)  # type: ignore[arg-type]


def fill(builder: Builder, prefix: str, count: int, tags: int = 3) -> list[str]:
    """``count`` repositories of ``tags`` tags: single images, an index, shared digests."""
    names = []
    for i in range(count):
        name = f"{prefix}/r{i}"
        for t in range(tags):
            builder.push_image(
                name,
                ImageSpec(
                    created=f"2024-0{1 + t % 9}-0{1 + i % 9}T00:00:00Z",
                    labels={"repo": str(i), "tag": str(t)},
                ),
                tags=[f"v{t}"],
            )
        if i % 2 == 0:
            builder.push_multiarch(name, ["linux/amd64", "linux/arm64/v8"], tags=["multi", "latest"])
        names.append(name)
    return names


@pytest.fixture(scope="module")
def repos(registry: RegistryServer, builder: Builder) -> list[str]:
    return [f"{registry.host}/{name}" for name in fill(builder, PREFIX, 6)]


def one_by_one(reg: regdata.Registry, names: list[str]) -> pd.DataFrame:
    frames = [reg.get_repository(name) for name in names]
    return pd.concat(frames, ignore_index=True)


def test_the_frame_is_get_repository_for_each_in_the_order_given(repos: list[str]) -> None:
    order = [repos[3], repos[0], repos[5], repos[1], repos[4], repos[2]]
    df = client().get_repositories([*order, order[0]])  # a repository named twice is read once
    assert_schema(df, IMAGES)
    expected = one_by_one(client(), order)
    pd.testing.assert_frame_equal(df, expected)
    assert df["error"].isna().all()
    assert list(dict.fromkeys(df["repository"])) == [name.split("/", 1)[1] for name in order]
    # Whatever the timing: one repository at a time gives the same frame.
    pd.testing.assert_frame_equal(client(concurrency=1).get_repositories(order, per_host=1), df)


def test_repositories_references_and_a_catalog(registry: RegistryServer, repos: list[str]) -> None:
    reg = client()
    given = [regdata.parse_repository(repos[0]), regdata.parse_reference(repos[1] + ":v0"), repos[2]]
    df = reg.get_repositories(given)
    assert set(df["repository"]) == {f"{PREFIX}/r0", f"{PREFIX}/r1", f"{PREFIX}/r2"}
    assert df[df["repository"] == f"{PREFIX}/r1"]["tag"].nunique() == 3  # the whole repository
    catalog = reg.catalog(registry.host)
    assert isinstance(catalog, Catalog) and catalog.registry == registry.host
    assert catalog == sorted(catalog) and f"{PREFIX}/r0" in catalog  # still a list of names
    mine = Catalog([n for n in catalog if n.startswith(f"{PREFIX}/")], registry=registry.host)
    pd.testing.assert_frame_equal(reg.get_repositories(mine), one_by_one(client(), repos))
    by_host = reg.get_repositories([n.split("/", 1)[1] for n in repos[:2]], registry=registry.host)
    assert set(by_host["repository"]) == {f"{PREFIX}/r0", f"{PREFIX}/r1"}
    with pytest.raises(TypeError, match="get_repository"):
        reg.get_repositories(repos[0])  # type: ignore[arg-type]


def test_a_repository_that_cannot_be_read_is_one_row(registry: RegistryServer, repos: list[str]) -> None:
    unknown = f"{registry.host}/{PREFIX}/no-such-repository"
    refused = "127.0.0.1:1/nothing/listens"  # port 1: connection refused, at once
    df = client(timeout=5).get_repositories([repos[0], unknown, "Not A Name", refused, repos[1]])
    assert_schema(df, IMAGES)
    bad = df[df["tag"].isna()]
    assert bad["repository"].tolist() == [f"{PREFIX}/no-such-repository", "Not A Name", "nothing/listens"]
    assert "NotFound" in bad.iloc[0]["error"] and "NAME_UNKNOWN" in bad.iloc[0]["error"]
    assert pd.isna(bad.iloc[1]["registry"]) and "InvalidReference" in bad.iloc[1]["error"]
    assert bad.iloc[2]["registry"] == "127.0.0.1:1" and "TransportError" in bad.iloc[2]["error"]
    good = df[df["tag"].notna()]
    pd.testing.assert_frame_equal(good.reset_index(drop=True), one_by_one(client(), repos[:2]))
    assert good["error"].isna().all()
    empty = client().get_repositories([])
    assert empty.empty
    assert_schema(empty, IMAGES)


def test_auth_modes_each_repository_its_own_answer(
    htpasswd_registry: RegistryServer,
    htpasswd_builder: Builder,
    token_registry: RegistryServer,
    token_builder: Builder,
) -> None:
    htpasswd_builder.push_image("many/app", ImageSpec(), tags=["1"])
    token_builder.push_image("public/many", ImageSpec(), tags=["1", "2"])
    token_builder.push_image("private/many", ImageSpec(), tags=["1"])
    hp, tk = htpasswd_registry.host, token_registry.host
    names = [f"{hp}/many/app", f"{tk}/public/many", f"{tk}/private/many"]
    anonymous = client().get_repositories(names)
    by_repo = {r: g for r, g in anonymous.groupby("repository")}
    assert "Unauthorized" in by_repo["many/app"]["error"].iloc[0]
    assert by_repo["public/many"]["error"].isna().all() and len(by_repo["public/many"]) == 2
    assert "Unauthorized" in by_repo["private/many"]["error"].iloc[0]
    alice = regdata.Credentials.from_mapping(
        {hp: ("alice", htpasswd_registry.users["alice"]), tk: ("alice", token_registry.users["alice"])}
    )
    df = client(credentials=alice).get_repositories(names)
    assert df["error"].isna().all() and len(df) == 4
    assert "Secret" not in df.to_csv() and "Token" not in df.to_csv()


def test_the_host_limit_holds_across_repositories(registry: RegistryServer, repos: list[str]) -> None:
    with CountingProxy(registry.host, delay=0.02) as proxy:
        names = [name.replace(registry.host, proxy.host) for name in repos]
        reg = client(concurrency=3)
        df = reg.get_repositories(names)
    assert df["error"].isna().all()
    assert proxy.max_in_flight == 3  # reached, never passed
    pd.testing.assert_frame_equal(
        df.drop(columns="registry"), one_by_one(client(), repos).drop(columns="registry")
    )


def test_one_progress_count_of_tags(repos: list[str]) -> None:
    calls: list[tuple[int, int]] = []
    lock = threading.Lock()

    def progress(done: int, total: int) -> None:
        with lock:
            calls.append((done, total))

    df = client(progress=progress).get_repositories(repos)
    tags = int(df.groupby("repository")["tag"].nunique().sum())
    assert calls[-1] == (tags, tags)
    assert all(done <= total for done, total in calls)
    assert len(client(progress=True).get_repositories(repos[:2])) > 0  # a tqdm bar on stderr


def test_budget_and_cancel_cover_the_whole_call(registry: RegistryServer, repos: list[str]) -> None:
    with CountingProxy(registry.host, delay=0.3) as proxy:
        names = [name.replace(registry.host, proxy.host) for name in repos]
        started = time.monotonic()
        df = client(budget=0.5, concurrency=2).get_repositories(names, per_host=2)
        assert time.monotonic() - started < 5
        assert set(df["repository"]) == {n.split("/", 1)[1] for n in repos}  # every one has its rows
        assert df["error"].fillna("").str.contains("timed out").any()
        reg = client(concurrency=2)
        threading.Timer(0.4, reg.cancel).start()
        df = reg.get_repositories(names, per_host=2)
        assert set(df["repository"]) == {n.split("/", 1)[1] for n in repos}
        assert (df["error"] == "cancelled").any()


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user credentials, no user cache: the CLI reads both from the environment."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("REGDATA_CACHE", "memory://")


def cli_csv(capsys: pytest.CaptureFixture[str], *argv: str) -> pd.DataFrame:
    assert cli.main([*argv, "--format", "csv", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return pd.read_csv(io.StringIO(out))


def test_cli_images_of_many_repositories(
    isolated: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    registry: RegistryServer,
    repos: list[str],
    tmp_path: Path,
) -> None:
    expected = one_by_one(client(), repos[:3])
    given = cli_csv(capsys, "images", *repos[:3])
    assert given["repository"].tolist() == expected["repository"].tolist()
    assert given["digest"].tolist() == expected["digest"].tolist()
    listing = tmp_path / "repos.txt"
    listing.write_text(f"# the first three\n{repos[0]}\n\n{repos[1]}\n{repos[2]}\n")
    pd.testing.assert_frame_equal(cli_csv(capsys, "images", "--from", str(listing)), given)
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(repos[:3])))
    pd.testing.assert_frame_equal(cli_csv(capsys, "images", "--from", "-"), given)
    everything = cli_csv(capsys, "images", "--catalog", registry.host)
    assert set(n.split("/", 1)[1] for n in repos) <= set(everything["repository"])
    # The table names the repository of each row; a bad one is a row and a warning, exit 0.
    assert cli.main(["images", repos[0], f"{registry.host}/{PREFIX}/nope", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split()[:2] == ["repository", "tag"]
    assert "1 of" in err and "rows have an error" in err
    assert cli.main(["images"]) == 2
    assert "required: reference" in capsys.readouterr().err

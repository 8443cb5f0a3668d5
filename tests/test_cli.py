"""The regdata command through its entry point, against the real registry: exact output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from regdata import cli
from regdata.analysis.snapshots import load_snapshot
from tests.support.builder import Builder, History, ImageSpec, Layer
from tests.support.proxy import Action, start_proxy
from tests.support.registry_server import RegistryServer


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user credentials, no user cache: the CLI reads both from the environment."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("REGDATA_CACHE", "memory://")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture(scope="module")
def app(registry: RegistryServer, builder: Builder) -> dict[str, object]:
    repo = "cli/app"
    one = builder.push_image(
        repo,
        ImageSpec(
            created="2024-01-02T03:04:05Z",
            labels={"team": "data", "tier": "web"},
            layers=(Layer.from_seed("cli-a"), Layer.from_seed("cli-b")),
            history=(
                History(created="2024-01-01T00:00:00Z", created_by="ADD rootfs.tar /"),
                History(created="2024-01-02T03:04:05Z", created_by="RUN make install"),
                History(created="2024-01-02T03:04:05Z", created_by='CMD ["app"]', empty_layer=True),
            ),
        ),
        tags=["1.0"],
    )
    two = builder.push_multiarch(
        repo,
        ["linux/amd64", "linux/arm64/v8"],
        tags=["2.0"],
        format="oci",
        spec=ImageSpec(created="2024-03-01T12:00:00Z"),
    )
    return {"repo": f"{registry.host}/{repo}", "host": registry.host, "one": one, "two": two}


def test_tags_table_lists_the_registry_tags(capsys: pytest.CaptureFixture[str], app: dict) -> None:
    code, out, err = run(capsys, "tags", app["repo"])
    assert (code, err) == (0, "")
    header, *tags = out.splitlines()
    assert header == "tag" and sorted(tags) == ["1.0", "2.0"]  # in the order the registry lists them


def test_images_csv_is_exact(capsys: pytest.CaptureFixture[str], app: dict) -> None:
    one = app["one"]
    code, out, err = run(
        capsys,
        "images",
        f"{app['repo']}:1.0",
        "--format",
        "csv",
        "--columns",
        "registry,repository,tag,kind,platform,created,size,layers,labels,digest,error",
    )
    size = sum(layer.size for layer in one.layers)
    assert code == 0 and err == ""
    assert out == (
        "registry,repository,tag,kind,platform,created,size,layers,labels,digest,error\n"
        f"{app['host']},cli/app,1.0,image,linux/amd64,2024-01-02T03:04:05Z,{size},2,"
        f'"{{""team"":""data"",""tier"":""web""}}",{one.digest},\n'
    )


def test_images_csv_carries_every_column_by_default(capsys: pytest.CaptureFixture[str], app: dict) -> None:
    code, out, _ = run(capsys, "images", f"{app['repo']}:2.0", "--format", "csv")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split(",") == [c for c, _ in __import__("regdata.frames").frames.IMAGES]
    assert len(rows) == 2


def test_images_json_is_exact(capsys: pytest.CaptureFixture[str], app: dict) -> None:
    two = app["two"]
    code, out, _ = run(
        capsys,
        "images",
        f"{app['repo']}:2.0",
        "--format",
        "json",
        "--columns",
        "tag,kind,platform,variant,created,size,manifest_digest",
    )
    assert code == 0
    amd64, arm64 = two.children
    assert json.loads(out) == [
        {
            "tag": "2.0",
            "kind": "index",
            "platform": "linux/amd64",
            "variant": None,
            "created": "2024-03-01T12:00:00Z",
            "size": sum(x.size for x in amd64.layers),
            "manifest_digest": amd64.digest,
        },
        {
            "tag": "2.0",
            "kind": "index",
            "platform": "linux/arm64/v8",
            "variant": "v8",
            "created": "2024-03-01T12:00:00Z",
            "size": sum(x.size for x in arm64.layers),
            "manifest_digest": arm64.digest,
        },
    ]
    # One object per line, between brackets: readable, and still one JSON document.
    lines = out.splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == 4


def test_platform_filter(capsys: pytest.CaptureFixture[str], app: dict) -> None:
    code, out, _ = run(
        capsys,
        "images",
        f"{app['repo']}:2.0",
        "--platform",
        "linux/arm64",
        "--format",
        "csv",
        "--columns",
        "tag,platform",
    )
    assert (code, out) == (0, "tag,platform\n2.0,linux/arm64/v8\n")


def test_repository_table_has_a_header_and_aligned_rows(
    capsys: pytest.CaptureFixture[str], app: dict
) -> None:
    code, out, _ = run(capsys, "images", app["repo"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["tag", "platform", "created", "size", "layers", "digest", "error"]
    assert len(lines) == 4  # 2.0 twice (two platforms), then 1.0
    assert [line.split()[0] for line in lines[1:]] == ["2.0", "2.0", "1.0"]
    assert lines[3].split()[2:4] == ["2024-01-02", "03:04"]
    # Numbers are right-aligned under their header.
    column = lines[0].index("layers") + len("layers")
    assert [line[column - 1] for line in lines[1:]] == ["1", "1", "2"]


def test_history_csv_is_exact(capsys: pytest.CaptureFixture[str], app: dict) -> None:
    code, out, _ = run(
        capsys,
        "history",
        f"{app['repo']}:1.0",
        "--format",
        "csv",
        "--columns",
        "tag,platform,step,created,created_by,empty_layer",
    )
    assert code == 0
    assert out == (
        "tag,platform,step,created,created_by,empty_layer\n"
        "1.0,linux/amd64,0,2024-01-01T00:00:00Z,ADD rootfs.tar /,false\n"
        "1.0,linux/amd64,1,2024-01-02T03:04:05Z,RUN make install,false\n"
        '1.0,linux/amd64,2,2024-01-02T03:04:05Z,"CMD [""app""]",true\n'
    )


def test_catalog_lists_repositories(capsys: pytest.CaptureFixture[str], app: dict) -> None:
    code, out, _ = run(capsys, "catalog", app["host"], "--format", "json")
    assert code == 0
    assert {"repository": "cli/app"} in json.loads(out)


def test_parquet_keeps_the_frame(capsys: pytest.CaptureFixture[str], app: dict, tmp_path: Path) -> None:
    target = tmp_path / "images.parquet"
    code, out, _ = run(capsys, "images", app["repo"], "--format", "parquet", "-o", str(target))
    assert (code, out) == (0, "")
    frame = load_snapshot(target)
    assert sorted(frame["tag"]) == ["1.0", "2.0", "2.0"]
    assert str(frame["created"].dtype) == "datetime64[ns, UTC]"
    assert frame.loc[frame["tag"] == "1.0", "labels"].iloc[0] == {"team": "data", "tier": "web"}


def test_output_file(capsys: pytest.CaptureFixture[str], app: dict, tmp_path: Path) -> None:
    target = tmp_path / "deep" / "tags.csv"
    code, out, _ = run(capsys, "tags", app["repo"], "--format", "csv", "-o", str(target))
    assert (code, out) == (0, "")
    assert target.read_text() in ("tag\n1.0\n2.0\n", "tag\n2.0\n1.0\n")


def test_stats_go_to_stderr(capsys: pytest.CaptureFixture[str], app: dict) -> None:
    code, out, err = run(capsys, "tags", app["repo"], "--stats")
    assert code == 0 and out.startswith("tag\n")
    assert err.startswith("requests: ") and "1 tags" in err
    assert "cache: MemoryBackend" in err or "cache: " in err


# -- errors: one line, an exit code, no traceback ------------------------------------


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["images", "Bad Name:1"], 2, "regdata: invalid reference 'Bad Name:1'"),
        (["images", "{host}/cli/nosuch"], 3, "regdata: not found: 404 from {host}/v2/cli/nosuch/tags/list"),
        (["images", "{host}/cli/app:9.9"], 3, "regdata: not found: 404 from {host}/v2/cli/app/manifests/9.9"),
        (["history", "{host}/cli/app@sha256:" + "0" * 64], 3, "regdata: not found: 404"),
        (["tags", "127.0.0.1:1/cli/app", "--timeout", "2", "--retries", "1"], 5, "regdata: unreachable: "),
        (["images", "{host}/cli/app", "--format", "parquet"], 2, "regdata: --format parquet needs -o FILE"),
        (
            ["images", "{host}/cli/app", "--columns", "tag,nope"],
            2,
            "regdata: unknown column nope; columns are: ",
        ),
        (["tags", "{host}/cli/app", "--cache", "redis://x"], 2, "regdata: unknown cache 'redis://x'"),
        (["freshness", "/nonexistent/fleet.yaml"], 3, "regdata: no such fleet file: /nonexistent/fleet.yaml"),
    ],
)
def test_errors_are_one_line_with_an_exit_code(
    capsys: pytest.CaptureFixture[str], app: dict, argv: list[str], code: int, message: str
) -> None:
    argv = [a.replace("{host}", app["host"]) for a in argv]
    got, out, err = run(capsys, *argv)
    assert got == code, err
    assert out == ""
    assert err.startswith(message.replace("{host}", app["host"])), err
    assert len(err.strip().splitlines()) == 1


def test_unauthorized_is_exit_4(
    capsys: pytest.CaptureFixture[str], htpasswd_registry: RegistryServer
) -> None:
    code, out, err = run(capsys, "tags", f"{htpasswd_registry.host}/private/app")
    assert (code, out) == (4, "")
    assert err.startswith(
        f"regdata: access denied: 401 from {htpasswd_registry.host}/v2/private/app/tags/list"
    )


def test_server_error_is_exit_6(capsys: pytest.CaptureFixture[str], app: dict) -> None:
    proxy = start_proxy(app["host"])
    try:
        proxy.add(lambda seen: Action(status=500, body=b"boom") if "/tags/" in seen.path else None)
        code, out, err = run(capsys, "tags", f"{proxy.host}/cli/app")
    finally:
        proxy.stop()
    assert (code, out) == (6, "")
    assert err.startswith(f"regdata: registry error: 500 from {proxy.host}/v2/cli/app/tags/list")


def test_budget_is_exit_7(capsys: pytest.CaptureFixture[str], app: dict) -> None:
    proxy = start_proxy(app["host"])
    try:
        # Answered by the proxy itself, late: nothing is forwarded after the test is over.
        proxy.add(
            lambda seen: (
                Action(status=200, body=b'{"tags": []}', delay=1.5) if "/tags/" in seen.path else None
            )
        )
        code, out, err = run(capsys, "tags", f"{proxy.host}/cli/app", "--budget", "0.5")
    finally:
        proxy.stop()
    assert (code, out) == (7, "")
    assert err.startswith("regdata: timed out"), err


def test_usage_errors_are_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["images"])
    _, err = capsys.readouterr()
    assert code == 2 and "the following arguments are required: reference" in err
    code = cli.main(["tags", "x", "--mirror", "nohost"])
    _, err = capsys.readouterr()
    assert code == 2 and "expected REGISTRY=HOST" in err
    code = cli.main(["tags", "x", "--concurrency", "0"])
    _, err = capsys.readouterr()
    assert code == 2 and "must be at least 1" in err
    code = cli.main(["freshness", "fleet.yaml", "--now", "yesterday-ish"])
    _, err = capsys.readouterr()
    assert code == 2 and "expected a time such as" in err
    code = cli.main(["freshness", "fleet.yaml", "--within", "patch"])
    _, err = capsys.readouterr()
    assert code == 2 and "choose from 'track', 'major', 'minor'" in err


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("tags", "images", "history", "catalog", "freshness", "report", "demo", "sandbox", "diff"):
        assert command in out
    assert "exit codes:" in out
    for code in cli.EXIT_CODES:
        assert f"  {code:>3}  " in out
    assert cli.main(["images", "--help"]) == 0
    assert "--platform" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("regdata ")


def test_emit_formats_na_times_and_containers() -> None:
    frame = pd.DataFrame(
        {
            "name": pd.Series(["a", None], dtype="string"),
            "when": pd.to_datetime(["2024-01-02T03:04:05.5Z", None], utc=True),
            "n": pd.Series([1, None], dtype="Int64"),
            "labels": pd.Series([{"k": "v"}, {}], dtype=object),
            "ok": [True, False],
        }
    )
    import io

    buffer = io.StringIO()
    cli.emit(frame, "csv", stdout=buffer)
    assert buffer.getvalue() == (
        'name,when,n,labels,ok\na,2024-01-02T03:04:05.5Z,1,"{""k"":""v""}",true\n,,,{},false\n'
    )
    buffer = io.StringIO()
    cli.emit(frame, "json", stdout=buffer)
    assert json.loads(buffer.getvalue()) == [
        {"name": "a", "when": "2024-01-02T03:04:05.5Z", "n": 1, "labels": {"k": "v"}, "ok": True},
        {"name": None, "when": None, "n": None, "labels": {}, "ok": False},
    ]
    buffer = io.StringIO()
    cli.emit(frame.iloc[0:0], "json", stdout=buffer)
    assert buffer.getvalue() == "[]\n"


def test_sandbox_error_maps_to_exit_9() -> None:
    from regdata.sandbox import SandboxError

    code, message = cli.describe_error(SandboxError("not installed: run `apt-get install docker-registry`"))
    assert code == 9 and "apt-get install docker-registry" in message

"""Tests of regdata.credentials: config files, auth files, helpers, precedence, secrecy."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

from regdata.credentials import (
    Credential,
    Credentials,
    auth_file_paths,
    docker_config_path,
)
from regdata.errors import CredentialsError
from tests.support.builder import Builder, ImageSpec
from tests.support.registry_server import RegistryServer

SECRET = "s3cr3t-PLANTED"
HELPERS = Path(__file__).parent / "helpers"
HELPER = "regdatatest"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def assert_secret_free(exc: BaseException) -> None:
    """Neither the message, the repr nor the printed traceback shows the planted secret."""
    assert SECRET not in str(exc)
    assert SECRET not in repr(exc)
    assert SECRET not in "".join(traceback.format_exception(exc))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean HOME, no credential env vars, the fake helper on PATH, a call log."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in (
        "DOCKER_CONFIG",
        "REGISTRY_AUTH_FILE",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "REGDATA_TEST_HELPER_MODE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", f"{HELPERS.resolve()}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("REGDATA_TEST_HELPER_LOG", str(tmp_path / "helper.log"))
    return home


def helper_calls(home: Path) -> list[str]:
    log = home.parent / "helper.log"
    return log.read_text().splitlines() if log.exists() else []


def docker_config(home: Path, data: Any) -> Path:
    return write_json(home / ".docker" / "config.json", data)


# --- Credential ----------------------------------------------------------------


def test_credential_repr_hides_secrets() -> None:
    cred = Credential("alice", SECRET, identity_token=SECRET, registry_token=SECRET)
    for text in (repr(cred), str(cred), f"{cred}", repr([cred])):
        assert SECRET not in text
    assert repr(Credential("alice", SECRET)) == "Credential(username='alice', password=<set>)"
    assert repr(Credential(identity_token=SECRET)) == "Credential(identity_token=<set>)"
    assert repr(Credential.anonymous()) == "Credential()"


def test_credential_truthiness() -> None:
    assert not Credential.anonymous()
    assert not Credential(username="", password="")
    assert Credential("alice", "pw")
    assert Credential(registry_token="t")
    assert Credential.anonymous() == Credential()


def test_credential_identity() -> None:
    alice = Credential("alice", SECRET)
    assert Credential.anonymous().identity() == "anonymous"
    assert alice.identity() == Credential("alice", SECRET).identity()
    assert len(alice.identity()) == 16
    int(alice.identity(), 16)
    others = [
        Credential("bob", SECRET),
        Credential("alice", SECRET + "x"),
        Credential("alice", identity_token=SECRET),
        Credential("alice", registry_token=SECRET),
        Credential("alice:" + SECRET),
        Credential("alice", ""),
    ]
    identities = {alice.identity(), *(c.identity() for c in others)}
    assert len(identities) == len(others) + 1
    assert SECRET not in alice.identity()


# --- file locations ------------------------------------------------------------


def test_paths_read_environment_at_call_time(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert docker_config_path() == home / ".docker" / "config.json"
    assert auth_file_paths() == [home / ".config" / "containers" / "auth.json"]
    monkeypatch.setenv("DOCKER_CONFIG", "/elsewhere")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/cfg")
    assert docker_config_path() == Path("/elsewhere/config.json")
    assert auth_file_paths() == [
        Path("/run/user/7/containers/auth.json"),
        Path("/cfg/containers/auth.json"),
    ]
    monkeypatch.setenv("REGISTRY_AUTH_FILE", "/explicit.json")
    assert auth_file_paths() == [Path("/explicit.json")]


# --- docker config -------------------------------------------------------------


def test_missing_files_mean_no_credentials(home: Path) -> None:
    for creds in (
        Credentials.from_docker_config(),
        Credentials.from_auth_file(),
        Credentials.default(),
        Credentials.from_docker_config(home / "nope.json"),
        Credentials.none(),
    ):
        assert creds.hosts() == []
        assert creds.for_host("ghcr.io") == Credential.anonymous()


def test_docker_config_auths(home: Path) -> None:
    docker_config(
        home,
        {
            "auths": {
                "ghcr.io": {"auth": b64(f"alice:{SECRET}:with:colons")},
                "quay.io": {"username": "bob", "password": SECRET},
                "gcr.io": {"auth": b64("_token:x"), "identitytoken": SECRET},
                "r.example.com": {"registrytoken": SECRET},
                "empty.example.com": {},
                "mail.example.com": {"email": "a@b.c"},
            }
        },
    )
    creds = Credentials.from_docker_config()
    assert creds.for_host("ghcr.io") == Credential("alice", f"{SECRET}:with:colons")
    assert creds.for_host("quay.io") == Credential("bob", SECRET)
    assert creds.for_host("gcr.io") == Credential("_token", "x", identity_token=SECRET)
    assert creds.for_host("r.example.com") == Credential(registry_token=SECRET)
    assert not creds.for_host("empty.example.com")
    assert not creds.for_host("mail.example.com")
    assert creds.hosts() == ["gcr.io", "ghcr.io", "quay.io", "r.example.com"]
    assert SECRET not in repr(creds)


def test_auth_field_wins_over_username_password(home: Path) -> None:
    docker_config(home, {"auths": {"ghcr.io": {"auth": b64("alice:one"), "username": "x", "password": "y"}}})
    assert Credentials.from_docker_config().for_host("ghcr.io") == Credential("alice", "one")


def test_docker_config_env_var(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docker_config(home, {"auths": {"ghcr.io": {"auth": b64("home:pw")}}})
    write_json(tmp_path / "dc" / "config.json", {"auths": {"ghcr.io": {"auth": b64("env:pw")}}})
    assert Credentials.from_docker_config().for_host("ghcr.io").username == "home"
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    assert Credentials.from_docker_config().for_host("ghcr.io").username == "env"


def test_host_normalisation_and_docker_hub_aliases(home: Path) -> None:
    docker_config(
        home,
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": b64("hub:pw")},
                "HTTPS://GHCR.IO/": {"auth": b64("gh:pw")},
                "localhost:5000": {"auth": b64("five:pw")},
                "http://localhost/v2/": {"auth": b64("plain:pw")},
            }
        },
    )
    creds = Credentials.from_docker_config()
    assert creds.hosts() == ["docker.io", "ghcr.io", "localhost", "localhost:5000"]
    for alias in (
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "Registry-1.Docker.IO",
        "https://index.docker.io/v1/",
        "docker.io/library/alpine",
    ):
        assert creds.for_host(alias).username == "hub", alias
    assert creds.for_host("ghcr.io").username == "gh"
    assert creds.for_host("https://ghcr.io/v2/").username == "gh"
    assert creds.for_host("localhost:5000").username == "five"
    assert creds.for_host("localhost").username == "plain"
    assert not creds.for_host("localhost:5001")


# --- containers auth files -----------------------------------------------------


def test_auth_file_locations(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_json(
        home / ".config" / "containers" / "auth.json",
        {"auths": {"quay.io": {"auth": b64("cfg:pw")}, "ghcr.io": {"auth": b64("cfg:pw")}}},
    )
    assert Credentials.from_auth_file().for_host("quay.io").username == "cfg"

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    write_json(
        tmp_path / "run" / "containers" / "auth.json",
        {"auths": {"quay.io": {"auth": b64("run:pw")}}},
    )
    creds = Credentials.from_auth_file()
    assert creds.for_host("quay.io").username == "run"
    assert creds.for_host("ghcr.io").username == "cfg"

    write_json(tmp_path / "explicit.json", {"auths": {"quay.io": {"auth": b64("explicit:pw")}}})
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "explicit.json"))
    creds = Credentials.from_auth_file()
    assert creds.for_host("quay.io").username == "explicit"
    assert not creds.for_host("ghcr.io")
    assert Credentials.from_auth_file(tmp_path / "run" / "containers" / "auth.json").hosts() == ["quay.io"]


def test_auth_file_namespaced_keys(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "auth.json",
        {
            "auths": {
                "quay.io/org": {"auth": b64("scoped:pw")},
                "quay.io": {"auth": b64("bare:pw")},
                "ghcr.io/one": {"auth": b64("first:pw")},
                "ghcr.io/two": {"auth": b64("second:pw")},
                "docker.io/library": {"auth": b64("hub:pw")},
            }
        },
    )
    creds = Credentials.from_auth_file(path)
    assert creds.for_host("quay.io").username == "bare"
    assert creds.for_host("quay.io/org/app").username == "bare"
    assert creds.for_host("ghcr.io").username == "first"
    assert creds.for_host("registry-1.docker.io").username == "hub"
    assert creds.hosts() == ["docker.io", "ghcr.io", "quay.io"]


def test_empty_auth_file(tmp_path: Path) -> None:
    (tmp_path / "auth.json").write_text("  \n")
    assert Credentials.from_auth_file(tmp_path / "auth.json").hosts() == []


# --- precedence ----------------------------------------------------------------


def test_default_prefers_auth_file_then_docker_config(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_json(
        home / ".config" / "containers" / "auth.json",
        {"auths": {"quay.io": {"auth": b64("podman:pw")}}},
    )
    docker_config(
        home,
        {"auths": {"quay.io": {"auth": b64("docker:pw")}, "ghcr.io": {"auth": b64("docker:pw")}}},
    )
    creds = Credentials.default()
    assert creds.for_host("quay.io").username == "podman"
    assert creds.for_host("ghcr.io").username == "docker"
    assert creds.hosts() == ["ghcr.io", "quay.io"]

    write_json(tmp_path / "explicit.json", {"auths": {"ghcr.io": {"auth": b64("explicit:pw")}}})
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "explicit.json"))
    creds = Credentials.default()
    assert creds.for_host("ghcr.io").username == "explicit"
    assert creds.for_host("quay.io").username == "docker"  # REGISTRY_AUTH_FILE hides ~/.config


def test_merge_other_wins() -> None:
    base = Credentials.from_mapping({"a.io": ("base", "pw"), "b.io": ("base", "pw")})
    top = Credentials.from_mapping({"b.io": ("top", "pw"), "c.io": Credential(registry_token="t")})
    merged = base.merge(top)
    assert merged.for_host("a.io").username == "base"
    assert merged.for_host("b.io").username == "top"
    assert merged.for_host("c.io") == Credential(registry_token="t")
    assert merged.hosts() == ["a.io", "b.io", "c.io"]
    assert base.for_host("b.io").username == "base"
    assert not base.for_host("c.io")


def test_from_mapping_normalises_and_checks_types() -> None:
    creds = Credentials.from_mapping({"https://Index.Docker.io/v1/": ("hub", SECRET)})
    assert creds.for_host("docker.io") == Credential("hub", SECRET)
    assert creds.hosts() == ["docker.io"]
    with pytest.raises(TypeError, match=r"ghcr\.io"):
        Credentials.from_mapping({"ghcr.io": "alice:pw"})  # type: ignore[dict-item]


# --- credential helpers --------------------------------------------------------


def test_cred_helper_lazy_and_cached(home: Path) -> None:
    docker_config(home, {"credHelpers": {"ghcr.io": HELPER, "https://index.docker.io/v1/": HELPER}})
    creds = Credentials.from_docker_config()
    assert helper_calls(home) == []
    assert creds.for_host("ghcr.io") == Credential("user@ghcr.io", SECRET)
    assert creds.for_host("https://ghcr.io") == Credential("user@ghcr.io", SECRET)
    assert not creds.for_host("quay.io")
    assert helper_calls(home) == ["get ghcr.io"]
    # Docker's stores key Docker Hub by the v1 index URL.
    assert creds.for_host("registry-1.docker.io").username == "user@https://index.docker.io/v1/"
    assert helper_calls(home) == ["get ghcr.io", "get https://index.docker.io/v1/"]
    assert creds.hosts() == ["docker.io", "ghcr.io"]
    assert SECRET not in repr(creds)


def test_helper_identity_token(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGDATA_TEST_HELPER_MODE", "token")
    docker_config(home, {"credHelpers": {"ghcr.io": HELPER}})
    assert Credentials.from_docker_config().for_host("ghcr.io") == Credential(identity_token=SECRET)


def test_helper_not_found_falls_back_to_inline(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGDATA_TEST_HELPER_MODE", "notfound")
    docker_config(
        home,
        {"credsStore": HELPER, "auths": {"ghcr.io": {"auth": b64("inline:pw")}, "quay.io": {}}},
    )
    creds = Credentials.from_docker_config()
    assert creds.for_host("ghcr.io") == Credential("inline", "pw")
    assert creds.for_host("quay.io") == Credential.anonymous()
    assert creds.for_host("quay.io") == Credential.anonymous()
    assert helper_calls(home) == ["get ghcr.io", "get quay.io"]


def test_creds_store_covers_every_host(home: Path) -> None:
    docker_config(home, {"credsStore": HELPER, "auths": {"ghcr.io": {}}})
    creds = Credentials.from_docker_config()
    assert creds.for_host("anything.example.com") == Credential("user@anything.example.com", SECRET)
    assert creds.hosts() == ["docker.io", "ghcr.io", "listed.example.com"]
    assert helper_calls(home) == ["get anything.example.com", "list "]


def test_creds_store_list_failure_gives_auths_keys(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGDATA_TEST_HELPER_MODE", "listfail")
    docker_config(home, {"credsStore": HELPER, "auths": {"ghcr.io": {}, "quay.io": {}}})
    assert Credentials.from_docker_config().hosts() == ["ghcr.io", "quay.io"]
    docker_config(home, {"credsStore": "not-installed", "auths": {"ghcr.io": {}}})
    assert Credentials.from_docker_config().hosts() == ["ghcr.io"]


def test_cred_helpers_win_over_creds_store(home: Path) -> None:
    docker_config(home, {"credsStore": "not-installed", "credHelpers": {"ghcr.io": HELPER}})
    creds = Credentials.from_docker_config()
    assert creds.for_host("ghcr.io").username == "user@ghcr.io"
    with pytest.raises(CredentialsError, match=r"docker-credential-not-installed.*quay\.io.*PATH"):
        creds.for_host("quay.io")


def test_auth_file_wins_without_running_docker_helper(home: Path) -> None:
    write_json(
        home / ".config" / "containers" / "auth.json",
        {"auths": {"ghcr.io": {"auth": b64("podman:pw")}}},
    )
    docker_config(home, {"credsStore": HELPER})
    creds = Credentials.default()
    assert creds.for_host("ghcr.io").username == "podman"
    assert helper_calls(home) == []
    assert creds.for_host("quay.io").username == "user@quay.io"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("fail", r"exit status 3: 'keychain is locked'"),
        ("failjson", r"exit status 3\Z"),
        ("garbage", r"answer is not JSON"),
    ],
)
def test_helper_failures(home: Path, monkeypatch: pytest.MonkeyPatch, mode: str, expected: str) -> None:
    monkeypatch.setenv("REGDATA_TEST_HELPER_MODE", mode)
    docker_config(home, {"credHelpers": {"ghcr.io": HELPER}})
    creds = Credentials.from_docker_config()
    with pytest.raises(CredentialsError, match=expected) as info:
        creds.for_host("ghcr.io")
    assert "docker-credential-regdatatest" in str(info.value)
    assert "ghcr.io" in str(info.value)
    assert_secret_free(info.value)


def test_helper_timeout(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGDATA_TEST_HELPER_MODE", "hang")
    docker_config(home, {"credHelpers": {"ghcr.io": HELPER}})
    creds = Credentials.from_docker_config(helper_timeout=0.3)
    start = time.monotonic()
    with pytest.raises(CredentialsError, match=r"regdatatest get for ghcr\.io: timed out after 0\.3s"):
        creds.for_host("ghcr.io")
    assert time.monotonic() - start < 3


@pytest.mark.parametrize("name", ["../evil", "/bin/sh", "a b", "", "x/y", "evil;rm"])
def test_invalid_helper_names_refused(home: Path, name: str) -> None:
    path = docker_config(home, {"credHelpers": {"ghcr.io": name}})
    with pytest.raises(CredentialsError, match="invalid credential helper name") as info:
        Credentials.from_docker_config(strict=True)
    assert str(path) in str(info.value)
    assert "ghcr.io" in str(info.value)
    if name:
        docker_config(home, {"credsStore": name})
        with pytest.raises(CredentialsError, match="credsStore: invalid credential helper name"):
            Credentials.from_docker_config(strict=True)


def test_helper_not_taken_from_relative_path(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(HELPERS / "docker-credential-regdatatest", tmp_path / "docker-credential-local")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f".{os.pathsep}{os.environ['PATH']}")
    docker_config(home, {"credHelpers": {"ghcr.io": "local"}})
    with pytest.raises(CredentialsError, match="not found on PATH"):
        Credentials.from_docker_config().for_host("ghcr.io")


# --- malformed files -----------------------------------------------------------


def _entry(value: Any) -> dict[str, Any]:
    return {"auths": {"ghcr.io": value, "quay.io": {"auth": b64(f"u:{SECRET}")}}}


MALFORMED: list[tuple[str, Any, list[str]]] = [
    (
        "broken JSON",
        '{"auths": {"quay.io": {"auth": "' + b64(f"u:{SECRET}") + '"}\n  "ghcr.io": 1}}',
        ["invalid JSON at line 2 column 3"],
    ),
    ("top level list", [SECRET], ["must hold a JSON object, not list"]),
    ("auths list", {"auths": [{"auth": SECRET}]}, ["'auths' must be a JSON object, not list"]),
    ("entry string", _entry(SECRET), ["entry 'ghcr.io'", "must be a JSON object, not str"]),
    ("bad base64", _entry({"auth": SECRET + "!!"}), ["entry 'ghcr.io'", "not valid base64"]),
    ("no colon", _entry({"auth": b64(SECRET)}), ["entry 'ghcr.io'", "no ':'"]),
    ("empty user", _entry({"auth": b64(":" + SECRET)}), ["entry 'ghcr.io'", "empty user name"]),
    (
        "not utf-8",
        _entry({"auth": base64.b64encode(b"\xff\xfe" + SECRET.encode()).decode()}),
        ["entry 'ghcr.io'", "not valid base64 of UTF-8"],
    ),
    (
        "password number",
        _entry({"username": "u", "password": 12345}),
        ["entry 'ghcr.io'", "'password' must be a string, not int"],
    ),
    (
        "auth list",
        _entry({"auth": [SECRET]}),
        ["entry 'ghcr.io'", "'auth' must be a string, not list"],
    ),
    (
        "credHelpers list",
        {"credHelpers": [SECRET], **_entry({})},
        ["'credHelpers' must be a JSON object"],
    ),
    ("credsStore number", {"credsStore": 7, **_entry({})}, ["credsStore", "must be a string"]),
    ("empty key", {"auths": {"": {"auth": b64(f"u:{SECRET}")}}}, ["entry ''", "no registry host"]),
]


@pytest.mark.parametrize(("case", "content", "fragments"), MALFORMED, ids=[m[0] for m in MALFORMED])
@pytest.mark.parametrize("loader", ["docker", "auth"])
def test_malformed_files(tmp_path: Path, case: str, content: Any, fragments: list[str], loader: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    load = Credentials.from_docker_config if loader == "docker" else Credentials.from_auth_file
    with pytest.raises(CredentialsError) as info:
        load(path, strict=True)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message
    assert_secret_free(info.value)


def test_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "bytes.json").write_bytes(b'{"auths": {"\xff": {}}}')
    with pytest.raises(CredentialsError, match=r"bytes\.json: not UTF-8 text"):
        Credentials.from_docker_config(tmp_path / "bytes.json", strict=True)
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(CredentialsError, match=r"dir\.json: cannot be read"):
        Credentials.from_auth_file(tmp_path / "dir.json", strict=True)


def test_anonymous_mapping_value_does_not_hide_lower_source() -> None:
    base = Credentials.from_mapping({"ghcr.io": ("base", "pw")})
    top = Credentials.from_mapping({"ghcr.io": Credential.anonymous()})
    assert top.hosts() == []
    assert base.merge(top).for_host("ghcr.io").username == "base"


def test_helper_failure_is_not_cached(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGDATA_TEST_HELPER_MODE", "fail")
    docker_config(home, {"credHelpers": {"ghcr.io": HELPER}})
    creds = Credentials.from_docker_config()
    with pytest.raises(CredentialsError):
        creds.for_host("ghcr.io")
    monkeypatch.setenv("REGDATA_TEST_HELPER_MODE", "normal")
    assert creds.for_host("ghcr.io").username == "user@ghcr.io"


def test_a_malformed_docker_config_warns_once_and_anonymous_reads_go_on(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    registry: RegistryServer,
    builder: Builder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from regdata.cli import main

    secret = "Very-Secret-Pw-42"
    (tmp_path / "config.json").write_text('{"auths": {"ghcr.io": {"password": "' + secret + '", }}}')
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "none.json"))
    builder.push_image("creds/anon", ImageSpec(), tags=["1"])
    with caplog.at_level(logging.WARNING, logger="regdata.credentials"):
        assert main(["tags", f"{registry.host}/creds/anon", "--cache", "none"]) == 0
    assert capsys.readouterr().out.split() == ["tag", "1"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "regdata.credentials"]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"{tmp_path / 'config.json'}: invalid JSON at line 1"
    )
    assert secret not in caplog.text
    with pytest.raises(CredentialsError, match="invalid JSON"):
        Credentials.from_docker_config(strict=True)

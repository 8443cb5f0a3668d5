"""Bad credential config files, in bulk: broken JSON, wrong types, wrong base64, bad helpers.

Each ends as a clear exception (a CredentialsError naming the file and the
entry) or in credentials read right; none shows the password planted in the
file, in its message, its repr or its printed traceback.  The helper cases
go through a Registry too: a helper that fails stops the read of that
registry with a clear exception, it does not hang or crash it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from regdata import Credential, Credentials, Registry
from tests.support.builder import Builder, ImageSpec
from tests.support.registry_server import RegistryServer

from .support import CLEAR, CRASH, HANDLED, LEAKED, Batch, Tally, judge_exception, wrongly_typed

SECRET = "c0nfig-S3CRET-planted"
HELPERS = Path(__file__).resolve().parent.parent / "helpers"
HELPER = "regdatatest"


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def _shows_secret(exc: BaseException) -> bool:
    text = str(exc) + repr(exc) + "".join(traceback.format_exception(exc))
    return any(form in text for form in (SECRET, b64(SECRET), b64(f"alice:{SECRET}")))


def _judge_credentials(value: Any) -> tuple[str, str]:
    if not isinstance(value, Credential):
        return CRASH, f"not a Credential: {type(value).__name__}"
    if SECRET in repr(value) or SECRET in str(value):
        return LEAKED, "the secret is in the Credential's repr"
    value.identity()  # what cache keys are made of: any text the file held must encode
    return HANDLED, repr(value)


def _try(batch: Batch, name: str, load: Callable[[], Any]) -> str:
    """Run ``load`` (read a file and ask for hosts); judge it, and look for the secret."""
    try:
        value = load()
    except Exception as exc:
        outcome, detail = judge_exception(exc)
        if outcome == CLEAR and _shows_secret(exc):
            outcome, detail = LEAKED, f"the planted secret shows: {detail}"
        return batch.record(name, outcome, detail)
    return batch.record(name, *_judge_credentials(value))


def _read(
    path: Path, hosts: tuple[str, ...] = ("ghcr.io", "quay.io", "docker.io")
) -> Callable[[], Credential]:
    """Both loaders read the file; the last host's credential is the value (every host is asked)."""

    def load() -> Credential:
        last = Credential()
        for loader in (Credentials.from_docker_config, Credentials.from_auth_file):
            credentials = loader(path, helper_timeout=0.5, strict=True)
            for host in hosts:
                last = credentials.for_host(host)
            credentials.hosts()
        return last

    return load


REALISTIC = {
    "auths": {
        "ghcr.io": {"auth": b64(f"alice:{SECRET}")},
        "https://index.docker.io/v1/": {"username": "alice", "password": SECRET},
        "quay.io/org": {"identitytoken": SECRET, "email": "a@example.com"},
        "registry.example.com": {"registrytoken": SECRET},
    },
    "credHelpers": {"gcr.io": HELPER},
    "credsStore": "",
    "HttpHeaders": {"User-Agent": "docker"},
}


def _broken(text: str) -> Iterator[tuple[str, bytes]]:
    data = text.encode()
    for cut in sorted({1, len(data) // 4, len(data) // 2, len(data) - 1}):
        yield f"truncated at {cut}", data[:cut]
    yield "a trailing comma", text.replace("}}", "},}", 1).encode()
    yield "a comment", b"// login\n" + data
    yield "single quotes", text.replace('"', "'").encode()
    yield "a byte order mark", b"\xef\xbb\xbf" + data
    yield "UTF-16", text.encode("utf-16")
    yield "not UTF-8", data.replace(b"alice", b"al\xffce")
    yield "a NUL", data.replace(b"alice", b"al\x00ce")
    yield "a lone surrogate escape", text.replace("alice", "al\\ud800ce").encode()
    yield "nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000
    yield "an object nested 50,000 deep", b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    yield "a number too big", text.replace('"credsStore": ""', '"credsStore": 1e999').encode()
    yield "NaN", text.replace('"credsStore": ""', '"credsStore": NaN').encode()
    yield "top level list", b"[" + data + b"]"
    yield "top level string", json.dumps(text).encode()
    yield "top level null", b"null"
    yield "empty", b""
    yield "white space only", b" \n\t "
    yield "two documents", data + data
    yield "duplicate keys", text.replace('"credHelpers"', '"auths": {}, "credHelpers"', 1).encode()
    yield "10 MB of white space", data + b" " * 10_000_000


def test_broken_json(tmp_path: Path, tally: Tally) -> None:
    batch = tally.batch("config", "broken JSON in a config file")
    text = json.dumps(REALISTIC)
    for name, data in _broken(text):
        path = tmp_path / "config.json"
        path.write_bytes(data)
        _try(batch, name, _read(path))
    batch.assert_clean()


def test_wrongly_typed_config_fields(tmp_path: Path, tally: Tally) -> None:
    batch = tally.batch("config", "wrong type in a config field")
    for name, doc in wrongly_typed(REALISTIC):
        path = tmp_path / "config.json"
        path.write_text(json.dumps(doc))
        _try(batch, name, _read(path))
    batch.assert_clean()


BAD_BASE64 = {
    "not base64": SECRET + "!!",
    "no padding": b64(f"alice:{SECRET}").rstrip("="),
    "too much padding": b64(f"alice:{SECRET}") + "==",
    "URL-safe alphabet": base64.urlsafe_b64encode(f"alice:{SECRET}?>>".encode()).decode(),
    "white space inside": b64(f"alice:{SECRET}")[:8] + " \n" + b64(f"alice:{SECRET}")[8:],
    "no colon": b64(SECRET),
    "empty user": b64(":" + SECRET),
    "empty password": b64("alice:"),
    "only a colon": b64(":"),
    "not UTF-8 inside": b64(b"alice:\xff\xfe" + SECRET.encode()),
    "a NUL inside": b64(f"alice:{SECRET}\x00"),
    "a newline inside": b64(f"alice:{SECRET}\r\nX: y"),
    "a lone surrogate escape": "\ud800",
    "empty": "",
    "one character": "Y",
    "huge": b64("alice:" + "x" * 1_000_000),
    "unicode": b64("\u00e4lice:p\u00e4ss"),
}


def test_wrong_base64(tmp_path: Path, tally: Tally) -> None:
    batch = tally.batch("config", "wrong base64 in an auth entry")
    for name, value in BAD_BASE64.items():
        path = tmp_path / "config.json"
        path.write_text(json.dumps({"auths": {"ghcr.io": {"auth": value}}}))
        _try(batch, name, _read(path, ("ghcr.io",)))
    batch.assert_clean()


BAD_KEYS = (
    "",
    " ",
    "://",
    "https://",
    "/",
    "a b",
    "\u00e9.example",
    "x" * 10_000,
    "[::1",
    "ghcr.io:99999",
    "\x00",
    "ghcr.io/../../etc",
    "HTTPS://GHCR.IO/V2/",
)


def test_odd_host_keys(tmp_path: Path, tally: Tally) -> None:
    batch = tally.batch("config", "an odd host key")
    for key in BAD_KEYS:
        for section, value in (("auths", {"auth": b64(f"alice:{SECRET}")}), ("credHelpers", HELPER)):
            path = tmp_path / "config.json"
            path.write_text(json.dumps({section: {key: value}}))
            _try(batch, f"{section} key {key[:30]!r}", _read(path, ("ghcr.io",)))
    batch.assert_clean()


# --------------------------------------------------------------------------- credential helpers


@pytest.fixture
def helper_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake helper on PATH (absolute), a clean HOME, and the secret it hands out."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in (
        "DOCKER_CONFIG",
        "REGISTRY_AUTH_FILE",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "REGDATA_TEST_HELPER_MODE",
        "REGDATA_TEST_HELPER_LOG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", f"{HELPERS}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("REGDATA_TEST_HELPER_SECRET", SECRET)
    return home


HELPER_NAMES = (
    "../regdatatest",
    "/bin/sh",
    "sh -c id",
    "a b",
    "",
    "x/y",
    "evil;rm -rf /",
    "$(id)",
    "`id`",
    "regdatatest\n",
    "\u00e9",
    ".",
    "..",
    "-h",
    "regdatatest\x00",
    "a" * 300,
    "*",
    "~",
)


def test_credential_helpers_that_fail(
    helper_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tally: Tally,
    registry: RegistryServer,
    builder: Builder,
) -> None:
    batch = tally.batch("config", "a credential helper missing, hanging or talking nonsense")
    builder.push_image("reliability/helper", ImageSpec(), tags=["1"])
    path = tmp_path / "config.json"
    modes = {
        "normal": HANDLED,
        "token": HANDLED,
        "notfound": HANDLED,
        "fail": CLEAR,
        "failjson": CLEAR,
        "garbage": CLEAR,
        "hang": CLEAR,
        "unknown-mode": CLEAR,
    }
    for mode, expected in modes.items():
        monkeypatch.setenv("REGDATA_TEST_HELPER_MODE", mode)
        for section in ("credHelpers", "credsStore"):
            config: dict[str, Any] = (
                {"credHelpers": {registry.host: HELPER}}
                if section == "credHelpers"
                else {"credsStore": HELPER}
            )
            path.write_text(json.dumps(config))
            started = time.monotonic()
            outcome = _try(batch, f"helper {mode} ({section})", _read(path, (registry.host,)))
            assert outcome == expected, (mode, batch.cases[-1])
            assert time.monotonic() - started < 5  # the 0.5 s timeout, twice, and no more
            # Through a Registry: a helper that fails stops this registry's read, clearly.
            credentials = Credentials.from_docker_config(path, helper_timeout=0.5)
            with Registry(cache=None, credentials=credentials) as reg:
                batch.call(
                    f"helper {mode} ({section}) under a scan",
                    lambda reg=reg: reg.get_repository(f"{registry.host}/reliability/helper"),
                    lambda frame: (HANDLED, f"{len(frame)} rows"),
                )
    # A helper that is not there at all, or only on a relative PATH entry.
    path.write_text(json.dumps({"credHelpers": {"ghcr.io": "missing-helper"}}))
    _try(batch, "helper not on PATH", _read(path, ("ghcr.io",)))
    monkeypatch.chdir(HELPERS)
    monkeypatch.setenv("PATH", f".{os.pathsep}helpers{os.pathsep}/usr/bin")
    path.write_text(json.dumps({"credHelpers": {"ghcr.io": HELPER}}))
    outcome = _try(batch, "helper only on a relative PATH entry", _read(path, ("ghcr.io",)))
    assert outcome == CLEAR
    batch.assert_clean()


def test_helper_names_are_validated(helper_env: Path, tmp_path: Path, tally: Tally) -> None:
    batch = tally.batch("config", "an invalid credential helper name")
    path = tmp_path / "config.json"
    for name in HELPER_NAMES:
        for config in ({"credHelpers": {"ghcr.io": name}}, {"credsStore": name}):
            path.write_text(json.dumps(config))
            outcome = _try(
                batch, f"helper name {name[:30]!r} in {next(iter(config))}", _read(path, ("ghcr.io",))
            )
            # Never run: refused, or (the empty credsStore) no store at all.
            assert outcome == CLEAR or (name == "" and "credsStore" in config), batch.cases[-1]
    batch.assert_clean()


def test_broken_default_files_warn_and_anonymous_access_goes_on(
    helper_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tally: Tally,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As Docker: one warning naming the file and the fault, never the secret; the Registry is made."""
    batch = tally.batch("config", "a broken default config file")

    def warned(path: Path) -> Callable[[Any], tuple[str, str]]:
        def judge(registry: Any) -> tuple[str, str]:
            messages = [r.getMessage() for r in caplog.records if r.name == "regdata.credentials"]
            caplog.clear()
            if any(SECRET in m or b64(SECRET) in m for m in messages):
                return LEAKED, "the secret is in the warning"
            if len(messages) != 1 or str(path) not in messages[0]:
                return CRASH, f"expected one warning naming {path}, got {messages}"
            if registry.factory.credentials.for_host("ghcr.io"):
                return CRASH, "a credential from a broken file"
            return HANDLED, messages[0]

        return judge

    caplog.set_level(logging.WARNING, logger="regdata.credentials")
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text('{"auths": {"ghcr.io": {"auth": "' + SECRET + '"}}')
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    batch.call(
        "broken $DOCKER_CONFIG/config.json", lambda: Registry(cache=None), warned(docker / "config.json")
    )
    monkeypatch.delenv("DOCKER_CONFIG")
    auth = tmp_path / "auth.json"
    auth.write_bytes(b'{"auths": {"ghcr.io": {"auth": 7}}, "x": "\xff"}')
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    batch.call("broken $REGISTRY_AUTH_FILE", lambda: Registry(cache=None), warned(auth))
    (tmp_path / "dir.json").mkdir()
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "dir.json"))
    batch.call(
        "$REGISTRY_AUTH_FILE is a directory", lambda: Registry(cache=None), warned(tmp_path / "dir.json")
    )
    monkeypatch.setenv("REGISTRY_AUTH_FILE", "/proc/self/mem")
    batch.call(
        "$REGISTRY_AUTH_FILE cannot be read", lambda: Registry(cache=None), warned(Path("/proc/self/mem"))
    )
    assert [c.outcome for c in batch.cases] == [HANDLED] * 4, batch.cases
    batch.assert_clean()

"""Trust as the platform and Docker give it: env CA files, certs.d, --ca-file, insecure hosts, mTLS.

Every registry here has a certificate from a throwaway test CA no store holds.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import regdata
from regdata.cli import main
from regdata.cli.exits import EXIT_UNREACHABLE
from tests.support.builder import Builder, ImageSpec
from tests.support.certs import ClientPair, make_client_pair
from tests.support.registry_server import RegistryServer, start_registry

_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (*_ENV, "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no certs.d of the user's


@pytest.fixture(scope="module")
def tls_repo(tls_registry: RegistryServer, tls_builder: Builder) -> str:
    tls_builder.push_image("trust/app", ImageSpec(), tags=["1"])
    return f"{tls_registry.host}/trust/app"


def _reg(**kwargs: Any) -> regdata.Registry:
    kwargs.setdefault("certs_d", [])
    return regdata.Registry(cache=None, credentials=regdata.Credentials.none(), **kwargs)


def _certs_d(root: Path, host: str, *files: tuple[str, Path]) -> Path:
    folder = root / host
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in files:
        shutil.copy(source, folder / name)
    return root


def test_refused_by_default_with_a_clear_tls_error(tls_registry: RegistryServer, tls_repo: str) -> None:
    with pytest.raises(regdata.TLSError) as info:
        _reg().tags(tls_repo)
    assert info.value.verify_failed and not info.value.temporary
    assert tls_registry.host in str(info.value) and "certificate verify failed" in str(info.value)


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_trusted_through_the_environment(
    variable: str, tls_registry: RegistryServer, tls_repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, str(tls_registry.ca_path))
    assert _reg().tags(tls_repo) == ["1"]


def test_certifi_is_still_trusted_beside_the_system_store() -> None:
    import certifi

    from regdata.transport.trust import tls_context

    known = {c["serialNumber"] for c in tls_context(True).get_ca_certs()}
    assert len(known) > 100  # certifi's bundle (and the system's, when there is one) are loaded
    assert certifi.where()


def test_trusted_through_a_certs_d_folder(
    tls_registry: RegistryServer, tls_repo: str, tmp_path: Path
) -> None:
    assert tls_registry.ca_path is not None
    root = _certs_d(tmp_path / "certs.d", tls_registry.host, ("ca.crt", tls_registry.ca_path))
    assert _reg(certs_d=[str(root)]).tags(tls_repo) == ["1"]
    # Per host: the folder of another host does not count.
    other = _certs_d(tmp_path / "other", "localhost:1", ("ca.crt", tls_registry.ca_path))
    with pytest.raises(regdata.TLSError):
        _reg(certs_d=[str(other)]).tags(tls_repo)


def test_the_users_containers_certs_d_is_read_by_default(
    tls_registry: RegistryServer, tls_repo: str, tmp_path: Path
) -> None:
    assert tls_registry.ca_path is not None
    _certs_d(
        tmp_path / "home" / ".config" / "containers" / "certs.d",
        tls_registry.host,
        ("ca.crt", tls_registry.ca_path),
    )
    reg = regdata.Registry(cache=None, credentials=regdata.Credentials.none())
    assert reg.tags(tls_repo) == ["1"]


def test_per_host_verify(tls_registry: RegistryServer, tls_repo: str) -> None:
    assert _reg(verify={tls_registry.host: str(tls_registry.ca_path)}).tags(tls_repo) == ["1"]
    with pytest.raises(regdata.TLSError):
        _reg(verify={"localhost:1": str(tls_registry.ca_path)}).tags(tls_repo)


def test_cli_ca_file(tls_registry: RegistryServer, tls_repo: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tags", tls_repo, "--cache", "none", "--ca-file", str(tls_registry.ca_path)]) == 0
    assert capsys.readouterr().out.split() == ["tag", "1"]
    assert main(["tags", tls_repo, "--cache", "none"]) == EXIT_UNREACHABLE
    assert "certificate verify failed" in capsys.readouterr().err


def test_cli_tls_verify_false_is_for_the_named_host_only(
    tls_registry: RegistryServer, tls_repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    host = tls_registry.host
    assert main(["tags", tls_repo, "--cache", "none", "--tls-verify=false", host]) == 0
    assert main(["tags", tls_repo, "--cache", "none", "--tls-verify", "false", host]) == 0
    assert capsys.readouterr().out.split() == ["tag", "1", "tag", "1"]
    # The same server under another name is another host: still verified.
    other = f"localhost:{tls_registry.port}/trust/app"
    assert main(["tags", other, "--cache", "none", "--tls-verify=false", host]) == EXIT_UNREACHABLE
    assert main(["tags", tls_repo, "--tls-verify=true", host]) == 2


def test_an_insecure_host_is_read_unverified_with_one_warning(
    tls_registry: RegistryServer, tls_repo: str, caplog: pytest.LogCaptureFixture
) -> None:
    reg = _reg(insecure=[tls_registry.host])
    with caplog.at_level(logging.WARNING, logger="regdata"):
        df = reg.get_repository(tls_repo)
        reg.get_repository(tls_repo)
        assert reg.tags(tls_repo) == ["1"]
    assert df["error"].isna().all()
    warnings = [r.getMessage() for r in caplog.records if "insecure registry" in r.getMessage()]
    assert warnings == [
        f"{tls_registry.host} is an insecure registry: its TLS certificate is not verified "
        "and plain HTTP is allowed"
    ]


def test_an_insecure_host_falls_back_to_plain_http(registry: RegistryServer, builder: Builder) -> None:
    builder.push_image("trust/plain", ImageSpec(), tags=["1"])
    assert _reg(insecure=[registry.host]).tags(f"{registry.host}/trust/plain") == ["1"]


# --------------------------------------------------------------------------- mTLS


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RegistryServer, ClientPair]]:
    pair = make_client_pair(tmp_path_factory.mktemp("client"))
    server = start_registry(tls=True, extra_config={"http": {"tls": {"clientcas": [str(pair.ca_path)]}}})
    b = Builder(server.url, verify=server.verify)
    b.session.cert = (str(pair.cert_path), str(pair.key_path))
    b.push_image("mtls/app", ImageSpec(), tags=["1"])
    b.close()
    yield server, pair
    server.close()


def test_mtls_refused_without_a_client_certificate(mtls: tuple[RegistryServer, ClientPair]) -> None:
    server, _ = mtls
    with pytest.raises(regdata.TLSError) as info:
        _reg(verify=str(server.ca_path)).tags(f"{server.host}/mtls/app")
    assert server.host in str(info.value) and "client certificate" in str(info.value)
    assert not info.value.temporary


def test_mtls_served_with_the_pair_of_a_certs_d_folder(
    mtls: tuple[RegistryServer, ClientPair], tmp_path: Path
) -> None:
    server, pair = mtls
    assert server.ca_path is not None
    root = _certs_d(
        tmp_path / "certs.d",
        server.host,
        ("ca.crt", server.ca_path),
        ("client.cert", pair.cert_path),
        ("client.key", pair.key_path),
    )
    df = _reg(certs_d=[str(root)]).get_repository(f"{server.host}/mtls/app")
    assert df["tag"].tolist() == ["1"] and df["error"].isna().all()


def test_mtls_served_with_the_pair_given(
    mtls: tuple[RegistryServer, ClientPair], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server, pair = mtls
    repo = f"{server.host}/mtls/app"
    given = (str(pair.cert_path), str(pair.key_path))
    assert _reg(verify=str(server.ca_path), cert=given).tags(repo) == ["1"]
    assert _reg(verify=str(server.ca_path), cert={server.host: given}).tags(repo) == ["1"]
    with pytest.raises(regdata.TLSError):  # a pair for another host is not shown to this one
        _reg(verify=str(server.ca_path), cert={"localhost:1": given}).tags(repo)
    assert server.ca_path is not None
    cert_dir = (
        _certs_d(
            tmp_path,
            "dir",
            ("ca.crt", server.ca_path),
            ("client.cert", pair.cert_path),
            ("client.key", pair.key_path),
        )
        / "dir"
    )
    assert main(["tags", repo, "--cache", "none", "--cert-dir", str(cert_dir)]) == 0
    assert capsys.readouterr().out.split() == ["tag", "1"]


def test_a_certs_d_certificate_without_its_key_says_so(
    mtls: tuple[RegistryServer, ClientPair], tmp_path: Path
) -> None:
    server, pair = mtls
    root = _certs_d(tmp_path / "certs.d", server.host, ("client.cert", pair.cert_path))
    with pytest.raises(regdata.TransportError, match="client certificate without its key client.key"):
        _reg(certs_d=[str(root)]).tags(f"{server.host}/mtls/app")


def test_trusted_through_ssl_cert_dir(
    tls_registry: RegistryServer, tls_repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    assert tls_registry.ca_path is not None
    folder = tmp_path / "certs"
    folder.mkdir()
    shutil.copy(tls_registry.ca_path, folder / "test-ca.pem")
    subprocess.run(
        ["openssl", "rehash", str(folder)], check=True, capture_output=True
    )  # OpenSSL's hashed names
    monkeypatch.setenv("SSL_CERT_DIR", str(folder))
    assert _reg().tags(tls_repo) == ["1"]

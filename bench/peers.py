"""The peers, run as their users run them: a loop over the tags, through each one's public API.

- python-dxf: ``list_aliases()``, then per tag ``get_manifest_and_response()``
  (the call that keeps the digest), per platform of an index the same by
  digest, and ``pull_blob()`` of each config. Its ``get_manifest(tag)`` would
  fetch the platforms for us but keys them by ``os/arch[/variant]``, so two
  Windows versions of one tag would overwrite each other: a user who wants
  every platform walks the index, as here.
- oras-py: ``get_tags()``, then per tag ``get_manifest()``, per platform
  ``get_manifest()`` by digest, and ``get_blob()`` of each config.
- skopeo: ``skopeo list-tags``, then ``skopeo inspect`` per tag, one process
  each, as a shell loop does; it shows the platform of this machine
  (linux/amd64) and fails on a tag that has none.

None of them remembers a digest it has already fetched: their APIs do not,
and the loops are the plain ones of their documentation.  All of them read
the registry over plain HTTP on loopback (``insecure=True``, ``--tls-verify=false``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .outcome import Outcome, is_attestation, is_index

__all__ = ["PEERS", "available", "dxf_scan", "oras_scan", "skopeo_scan", "versions"]

SKOPEO_BIN = os.environ.get("REGDATA_SKOPEO_BIN") or shutil.which("skopeo") or "/usr/bin/skopeo"


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise TimeoutError(f"peer run went past {self.seconds}s")


# --------------------------------------------------------------------------- python-dxf


def dxf_scan(host: str, repo: str, limit: float = 1800.0) -> Outcome:
    """python-dxf over every tag of ``host``/``repo``."""
    from dxf import DXF

    deadline = _Deadline(limit)
    rows: list[tuple[str, str]] = []
    tops: dict[str, str] = {}
    with DXF(host, repo, insecure=True, timeout=30) as dxf:
        tags = list(dxf.list_aliases())
        for tag in tags:
            deadline.check()
            text, response = dxf.get_manifest_and_response(tag)
            tops[tag] = response.headers["Docker-Content-Digest"]
            doc = json.loads(text)
            images = (
                [
                    json.loads(dxf.get_manifest_and_response(e["digest"])[0])
                    for e in doc["manifests"]
                    if not is_attestation(e)
                ]
                if is_index(doc)
                else [doc]
            )
            for image in images:
                chunks: Any = dxf.pull_blob(image["config"]["digest"])
                config = json.loads(b"".join(chunks))
                assert isinstance(config, dict)
                rows.append((tag, image["config"]["digest"]))
    return Outcome(rows=rows, tops=tops, tags=len(tags))


# --------------------------------------------------------------------------- oras-py


def oras_scan(host: str, repo: str, limit: float = 1800.0) -> Outcome:
    """oras-py over every tag of ``host``/``repo``."""
    import oras.provider  # type: ignore[import-untyped]

    deadline = _Deadline(limit)
    rows: list[tuple[str, str]] = []
    registry = oras.provider.Registry(hostname=host, insecure=True)
    try:
        tags = registry.get_tags(registry.get_container(f"{host}/{repo}"))
        for tag in tags:
            deadline.check()
            doc = registry.get_manifest(registry.get_container(f"{host}/{repo}:{tag}"))
            images = (
                [
                    registry.get_manifest(registry.get_container(f"{host}/{repo}@{e['digest']}"))
                    for e in doc["manifests"]
                    if not is_attestation(e)
                ]
                if is_index(doc)
                else [doc]
            )
            for image in images:
                blob = registry.get_blob(registry.get_container(f"{host}/{repo}"), image["config"]["digest"])
                blob.raise_for_status()
                assert isinstance(blob.json(), dict)
                rows.append((tag, image["config"]["digest"]))
    finally:
        registry.session.close()
    return Outcome(rows=rows, tops=None, tags=len(tags))


# --------------------------------------------------------------------------- skopeo


class _SkopeoHome:
    """A private HOME and config, as tests/conftest.py's Skopeo: no user credentials, no proxies."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="bench-skopeo-"))
        self.registries_conf = self.home / "registries.conf"
        self.registries_conf.write_text('unqualified-search-registries = []\nshort-name-mode = "disabled"\n')
        self.policy = self.home / "policy.json"
        self.policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}\n')
        self.authfile = self.home / "auth.json"
        self.authfile.write_text('{"auths": {}}\n')

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
        return {
            **keep,
            "HOME": str(self.home),
            "XDG_RUNTIME_DIR": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
            "REGISTRY_AUTH_FILE": str(self.authfile),
            "NO_PROXY": "*",
        }

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        cmd = [
            SKOPEO_BIN,
            "--registries-conf",
            str(self.registries_conf),
            "--policy",
            str(self.policy),
            *args,
        ]
        return subprocess.run(
            cmd, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)


def skopeo_scan(host: str, repo: str, limit: float = 1800.0) -> Outcome:
    """``skopeo list-tags``, then ``skopeo inspect`` per tag."""
    deadline = _Deadline(limit)
    home = _SkopeoHome()
    tops: dict[str, str] = {}
    errors: dict[str, str] = {}
    try:
        flags = ["--tls-verify=false", "--no-creds"]
        listed = home.run("list-tags", *flags, f"docker://{host}/{repo}")
        if listed.returncode != 0:
            raise RuntimeError(f"skopeo list-tags failed: {listed.stderr.strip()[:300]}")
        tags = list(json.loads(listed.stdout)["Tags"])
        for tag in tags:
            deadline.check()
            done = home.run("inspect", *flags, f"docker://{host}/{repo}:{tag}")
            if done.returncode != 0:
                errors[tag] = done.stderr.strip()[-200:]
                continue
            tops[tag] = json.loads(done.stdout)["Digest"]
    finally:
        home.close()
    return Outcome(rows=None, tops=tops, errors=errors, tags=len(tags))


# --------------------------------------------------------------------------- which are there

Scan = Callable[[str, str, float], Outcome]
PEERS: dict[str, Scan] = {"python-dxf": dxf_scan, "oras-py": oras_scan, "skopeo": skopeo_scan}


def available(name: str) -> str | None:
    """None when the peer can run here, else why not."""
    if name == "skopeo":
        return None if os.access(SKOPEO_BIN, os.X_OK) else f"skopeo not found at {SKOPEO_BIN}"
    module = {"python-dxf": "dxf", "oras-py": "oras"}[name]
    try:
        __import__(module)
    except ImportError:
        return f"{name} is not installed (pip install -e '.[bench]')"
    return None


def versions() -> dict[str, Any]:
    """The version of each peer, for the report."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, Any] = {}
    for name, dist in (("python-dxf", "python-dxf"), ("oras-py", "oras")):
        try:
            out[name] = version(dist)
        except PackageNotFoundError:
            out[name] = None
    try:
        text = subprocess.run([SKOPEO_BIN, "--version"], capture_output=True, text=True, timeout=10).stdout
        out["skopeo"] = text.strip().split()[-1] if text else None
    except (OSError, subprocess.SubprocessError):
        out["skopeo"] = None
    return out

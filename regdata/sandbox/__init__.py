"""A sandbox registry on loopback, filled with images built from real Docker Hub metadata.

For the demo, the notebooks and trying regdata with no internet::

    from regdata.sandbox import Sandbox

    with Sandbox.start() as sandbox:          # Debian's Distribution registry on 127.0.0.1
        sandbox.fill()                         # seconds the first time, a few HEADs after
        reg = sandbox.registry()               # a Registry reading docker.io from the sandbox
        reg.get_repository("nginx")            # rows still say docker.io/library/nginx

What is real and what is not — read this before drawing conclusions:

* **Real** (from docker-library/repo-info, as recorded from Docker Hub, see
  ``regdata/sandbox/data/README.md``): the repositories and tags, each tag's platforms
  (os, architecture, variant, Windows ``os.version``) in their real order,
  each platform's build history (``created``, ``created_by``), command,
  entrypoint and shell, layer count, media types, **layer sizes** (the
  ``size`` column and the size plots show Docker Hub's compressed sizes),
  whether a tag was a manifest list or an OCI index, the buildkit attestation
  entries of the 2026 indexes, and when each tag moved (``timeline``).
* **Stand-ins**: layer *contents*.  Each layer is a tiny tar.gz derived from
  the real layer digest (so a layer shared between real images is shared
  here too), but its manifest descriptor declares the real size.
  Distribution 2.8 accepts such a manifest (it checks that a blob exists,
  not its size), so the metadata is real while the sandbox stays a few MB;
  pulling an image from the sandbox fails on the size check, by design.
  Digests are therefore the sandbox's, not Docker Hub's.
* **Reconstructed**: older versions of a tag, which the data only knows by
  their index digest and amd64 created time.  They are the recorded version
  of the tag with its newest history entries moved back to that created time
  (and those layers re-seeded); a re-push (same created time, new digest)
  is the same images under an index that lists fewer platforms, as happens
  when Docker Hub re-pushes an index as each platform finishes building.

Tags move over time with :meth:`Sandbox.fill` ``as_of=``: each tag is
pushed as it was at that time, and moving forward again moves tags forward
(never back).  ``pins=`` pushes the older images a fleet pins by digest.

This module starts and stops the registry; the rest is in parts, whose
public names it re-exports: :mod:`regdata.sandbox.demodata` (the data, a tag's
versions), :mod:`regdata.sandbox.imagebuild` (the bytes of the images),
:mod:`regdata.sandbox.fill` (what to write, once each) and :mod:`regdata.sandbox.push`
(the registry HTTP API).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from regdata.sandbox.demodata import DemoData, SandboxError, TagVersion, data_dir, load_data, pinned_reference
from regdata.sandbox.fill import FillReport, fill
from regdata.sandbox.imagebuild import FOREIGN_ALLOW

if TYPE_CHECKING:
    import pandas as pd

    from regdata.client.registry import Registry

__all__ = [
    "DEFAULT_PORT",
    "DemoData",
    "FillReport",
    "Sandbox",
    "SandboxError",
    "TagVersion",
    "data_dir",
    "default_root",
    "load_data",
    "pinned_reference",
]

DEFAULT_PORT = 5055
PORT_ENV = "REGDATA_SANDBOX_PORT"
BIN_ENV = "REGDATA_REGISTRY_BIN"
INSTALL_HINT = "apt-get install docker-registry"


def _binary(binary: str | None) -> str:
    candidates = [binary or os.environ.get(BIN_ENV) or "/usr/bin/docker-registry"]
    found = shutil.which("docker-registry")
    if found and binary is None:
        candidates.append(found)
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SandboxError(
        f"Debian's Distribution registry is not installed ({candidates[0]} not found): "
        f"run `{INSTALL_HINT}` (or `bash scripts/demo` as root, which installs it), "
        f"or set {BIN_ENV} to a registry binary"
    )


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_root() -> Path:
    """``<user cache dir>/regdata/sandbox``: the storage and the demo's cache live here."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("regdata")) / "sandbox"


class Sandbox:
    """A running sandbox registry: Debian's Distribution registry on 127.0.0.1.

    Start with :meth:`start`; stop with :meth:`stop` (also at interpreter
    exit, and if this process dies).  ``host`` is ``127.0.0.1:<port>``,
    ``url`` its ``http://`` URL, ``mirrors`` what to give
    :class:`~regdata.Registry` so references to ``docker.io`` are read from
    here: ``Registry(mirrors=sandbox.mirrors)``.
    """

    def __init__(
        self, root: Path, port: int, process: subprocess.Popen[bytes], data: DemoData | None = None
    ) -> None:
        self.root = root
        self.port = port
        self.process = process
        self._data = data
        atexit.register(self.stop)

    # -- life cycle -------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        port: int | None = None,
        root: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        data: DemoData | None = None,
        timeout: float = 15.0,
    ) -> Sandbox:
        """Start the registry.

        ``port``: ``$REGDATA_SANDBOX_PORT`` or 5055 by default; when taken, a
        free port (0 asks for a free port outright).  ``root``: where its
        storage, config and log go (default ``~/.cache/regdata/sandbox``);
        a second start on the same root finds the images already there.
        """
        exe = _binary(binary)
        base = Path(root) if root is not None else default_root()
        (base / "storage").mkdir(parents=True, exist_ok=True)
        wanted = port if port is not None else int(os.environ.get(PORT_ENV) or DEFAULT_PORT)
        tries = [wanted] if wanted and not _listening(wanted) else []
        tries += [_free_port(), _free_port()]
        last = ""
        for candidate in tries:
            process = cls._spawn(exe, base, candidate)
            error = cls._wait(process, candidate, timeout)
            if error is None:
                return cls(base, candidate, process, data)
            last = error
            if "address already in use" not in error:
                break
        raise SandboxError(f"the sandbox registry did not start: {last}\n(log: {base / 'registry.log'})")

    @staticmethod
    def _spawn(exe: str, root: Path, port: int) -> subprocess.Popen[bytes]:
        config = {
            "version": 0.1,
            "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(root / "storage")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
                "cache": {"blobdescriptor": "inmemory"},
            },
            "http": {"addr": f"127.0.0.1:{port}", "secret": "regdata-sandbox"},
            "health": {"storagedriver": {"enabled": False}},
            "validation": {"manifests": {"urls": {"allow": [FOREIGN_ALLOW]}}},
        }
        path = root / "config.yml"
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        # setpriv kills the registry if this process dies without running atexit.
        setpriv = shutil.which("setpriv")
        prefix = [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []
        with open(root / "registry.log", "ab") as log:
            return subprocess.Popen(
                [*prefix, exe, "serve", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
            )

    @staticmethod
    def _wait(process: subprocess.Popen[bytes], port: int, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        session = requests.Session()
        session.trust_env = False
        try:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    return f"it exited with code {process.returncode}" + (
                        " (address already in use)" if _listening(port) else ""
                    )
                try:
                    session.get(f"http://127.0.0.1:{port}/v2/", timeout=1.0)
                    return None
                except requests.RequestException:
                    time.sleep(0.05)
        finally:
            session.close()
        process.terminate()
        return f"no answer on 127.0.0.1:{port} within {timeout:.0f} s"

    def stop(self) -> None:
        """Stop the registry (its storage stays, for the next start)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        atexit.unregister(self.stop)

    @property
    def running(self) -> bool:
        """True while the registry process runs."""
        return self.process.poll() is None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Sandbox({self.host}, root={str(self.root)!r}, running={self.running})"

    # -- addresses --------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: a registry host as references name it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}"

    @property
    def mirrors(self) -> dict[str, str]:
        """``{"docker.io": host}``, for ``Registry(mirrors=...)``."""
        return {"docker.io": self.host}

    @property
    def data(self) -> DemoData:
        """The demo data this sandbox is filled from (loaded on first use)."""
        if self._data is None:
            self._data = load_data()
        return self._data

    def registry(self, **options: Any) -> Registry:
        """A :class:`~regdata.Registry` that reads ``docker.io`` from this sandbox.

        ``options`` go to the Registry (``cache=``, ``platforms=``...); the
        cache defaults to ``memory://`` so a notebook starts clean.  A cached
        tag is trusted for ``cache_ttl`` seconds (300): to see a tag moved by
        :meth:`fill` at once, pass ``cache_ttl=0`` (or ``cache=None``).
        """
        from regdata.client.registry import Registry

        options.setdefault("cache", "memory://")
        mirrors = {**self.mirrors, **options.pop("mirrors", {})}
        return Registry(mirrors=mirrors, **options)

    # -- filling ---------------------------------------------------------------

    def fill(
        self,
        images: Iterable[str] | Mapping[str, Iterable[str]] | None = None,
        *,
        as_of: datetime | str | None = None,
        pins: Iterable[str] = (),
        small: bool = False,
        concurrency: int = 8,
        progress: Callable[[int, int], None] | None = None,
    ) -> FillReport:
        """Push the demo images: every tag as it is in the data's newest state, or ``as_of`` a time.

        ``images``: image names (``["nginx", "redis"]``) or ``{image: [tags]}``;
        ``small``: the small subset the tests use.  Idempotent: a tag already
        at its version costs one HEAD.  Tags move forward only: a tag that
        already holds a later version keeps it, and the older image is pushed
        by digest.  ``pins``: references with a digest (``nginx:1.13@sha256:...``,
        as a fleet pins them) whose image is one of the older versions of that
        tag; each is pushed by digest.  ``progress(done, total)`` is called as
        tags finish.
        """
        return fill(
            self.data,
            self.port,
            images,
            as_of=as_of,
            pins=pins,
            small=small,
            concurrency=concurrency,
            progress=progress,
        )

    def versions(self, image: str, tag: str) -> pd.DataFrame:
        """The states of a tag over time, with the digest each has here (see :class:`DemoData`)."""
        return self.data.versions_frame(image, tag)

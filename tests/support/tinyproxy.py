"""A real forward proxy for the tests: Debian's tinyproxy on 127.0.0.1, on a free port.

Registries behind a proxy are reached by name, not by a loopback address (Go,
and regdata, never proxy loopback).  The names the tests use resolve nowhere
on this machine; tinyproxy alone resolves them, to 127.0.0.1, through its own
``/etc/hosts`` bind-mounted in a private mount namespace (``unshare``), so
nothing of the machine is edited.  A request that did not go through the proxy
cannot reach those registries at all.

Every request tinyproxy handles is a ``Request`` line of its log
(:meth:`TinyProxy.requests`): ``GET http://host:port/v2/...`` when it forwards
plain HTTP, ``CONNECT host:port`` when it tunnels TLS.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.registry_server import _Process, free_port

__all__ = ["TINYPROXY_BIN", "TinyProxy", "start_tinyproxy"]

TINYPROXY_BIN = os.environ.get("REGDATA_TINYPROXY_BIN") or "/usr/bin/tinyproxy"
UNSHARE_BIN = shutil.which("unshare") or "/usr/bin/unshare"
_REQUEST = re.compile(r"Request \(file descriptor \d+\): (\S+) (\S+) HTTP/")


@dataclass
class TinyProxy:
    """One tinyproxy process: ``url`` (with credentials when it asks for them), ``host``, its log."""

    workdir: Path
    port: int
    names: tuple[str, ...]
    user: str | None = None
    password: str | None = None
    _proc: _Process = field(init=False, repr=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        auth = f"{self.user}:{self.password}@" if self.user else ""
        return f"http://{auth}{self.host}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "tinyproxy.log"

    def config(self) -> str:
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            f'LogFile "{self.log_path}"',
            "LogLevel Connect",
            "MaxClients 200",
            "Allow 127.0.0.1",
            "DisableViaHeader Yes",
        ]
        if self.user:
            lines.append(f"BasicAuth {self.user} {self.password}")
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        conf = self.workdir / "tinyproxy.conf"
        conf.write_text(self.config())
        hosts = self.workdir / "hosts"
        hosts.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {n}\n" for n in self.names))
        script = f"mount --bind {hosts} /etc/hosts && exec {TINYPROXY_BIN} -d -c {conf}"
        self._proc = _Process([*_namespace(hosts), "sh", "-c", script], self.workdir / "stderr.log")
        self._proc.name = f"tinyproxy on {self.host}"
        if not os.access(TINYPROXY_BIN, os.X_OK):
            raise RuntimeError(f"tinyproxy not found at {TINYPROXY_BIN}: apt-get install tinyproxy")
        self._proc._spawn()
        deadline = time.monotonic() + 10
        while True:
            if not self._proc.running:
                raise self._proc._fail("exited (does this machine allow unshare --user --mount?)")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise self._proc._fail("no answer in 10 s") from None
                time.sleep(0.05)

    def requests(self) -> list[tuple[str, str]]:
        """(method, target) of every request tinyproxy has handled, oldest first."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [(m.group(1), m.group(2)) for m in _REQUEST.finditer(text)]

    def clear(self) -> None:
        """Forget the log so far (tinyproxy appends to the same file)."""
        self.log_path.write_text("")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") + (self.workdir / "stderr.log").read_text()
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        self._proc.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _namespace(hosts: Path) -> list[str]:
    """The unshare command that gives a process its own /etc/hosts: a user namespace, else root's."""
    tried = []
    for argv in ([UNSHARE_BIN, "--user", "--map-root-user", "--mount"], [UNSHARE_BIN, "--mount"]):
        check = subprocess.run(
            [*argv, "sh", "-c", f"mount --bind {hosts} /etc/hosts"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if check.returncode == 0:
            return argv
        tried.append(f"{' '.join(argv)}: {check.stderr.strip()[:200]}")
    raise RuntimeError(
        "cannot give tinyproxy its own /etc/hosts (the tests resolve registry names only "
        "inside it): " + "; ".join(tried)
    )


def start_tinyproxy(names: Sequence[str], user: str | None = None, password: str | None = None) -> TinyProxy:
    """Start tinyproxy resolving ``names`` to 127.0.0.1; with ``user``, it asks for Basic auth."""
    proxy = TinyProxy(
        Path(tempfile.mkdtemp(prefix="regdata-tinyproxy-")), free_port(), tuple(names), user, password
    )
    proxy.start()
    return proxy

"""Run the CNCF Distribution registry (and memcached) as subprocesses on 127.0.0.1.

Each server gets its own temp directory (config, storage, log) and a free port that it
keeps across ``restart()``, so a test can kill a registry in the middle of a scan and
bring the same content back at the same address.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import bcrypt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = [
    "MEMCACHED_BIN",
    "REGISTRY_BIN",
    "AuthMode",
    "MemcachedServer",
    "RegistryServer",
    "TlsFiles",
    "TokenAuthConfig",
    "free_port",
    "htpasswd_line",
    "make_tls_files",
    "start_memcached",
    "start_registry",
]

REGISTRY_BIN = os.environ.get("REGDATA_REGISTRY_BIN") or "/usr/bin/docker-registry"
MEMCACHED_BIN = os.environ.get("REGDATA_MEMCACHED_BIN") or "/usr/bin/memcached"

AuthMode = Literal["none", "htpasswd", "token"]

# Foreign (Windows) layers carry URLs, which Distribution refuses unless allowed. Only
# loopback URLs are allowed, so no manifest of the test bed can point off this machine.
FOREIGN_URL_ALLOW = r"^https?://127\.0\.0\.1(:[0-9]+)?/"

_live: weakref.WeakSet[_Process] = weakref.WeakSet()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# If pytest itself is killed (CI timeout, SIGKILL) the servers must not outlive it and keep
# ports and CPU: setpriv (util-linux, always on Debian) sets the parent-death signal and
# execs the server, so the pid stays the server's. A preexec_fn would do the same but is
# unsafe once threads run (the token server is threaded).
_SETPRIV = shutil.which("setpriv")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost signed by it."""

    ca_path: Path
    cert_path: Path
    key_path: Path


def make_ca(common_name: str, now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh CA key and its self-signed certificate, valid for two days."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return ca_key, ca_cert


def make_tls_files(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TlsFiles:
    # A separate CA, not a self-signed leaf: OpenSSL (and Go) are stricter about a leaf
    # used as its own trust anchor than about a CA:TRUE root.
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key, ca_cert = make_ca("regdata test CA", now)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(
        ca_path=directory / "ca.pem",
        cert_path=directory / "server.pem",
        key_path=directory / "server.key",
    )
    files.ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


# --------------------------------------------------------------------------- processes


class _Process:
    """A subprocess with a fixed command line that can be stopped, killed and restarted."""

    name = "server"

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.argv = argv
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        _live.add(self)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _spawn(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        binary = self.argv[0]
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            raise RuntimeError(f"cannot start {self.name}: {binary} is not an executable file")
        with open(self.log_path, "ab") as log:
            prefix = [_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else []
            self.process = subprocess.Popen(
                prefix + self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
            )

    def _fail(self, why: str) -> RuntimeError:
        self.kill()
        return RuntimeError(
            f"{self.name} failed to start ({why}); command: {' '.join(self.argv)}\n"
            f"--- tail of {self.log_path} ---\n{_tail(self.log_path)}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout`` seconds."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the abrupt death of a server in mid-request."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: the port stays open but nothing answers (for timeout tests)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGSTOP)
        # The group stop reaches each thread asynchronously; a thread already running
        # could still answer one request, so wait until every thread shows state T.
        deadline = time.monotonic() + 2.0
        task_dir = Path(f"/proc/{self.process.pid}/task")
        while time.monotonic() < deadline:
            try:
                states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in task_dir.iterdir()]
            except OSError:
                break
            if all(s in ("T", "t") for s in states):
                break
            time.sleep(0.005)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)


@atexit.register
def _stop_all() -> None:
    for proc in list(_live):
        with contextlib.suppress(Exception):
            proc.kill()


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class TokenAuthConfig:
    """What the registry needs to trust a token server (see token_server.TokenServer)."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


def htpasswd_line(user: str, password: str) -> str:
    # Distribution compares bcrypt on every request; cost 4 (the minimum Go accepts)
    # keeps authenticated tests fast. "$2y$" is what Apache htpasswd writes.
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4, prefix=b"2b"))
    return f"{user}:{hashed.decode().replace('$2b$', '$2y$', 1)}"


class _Controls:
    """kill, pause, resume and restart, shared by every server wrapping a ``_Process``."""

    _proc: _Process

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._proc.stop()

    def kill(self) -> None:
        self._proc.kill()

    def pause(self) -> None:
        self._proc.pause()

    def resume(self) -> None:
        self._proc.resume()

    def restart(self, *, kill: bool = False) -> None:
        """Stop (or kill) and start again on the same port with the same storage."""
        if kill:
            self.kill()
        else:
            self.stop()
        self.start()


@dataclass(eq=False)
class RegistryServer(_Controls):
    """One Distribution registry process and its files.

    ``users`` holds the htpasswd accounts (name → password) in htpasswd mode.
    ``token_server`` is set by the caller (conftest) for token mode, for convenience.
    """

    workdir: Path
    port: int
    auth: AuthMode = "none"
    users: dict[str, str] = field(default_factory=dict)
    token: TokenAuthConfig | None = None
    tls: TlsFiles | None = None
    binary: str = REGISTRY_BIN
    startup_timeout: float = 15.0
    extra_config: Mapping[str, Any] = field(default_factory=dict)
    owns_workdir: bool = True
    token_server: Any = None
    _proc: _Process = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        self._proc = _Process([self.binary, "serve", str(self.config_path)], self.log_path)
        self._proc.name = f"registry on {self.host}"

    # -- addresses
    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def ca_path(self) -> Path | None:
        return self.tls.ca_path if self.tls else None

    @property
    def verify(self) -> bool | str:
        """What to pass as ``requests``' ``verify=`` to talk to this server."""
        return str(self.tls.ca_path) if self.tls else True

    # -- files
    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "registry.log"

    @property
    def storage_dir(self) -> Path:
        return self.workdir / "storage"

    @property
    def htpasswd_path(self) -> Path:
        return self.workdir / "htpasswd"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._proc.process

    @property
    def running(self) -> bool:
        return self._proc.running

    def config(self) -> dict[str, Any]:
        """The registry configuration (JSON is YAML, so it is written as JSON)."""
        cfg: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": True},
                # No blob descriptor cache: a test that deletes a blob must see it gone.
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": self.host,
                "secret": "regdata-test-secret",
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
            "health": {"storagedriver": {"enabled": False}},
            "compatibility": {"schema1": {"enabled": True}},
            "validation": {"manifests": {"urls": {"allow": [FOREIGN_URL_ALLOW]}}},
        }
        if self.tls:
            cfg["http"]["tls"] = {
                "certificate": str(self.tls.cert_path),
                "key": str(self.tls.key_path),
            }
        if self.auth == "htpasswd":
            self.htpasswd_path.write_text("".join(htpasswd_line(u, p) + "\n" for u, p in self.users.items()))
            cfg["auth"] = {"htpasswd": {"realm": "regdata-test", "path": str(self.htpasswd_path)}}
        elif self.auth == "token":
            if self.token is None:
                raise ValueError("token auth needs a TokenAuthConfig")
            cfg["auth"] = {
                "token": {
                    "realm": self.token.realm,
                    "service": self.token.service,
                    "issuer": self.token.issuer,
                    "rootcertbundle": str(self.token.rootcertbundle),
                }
            }
        return _deep_merge(cfg, self.extra_config)

    # -- life cycle
    def start(self) -> None:
        self._proc._spawn()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        verify = self.verify
        while True:
            proc = self._proc.process
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise self._proc._fail(f"exited with code {code}")
            try:
                # Any HTTP answer (200, or 401 under auth) means it is serving.
                requests.get(f"{self.url}/v2/", timeout=1.0, verify=verify)
                return
            except requests.exceptions.SSLError as exc:
                # A registry asking for a client certificate (http.tls.clientcas) is serving too.
                text = str(exc).upper().replace(" ", "_")
                if "CERTIFICATE_REQUIRED" in text or "BAD_CERTIFICATE" in text:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise self._proc._fail(f"no answer on {self.url}/v2/ in {self.startup_timeout}s")
            time.sleep(0.05)

    def close(self) -> None:
        """Stop for good and remove the temp directory (if this server made it)."""
        self.stop()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def __enter__(self) -> RegistryServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_registry(
    auth: AuthMode = "none",
    *,
    users: Mapping[str, str] | None = None,
    token: TokenAuthConfig | None = None,
    tls: bool = False,
    tls_hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
    workdir: Path | None = None,
    port: int | None = None,
    extra_config: Mapping[str, Any] | None = None,
    binary: str | None = None,
    startup_timeout: float = 15.0,
) -> RegistryServer:
    """Start a registry and wait until it answers; raise RuntimeError with its log if not."""
    owns = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="regdata-registry-")) if workdir is None else workdir
    wd.mkdir(parents=True, exist_ok=True)
    tls_files = make_tls_files(wd / "tls", tls_hosts) if tls else None
    # free_port() can race with another process taking the port; try a few ports
    # unless the caller fixed one.
    attempts = 1 if port else 3
    for attempt in range(attempts):
        server = RegistryServer(
            workdir=wd,
            port=port or free_port(),
            auth=auth,
            users=dict(users or {}),
            token=token,
            tls=tls_files,
            binary=binary or REGISTRY_BIN,
            startup_timeout=startup_timeout,
            extra_config=dict(extra_config or {}),
            owns_workdir=owns,
        )
        try:
            server.start()
            return server
        except RuntimeError as exc:
            if attempt + 1 < attempts and "address already in use" in str(exc):
                continue
            if owns:
                shutil.rmtree(wd, ignore_errors=True)
            raise
        except BaseException:
            server.kill()
            if owns:
                shutil.rmtree(wd, ignore_errors=True)
            raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- memcached


@dataclass(eq=False)
class MemcachedServer(_Controls):
    """A memcached on 127.0.0.1 (TCP only); restart() comes back empty, as memcached does."""

    port: int
    workdir: Path
    binary: str = MEMCACHED_BIN
    memory_mb: int = 64
    startup_timeout: float = 10.0
    owns_workdir: bool = True
    _proc: _Process = field(init=False, repr=False)

    def __post_init__(self) -> None:
        argv = [
            self.binary,
            "-l", "127.0.0.1",
            "-p", str(self.port),
            "-U", "0",
            "-m", str(self.memory_mb),
        ]  # fmt: skip
        if os.geteuid() == 0:
            # memcached refuses to run as root without naming a user.
            argv += ["-u", "root"]
        self._proc = _Process(argv, self.workdir / "memcached.log")
        self._proc.name = f"memcached on 127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def log_path(self) -> Path:
        return self._proc.log_path

    @property
    def running(self) -> bool:
        return self._proc.running

    def start(self) -> None:
        self._proc._spawn()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            proc = self._proc.process
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise self._proc._fail(f"exited with code {code}")
            try:
                with socket.create_connection(self.address, timeout=1.0) as s:
                    s.sendall(b"version\r\n")
                    if s.recv(64).startswith(b"VERSION"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise self._proc._fail(f"no answer on {self.host} in {self.startup_timeout}s")
            time.sleep(0.05)

    def stop(self) -> None:
        # memcached takes about a second to exit on SIGTERM, and keeps nothing that a
        # clean exit would save: SIGKILL is the same stop, faster.
        self._proc.kill()

    def flush_all(self) -> None:
        with socket.create_connection(self.address, timeout=2.0) as s:
            s.sendall(b"flush_all\r\n")
            s.recv(64)

    def close(self) -> None:
        self.stop()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> MemcachedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_memcached(*, port: int | None = None, binary: str | None = None) -> MemcachedServer:
    wd = Path(tempfile.mkdtemp(prefix="regdata-memcached-"))
    server = MemcachedServer(port=port or free_port(), workdir=wd, binary=binary or MEMCACHED_BIN)
    try:
        server.start()
    except BaseException:
        shutil.rmtree(wd, ignore_errors=True)
        raise
    return server

"""Which certificates a host is trusted with, and which client certificate it is shown.

As the platform and Docker decide it, so nobody learns a regdata way:

* By default: the system store (OpenSSL's default paths, which honour
  ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``), certifi's bundle (what requests
  trusts), and ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` when set.
* Per host, Docker's and containers' ``certs.d`` layout, first folder found
  wins: ``/etc/containers/certs.d/<host[:port]>/``,
  ``/etc/docker/certs.d/<host[:port]>/``, ``~/.config/containers/certs.d/...``.
  ``*.crt`` files are CAs added to the default trust; a ``*.cert`` with the
  ``*.key`` of the same name is a client certificate (mTLS).
* Explicitly: ``verify`` (True, False, a CA bundle or folder that replaces
  the default trust, or a ``{host: ...}`` mapping), ``cert`` (a
  ``(certfile, keyfile)`` pair, or a ``{host: pair}`` mapping), ``cert_dir``
  (skopeo's ``--cert-dir``: one folder for every host, instead of certs.d).
* Hosts named insecure are spoken to over TLS without verification (Docker's
  insecure registries); the HTTP layer also lets them fall back to plain HTTP.

A TLS context is made once per distinct trust and kept: loading a CA bundle
costs about 20 ms of CPU.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import certifi

from regdata.errors import TransportError
from regdata.oci.reference import api_host, canonical_host

__all__ = ["HostTrust", "Trust", "certs_d_roots", "tls_context"]

VerifySetting = bool | str | Mapping[str, bool | str]
CertPair = tuple[str, str]
CertSetting = CertPair | Mapping[str, CertPair] | None


def certs_d_roots() -> tuple[str, ...]:
    """The ``certs.d`` folders Docker and podman read, in the order they are asked."""
    home = os.environ.get("HOME") or str(Path.home())
    return (
        "/etc/containers/certs.d",
        "/etc/docker/certs.d",
        str(Path(home) / ".config" / "containers" / "certs.d"),
    )


@dataclass(frozen=True)
class HostTrust:
    """The trust of one host: hashable, so its TLS context is made once."""

    verify: bool | str = True  # True: the default trust; a path: that alone; False: none
    cas: tuple[str, ...] = ()  # CA files added to the default trust (certs.d *.crt)
    cert: CertPair | None = None
    # What the default trust read from the environment: a change makes a new context.
    environment: tuple[str, ...] = ()


def _host_key(host: str) -> str:
    """A host as the HTTP layer names it: the API host, with its port when one was given."""
    return api_host(canonical_host(host))


def _read_dir(folder: Path) -> tuple[tuple[str, ...], CertPair | None]:
    """The ``*.crt`` CAs and the first ``*.cert``/``*.key`` pair of a certs.d folder."""
    try:
        names = sorted(p.name for p in folder.iterdir() if p.is_file())
    except OSError:
        return (), None
    cas = tuple(str(folder / n) for n in names if n.endswith(".crt"))
    pair: CertPair | None = None
    for name in names:
        if name.endswith(".cert"):
            key = name[: -len(".cert")] + ".key"
            if key not in names:  # Docker refuses this too: a certificate alone cannot be used
                error = TransportError(f"{folder / name}: client certificate without its key {key}")
                error.temporary = False
                raise error
            pair = pair or (str(folder / name), str(folder / key))
        elif name.endswith(".key") and name[: -len(".key")] + ".cert" not in names:
            error = TransportError(f"{folder / name}: key without its client certificate")
            error.temporary = False
            raise error
    return cas, pair


def _environment() -> tuple[str, ...]:
    return tuple(
        os.environ.get(name, "")
        for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    )


@dataclass(frozen=True)
class Trust:
    """The TLS settings of a Registry, resolved per host by :meth:`for_host`."""

    verify: VerifySetting = True
    cert: CertSetting = None
    cert_dir: str | None = None
    certs_d: tuple[str, ...] | None = None  # None: certs_d_roots(), read when a host is first met
    insecure: frozenset[str] = frozenset()
    _verify: Mapping[str, bool | str] = field(default_factory=dict, repr=False, compare=False)
    _cert: Mapping[str, CertPair] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.verify, Mapping):
            object.__setattr__(self, "_verify", {_host_key(h): v for h, v in self.verify.items()})
        if isinstance(self.cert, Mapping):
            object.__setattr__(self, "_cert", {_host_key(h): tuple(v) for h, v in self.cert.items()})
        elif self.cert is not None and (
            len(self.cert) != 2 or not all(isinstance(p, str | os.PathLike) for p in self.cert)
        ):
            raise ValueError("cert must be a (certfile, keyfile) pair")

    def for_host(self, host: str) -> HostTrust:
        """The trust of ``host`` (``host[:port]`` as it stands in URLs)."""
        host = host.lower()
        if host in self.insecure:
            return HostTrust(verify=False)
        if isinstance(self.verify, Mapping):
            verify: bool | str = self._verify.get(host, True)
        else:
            verify = self.verify
        if verify is False:
            return HostTrust(verify=False)
        cas: tuple[str, ...] = ()
        pair: CertPair | None = None
        if self.cert_dir is not None:
            cas, pair = _read_dir(Path(self.cert_dir))
        else:
            for root in self.certs_d if self.certs_d is not None else certs_d_roots():
                folder = Path(root) / host.replace("[", "").replace("]", "")
                if folder.is_dir():
                    cas, pair = _read_dir(folder)
                    break
        if isinstance(self.cert, Mapping):
            pair = self._cert.get(host, pair)
        elif self.cert is not None:
            pair = (str(self.cert[0]), str(self.cert[1]))
        environment = _environment() if verify is True else ()
        return HostTrust(verify=verify, cas=cas, cert=pair, environment=environment)


@functools.lru_cache(maxsize=32)
def tls_context(trust: HostTrust | bool | str) -> ssl.SSLContext:
    """The TLS context of one host's trust (a bare bool or path: that ``verify`` alone).

    Shared by every pool of the process: a context is safe to use from many
    threads, and loading a bundle is the expensive part.
    """
    if not isinstance(trust, HostTrust):
        trust = HostTrust(verify=trust, environment=_environment() if trust is True else ())
    if trust.verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif trust.verify is True:
        # The system store first (OpenSSL's paths, SSL_CERT_FILE, SSL_CERT_DIR), then certifi's.
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=certifi.where())
        for bundle in dict.fromkeys(b for b in trust.environment[2:] if b):
            _load(context, bundle)
    else:
        where = str(trust.verify)
        context = (
            ssl.create_default_context(capath=where)
            if os.path.isdir(where)
            else ssl.create_default_context(cafile=where)
        )
    if trust.verify is not False:
        for ca in trust.cas:
            _load(context, ca)
    if trust.cert is not None:
        context.load_cert_chain(trust.cert[0], trust.cert[1])
    return context


def _load(context: ssl.SSLContext, where: str) -> None:
    if os.path.isdir(where):
        context.load_verify_locations(capath=where)
    else:
        context.load_verify_locations(cafile=where)

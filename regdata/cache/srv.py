"""DNS SRV lookups for ``memcached+srv://``, by hand: one query over UDP to the system resolver.

Flux v1 found its memcached servers with ``net.LookupSRV("memcached", "tcp",
service)``; Python has no SRV lookup in the standard library and regdata
does not depend on dnspython, so this module builds the query and reads the
answer itself (RFC 1035 framing, RFC 2782 records).  It follows the search
rules of ``/etc/resolv.conf`` (``search``, ``domain``, ``ndots``) as Go's
resolver does, so a Kubernetes service name such as ``memcached.flux``
resolves inside a cluster, and retries over TCP when the UDP answer is
truncated.  Only the records are read: the targets are host names that
the memcache client resolves when it connects.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DNSError", "ResolverConfig", "SrvRecord", "query_srv", "read_resolv_conf"]

_TYPE_SRV = 33
_CLASS_IN = 1
_RCODE_NXDOMAIN = 3
_MAX_POINTER_HOPS = 64
_HEADER = struct.Struct("!HHHHHH")


class DNSError(OSError):
    """A lookup that failed: no answer, a server failure, or an unreadable answer."""


@dataclass(frozen=True, order=True)
class SrvRecord:
    """One SRV record: where one server of the service listens."""

    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True)
class ResolverConfig:
    """What ``/etc/resolv.conf`` says: name servers, search domains, ndots."""

    nameservers: tuple[tuple[str, int], ...] = (("127.0.0.1", 53),)
    search: tuple[str, ...] = ()
    ndots: int = 1
    timeout: float = 2.0

    def candidates(self, name: str) -> list[str]:
        """The fully qualified names to try, in order, as a stub resolver does."""
        if name.endswith("."):
            return [name]
        searched = [f"{name}.{domain.strip('.')}." for domain in self.search if domain.strip(".")]
        if name.count(".") >= self.ndots:
            return [f"{name}.", *searched]
        return [*searched, f"{name}."]


def read_resolv_conf(path: str | Path = "/etc/resolv.conf") -> ResolverConfig:
    """The resolver configuration of this machine; loopback port 53 when none is set."""
    nameservers: list[tuple[str, int]] = []
    search: tuple[str, ...] = ()
    ndots, timeout = 1, 2.0
    with contextlib.suppress(OSError):
        for line in Path(path).read_text(errors="replace").splitlines():
            words = line.split("#", 1)[0].split(";", 1)[0].split()
            if len(words) < 2:
                continue
            if words[0] == "nameserver":
                nameservers.append((words[1].split("%", 1)[0], 53))
            elif words[0] in ("search", "domain"):
                search = tuple(words[1:])
            elif words[0] == "options":
                for option in words[1:]:
                    key, _, value = option.partition(":")
                    if key == "ndots" and value.isdigit():
                        ndots = min(int(value), 15)
                    elif key == "timeout" and value.isdigit():
                        timeout = float(min(int(value), 30))
    override = os.environ.get("LOCALDOMAIN")
    if override is not None:
        search = tuple(override.split())
    return ResolverConfig(tuple(nameservers) or (("127.0.0.1", 53),), search, ndots, timeout)


def encode_query(name: str, ident: int, qtype: int = _TYPE_SRV) -> bytes:
    """A DNS query for ``name`` (recursion desired)."""
    labels = [label for label in name.rstrip(".").split(".") if label]
    wire = b""
    for label in labels:
        raw = label.encode("idna") if not label.isascii() else label.encode()
        if not 0 < len(raw) < 64:
            raise DNSError(f"bad DNS label in {name!r}")
        wire += bytes([len(raw)]) + raw
    if len(wire) + 1 > 255:
        raise DNSError(f"DNS name too long: {name!r}")
    return _HEADER.pack(ident, 0x0100, 1, 0, 0, 0) + wire + b"\x00" + struct.pack("!HH", qtype, _CLASS_IN)


def _read_name(packet: bytes, offset: int) -> tuple[str, int]:
    """A possibly compressed name at ``offset``; returns it and the offset after it."""
    labels: list[str] = []
    end: int | None = None
    for _ in range(_MAX_POINTER_HOPS):
        if offset >= len(packet):
            raise DNSError("DNS answer cut short inside a name")
        length = packet[offset]
        if length == 0:
            return ".".join(labels), end if end is not None else offset + 1
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(packet):
                raise DNSError("DNS answer cut short inside a pointer")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | packet[offset + 1]
            continue
        if length & 0xC0:
            raise DNSError("DNS answer uses an unknown label type")
        label = packet[offset + 1 : offset + 1 + length]
        if len(label) != length:
            raise DNSError("DNS answer cut short inside a label")
        labels.append(label.decode("ascii", "replace"))
        offset += 1 + length
    raise DNSError("DNS answer has a compression loop")


def decode_srv_answer(packet: bytes, ident: int) -> tuple[int, bool, list[SrvRecord]]:
    """(rcode, truncated, SRV records) of an answer to query ``ident``."""
    if len(packet) < _HEADER.size:
        raise DNSError("DNS answer shorter than its header")
    got, flags, qdcount, ancount, _, _ = _HEADER.unpack_from(packet)
    if got != ident or not flags & 0x8000:
        raise DNSError("DNS answer does not answer our query")
    rcode, truncated = flags & 0x000F, bool(flags & 0x0200)
    offset = _HEADER.size
    for _ in range(qdcount):
        _, offset = _read_name(packet, offset)
        offset += 4
    records: list[SrvRecord] = []
    for _ in range(ancount):
        _, offset = _read_name(packet, offset)
        if offset + 10 > len(packet):
            raise DNSError("DNS answer cut short inside a record")
        rtype, rclass, _, rdlength = struct.unpack_from("!HHIH", packet, offset)
        offset += 10
        rdata_end = offset + rdlength
        if rdata_end > len(packet):
            raise DNSError("DNS answer cut short inside record data")
        if rtype == _TYPE_SRV and rclass == _CLASS_IN and rdlength >= 7:
            priority, weight, port = struct.unpack_from("!HHH", packet, offset)
            target, _ = _read_name(packet, offset + 6)
            if target:  # "." means the service is not offered here
                records.append(SrvRecord(priority, weight, port, target))
        offset = rdata_end
    return rcode, truncated, records


def _exchange_udp(query: bytes, server: tuple[str, int], timeout: float) -> bytes:
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect(server)
        sock.send(query)
        while True:  # skip stray datagrams that do not answer this query
            packet = sock.recv(65535)
            if packet[:2] == query[:2]:
                return packet


def _exchange_tcp(query: bytes, server: tuple[str, int], timeout: float) -> bytes:
    with socket.create_connection(server, timeout=timeout) as sock:
        sock.sendall(struct.pack("!H", len(query)) + query)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack_from("!H", data)[0]:
            chunk = sock.recv(65535)
            if not chunk:
                raise DNSError("DNS server closed the TCP connection")
            data += chunk
        return data[2 : 2 + struct.unpack_from("!H", data)[0]]


def query_srv(name: str, config: ResolverConfig | None = None) -> list[SrvRecord]:
    """The SRV records of ``name`` (``_memcached._tcp.<service>``), sorted.

    Tries the search candidates in order on each name server; a name that
    does not exist moves on to the next candidate.  Raises :class:`DNSError`
    when no server answers or none of the names exists.
    """
    config = config or read_resolv_conf()
    last: Exception | None = None
    for candidate in config.candidates(name):
        for server in config.nameservers:
            ident = secrets.randbelow(0x10000)
            query = encode_query(candidate, ident)
            try:
                rcode, truncated, records = decode_srv_answer(
                    _exchange_udp(query, server, config.timeout), ident
                )
                if truncated:
                    rcode, _, records = decode_srv_answer(_exchange_tcp(query, server, config.timeout), ident)
            except OSError as exc:  # DNSError included: try the next server
                last = exc
                continue
            if rcode == 0 and records:
                return sorted(records)
            if rcode in (0, _RCODE_NXDOMAIN):
                last = DNSError(f"no SRV records for {candidate}")
                break  # an authoritative "no": the other servers will say the same
            last = DNSError(f"DNS server {server[0]} answered rcode {rcode} for {candidate}")
    raise DNSError(f"SRV lookup of {name} failed: {last}")

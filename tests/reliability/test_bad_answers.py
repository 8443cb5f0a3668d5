"""Bad registry answers, in bulk, from a fault proxy in front of the real registry.

Every case ends as a clear exception (a RegdataError) or an ``error`` in
the rows it touches, and the other rows of the scan are exactly the
fault-free ones.  The cases run through one proxy and one Registry (token
cases need a fresh Registry each, so its token cache is empty), one after
another: the proxy's overlay is swapped between cases.

Documents are mutated systematically: for every field path of a real
manifest, index, config, tag list, catalog and token answer, values of
every other JSON type, edge values of its own type, and the field left out.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest

import regdata
from regdata import Credentials, Registry
from regdata.transport import RetryPolicy
from tests.support.builder import Builder, Format, ImageSpec, Layer, Platform, Pushed
from tests.support.proxy import Action, Seen
from tests.support.registry_server import RegistryServer
from tests.support.token_server import TokenServer

from .support import (
    CLEAR,
    CRASH,
    HANDLED,
    LOST,
    RAW,
    Batch,
    Overlay,
    RawProxy,
    Served,
    Tally,
    bad_cells,
    digest_of,
    dumps,
    duplicates,
    judge_exception,
    judge_scan,
    mutated,
    mutations,
    records,
    wrongly_typed,
)

# Fast retries: a malformed answer is not retried anyway, a 5xx or a drop is, briefly.
FAST = RetryPolicy(attempts=3, initial=0.01, maximum=0.05, total=10.0)
MIB = 1024 * 1024
HTML = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1><p>nginx</p></body></html>"
)


def client(**kwargs: Any) -> Registry:
    return Registry(
        cache=None,
        credentials=kwargs.pop("credentials", Credentials.none()),
        retry=FAST,
        timeout=10,
        **kwargs,
    )


# --------------------------------------------------------------------------- the bed

#: Copies of each repository, scanned at once by as many threads: the overlay's
#: paths name the repository, so the cases of different copies never meet.
REPLICAS = 4
Fault = Callable[[Seen], Action | None]


@dataclass
class Target:
    """A repository with a ``victim`` tag the faults aim at and a ``witness`` that must not notice."""

    repo: str
    victim: Pushed
    baseline: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def tag_path(self) -> str:
        return f"/v2/{self.repo}/manifests/victim"

    def manifest_path(self, digest: str) -> str:
        return f"/v2/{self.repo}/manifests/{digest}"

    def blob_path(self, digest: str) -> str:
        return f"/v2/{self.repo}/blobs/{digest}"

    @property
    def tags_path(self) -> str:
        return f"/v2/{self.repo}/tags/list"

    @property
    def first_page(self) -> str:
        return f"{self.tags_path}?n=1000"


@dataclass(frozen=True)
class Case:
    """One bad answer: what the overlay serves (for a given copy of the repository) instead."""

    name: str
    kind: str  # docker, oci, index or list: which repository
    served: Callable[[Target], dict[str, Served]]
    extra: Callable[[Target], list[Fault]] | None = None
    listing: bool = False  # the fault is in the tag listing: judged as such


@dataclass
class Bed:
    server: RegistryServer
    proxy: RawProxy
    overlay: Overlay
    reg: Registry
    targets: dict[str, list[Target]]

    def target(self, kind: str) -> Target:
        """The first copy: what the documents of every copy are (only the repository differs)."""
        return self.targets[kind][0]

    def ref(self, target: Target) -> str:
        return f"{self.proxy.host}/{target.repo}"

    def run(self, batch: Batch, cases: list[Case]) -> dict[str, float]:
        """Every case, REPLICAS at a time, through the one Registry; their durations by name."""
        durations: dict[str, float] = {}

        def work(copy: int) -> None:
            for case in cases[copy::REPLICAS]:
                started = time.monotonic()
                self._one(batch, case, self.targets[case.kind][copy])
                durations[case.name] = time.monotonic() - started

        with ThreadPoolExecutor(REPLICAS) as pool:
            list(pool.map(work, range(REPLICAS)))
        return durations

    def _one(self, batch: Batch, case: Case, target: Target) -> str:
        extra = case.extra(target) if case.extra is not None else None
        with self.overlay.serving(case.served(target), extra):
            try:
                frame = self.reg.get_repository(self.ref(target))
            except Exception as exc:
                outcome, detail = judge_exception(exc)
                if case.listing or outcome != CLEAR:
                    return batch.record(case.name, outcome, detail)
                # A whole repository failing for a fault aimed at one tag loses the other rows.
                return batch.record(case.name, LOST, detail)
        if case.listing:
            return batch.record(case.name, *_listed_rows(frame, target.baseline))
        return batch.record(case.name, *judge_scan(frame, target.baseline, {"victim"}))

    def catalog(self, batch: Batch, name: str, served: Served) -> str:
        with self.overlay.serving({"/v2/_catalog": served}):
            return batch.call(name, lambda: self.reg.catalog(self.proxy.host), _string_list)


def _listed_rows(frame: pd.DataFrame, baseline: pd.DataFrame) -> tuple[str, str]:
    """A scan after a bad listing: the tags it shares with the registry's are read right, others marked."""
    bad = bad_cells(frame)
    if bad:
        return CRASH, bad[0]
    if duplicates(frame):
        return LOST, f"rows twice over: {duplicates(frame)[:3]}"
    base = records(baseline)
    known = {r["tag"] for r in base}
    for row in records(frame):
        if row["tag"] in known and row not in base:
            return LOST, f"a row changed: {row}"[:400]
        if row["tag"] not in known and not row["error"]:
            return LOST, f"a row for a tag never pushed, not marked: {row}"[:400]
    return HANDLED, f"{len(frame)} rows"


def _string_list(value: Any) -> tuple[str, str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return HANDLED, f"{len(value)} names"
    return CRASH, f"not a list of strings: {value!r}"[:300]


def _multiarch(builder: Builder, repo: str, platforms: list[str], format: Format) -> Pushed:
    """An index whose children are the same in every repository (push_multiarch seeds by repository)."""
    children = [
        builder.push_image(
            repo,
            ImageSpec(
                format=format, platform=Platform.parse(p), layers=(Layer.from_seed(f"reliability/{p}"),)
            ),
        )
        for p in platforms
    ]
    return builder.push_index(repo, children, tags=["victim"], format=format)


@pytest.fixture(scope="module")
def bed(registry: RegistryServer, builder: Builder) -> Iterator[Bed]:
    witness = ImageSpec(labels={"role": "witness"}, layers=(Layer.from_seed("witness"),))
    targets: dict[str, list[Target]] = {}
    for copy in range(REPLICAS):
        base = f"reliability/answers-{copy}"
        pushed = {
            "docker": builder.push_image(
                f"{base}/docker",
                ImageSpec(format="docker", labels={"org.opencontainers.image.version": "1.0"}),
                tags=["victim"],
            ),
            "oci": builder.push_image(
                f"{base}/oci",
                ImageSpec(format="oci", annotations={"org.opencontainers.image.source": "https://x"}),
                tags=["victim"],
            ),
            "index": _multiarch(builder, f"{base}/index", ["linux/amd64", "linux/arm64/v8"], "oci"),
            "list": _multiarch(builder, f"{base}/list", ["linux/amd64", "linux/arm/v7"], "docker"),
        }
        for kind, victim in pushed.items():
            builder.push_image(f"{base}/{kind}", witness, tags=["witness"])
            targets.setdefault(kind, []).append(Target(f"{base}/{kind}", victim))
    overlay = Overlay()
    proxy = RawProxy(registry.host)
    proxy.add(overlay)
    reg = client()
    for copies in targets.values():
        for target in copies:
            target.baseline = reg.get_repository(f"{proxy.host}/{target.repo}")
            assert target.baseline["error"].isna().all()
        # Every copy holds the same documents: a case built from the first serves any.
        assert len({t.victim.digest for t in copies}) == 1
    yield Bed(registry, proxy, overlay, reg, targets)
    reg.close()
    proxy.stop()


# --------------------------------------------------------------------------- wrongly typed fields


def _index_chain(
    target: Target,
    config: bytes | None = None,
    child: dict[str, Any] | None = None,
    index: dict[str, Any] | None = None,
) -> dict[str, Served]:
    """Answers for an index whose first child (and its config) are replaced, digests kept consistent."""
    victim = target.victim
    first = victim.children[0]
    served: dict[str, Served] = {}
    child_doc = child if child is not None else first.manifest
    if config is not None:
        served[target.blob_path(digest_of(config))] = Served(config, "application/octet-stream")
        child_doc = dict(
            child_doc, config=dict(child_doc["config"], digest=digest_of(config), size=len(config))
        )
    child_body = dumps(child_doc)
    served[target.manifest_path(digest_of(child_body))] = Served(child_body, first.media_type)
    index_doc = index if index is not None else victim.manifest
    entries = list(index_doc["manifests"])
    entries[0] = dict(entries[0], digest=digest_of(child_body), size=len(child_body))
    served[target.tag_path] = Served(dumps(dict(index_doc, manifests=entries)), victim.media_type)
    return served


def _image_with_config(target: Target, config: bytes) -> dict[str, Served]:
    """Answers for the victim image with its config replaced."""
    doc = target.victim.manifest
    doc["config"] = dict(doc["config"], digest=digest_of(config), size=len(config))
    return {
        target.tag_path: Served(dumps(doc), target.victim.media_type),
        target.blob_path(digest_of(config)): Served(config, "application/octet-stream"),
    }


def _config(body: bytes) -> Callable[[Target], dict[str, Served]]:
    return lambda t: _image_with_config(t, body)


def _child_config(body: bytes) -> Callable[[Target], dict[str, Served]]:
    return lambda t: _index_chain(t, config=body)


def _listing(body: bytes) -> Callable[[Target], dict[str, Served]]:
    return lambda t: {t.tags_path: Served(body)}


def _tag_manifest(
    body: bytes, media_type: str | None, **kwargs: Any
) -> Callable[[Target], dict[str, Served]]:
    return lambda t: {t.tag_path: Served(body, media_type, **kwargs)}


def test_wrongly_typed_manifests_and_indexes(bed: Bed, tally: Tally) -> None:
    batch = tally.batch("answer", "wrong type in a manifest field")
    cases = []
    for kind in ("docker", "oci", "index", "list"):
        victim = bed.target(kind).victim
        for name, doc in wrongly_typed(victim.manifest):
            cases.append(Case(f"{kind} manifest: {name}", kind, _tag_manifest(dumps(doc), victim.media_type)))
    # An index's child, by digest: one platform fails, the other is complete.
    for name, doc in wrongly_typed(bed.target("index").victim.children[0].manifest):
        cases.append(
            Case(f"index child manifest: {name}", "index", lambda t, doc=doc: _index_chain(t, child=doc))
        )
    bed.run(batch, cases)
    batch.assert_clean()


def test_wrongly_typed_configs(bed: Bed, tally: Tally) -> None:
    batch = tally.batch("answer", "wrong type in a config field")
    config = bed.target("docker").victim.config_json
    child_config = bed.target("index").victim.children[0].config_json
    assert config is not None and child_config is not None
    cases = [
        Case(f"image config: {name}", "docker", _config(dumps(doc))) for name, doc in wrongly_typed(config)
    ]
    cases += [
        Case(f"index child config: {name}", "index", _child_config(dumps(doc)))
        for name, doc in wrongly_typed(child_config)
    ]
    bed.run(batch, cases)
    batch.assert_clean()


def test_wrongly_typed_tag_lists_and_catalogs(bed: Bed, tally: Tally) -> None:
    batch = tally.batch("answer", "wrong type in a tag list or catalog")
    listing = {"name": "x", "tags": ["victim", "witness"]}
    bed.run(
        batch,
        [
            Case(f"tag list: {name}", "docker", _listing(dumps(doc)), listing=True)
            for name, doc in wrongly_typed(listing)
        ],
    )
    catalog = {"repositories": [t.repo for t in bed.targets["docker"]]}
    for name, doc in wrongly_typed(catalog):
        bed.catalog(batch, f"catalog: {name}", Served(dumps(doc)))
    batch.assert_clean()


# --------------------------------------------------------------------------- malformed JSON


def _malformed(body: bytes) -> Iterator[tuple[str, bytes]]:
    """Truncations of a real body, and bodies that are not the JSON object expected."""
    for cut in sorted({0, 1, len(body) // 3, len(body) // 2, len(body) - 1}):
        yield f"truncated at {cut} of {len(body)} bytes", body[:cut]
    yield "invalid UTF-8", b'{"a": "\xff\xfe"}'
    yield "UTF-16", body.decode().encode("utf-16")
    yield "a NUL inside", body[:10] + b"\x00" + body[10:]
    yield "JSON null", b"null"
    yield "JSON array", b"[]"
    yield "JSON string", b'"manifest"'
    yield "JSON number", b"1e999"
    yield "NaN", b"NaN"
    yield "an empty object", b"{}"
    yield "deeply nested arrays", b"[" * 100_000 + b"]" * 100_000
    yield "deeply nested objects", b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    yield "a lone surrogate escape", body.replace(b'"', b'"\\ud800', 1)
    yield "two documents", body + body
    yield "trailing garbage", body + b"<garbage>"
    yield "a byte order mark", b"\xef\xbb\xbf" + body
    yield "terminal escape codes", body.replace(b'"', b'"\\u001b[2J\\u001b[31m', 1)


def test_malformed_json(bed: Bed, tally: Tally) -> None:
    batch = tally.batch("answer", "malformed or truncated JSON")
    docker, index = bed.target("docker").victim, bed.target("index").victim
    config = docker.config
    assert config is not None
    cases = [
        Case(f"manifest: {name}", "docker", _tag_manifest(body, docker.media_type))
        for name, body in _malformed(docker.manifest_bytes)
    ]
    cases += [
        Case(f"index: {name}", "index", _tag_manifest(body, index.media_type))
        for name, body in _malformed(index.manifest_bytes)
    ]
    cases += [Case(f"config: {name}", "docker", _config(body)) for name, body in _malformed(config.data)]
    listing = dumps({"name": "x", "tags": ["victim", "witness"]})
    cases += [
        Case(f"tag list: {name}", "docker", _listing(body), listing=True)
        for name, body in _malformed(listing)
    ]
    error = dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "x"}]})
    cases += [
        Case(f"404 error body: {name}", "docker", _tag_manifest(body, None, status=404, digest_header=None))
        for name, body in _malformed(error)
    ]
    # The registry's words go into messages: escape codes there must not reach a terminal.
    escapes = dumps({"errors": [{"code": "X\x1b[2J", "message": "\x1b[31mred\x07\r\nForged: line"}]})
    cases += [
        Case(
            "404 error message with terminal escapes",
            "docker",
            _tag_manifest(escapes, None, status=404, digest_header=None),
        ),
        Case(
            "403 tag list message with terminal escapes",
            "docker",
            lambda t: {t.tags_path: Served(escapes, status=403, digest_header=None)},
            listing=True,
        ),
        Case(
            "a Content-Type with terminal escapes",
            "docker",
            _tag_manifest(b"<html>", "text/\x1b[31mhtml", status=500, digest_header=None),
        ),
    ]
    bed.run(batch, cases)
    batch.assert_clean()


def test_html_where_json_was_expected(bed: Bed, tally: Tally) -> None:
    batch = tally.batch("answer", "an HTML page where JSON was expected")
    config = bed.target("docker").victim.config
    assert config is not None
    child = bed.target("index").victim.children[0]
    cases = []
    for status in (200, 400, 401, 403, 404, 418, 500, 502, 503):
        html = Served(HTML, "text/html; charset=utf-8", status=status, digest_header=None)
        cases += [
            Case(f"manifest: HTML {status}", "docker", lambda t, h=html: {t.tag_path: h}),
            Case(
                f"index child: HTML {status}", "index", lambda t, h=html: {t.manifest_path(child.digest): h}
            ),
            Case(f"config: HTML {status}", "docker", lambda t, h=html: {t.blob_path(config.digest): h}),
            Case(f"tag list: HTML {status}", "docker", lambda t, h=html: {t.tags_path: h}, listing=True),
        ]
    bed.run(batch, cases)
    for status in (200, 404, 500):
        bed.catalog(
            batch,
            f"catalog: HTML {status}",
            Served(HTML, "text/html; charset=utf-8", status=status, digest_header=None),
        )
    batch.assert_clean()


# --------------------------------------------------------------------------- media types

UNKNOWN_TYPES = (
    "application/vnd.docker.plugin.v1+json",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/octet-stream",
    "text/html",
    "",
    ";;;",
    "application/vnd.oci.image.manifest.v2+json",
    "APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON",
    "x" * 5000,
    "application/vnd.oci.image.manifest.v1+json\x00",
)


def test_unknown_media_types(bed: Bed, tally: Tally) -> None:
    batch = tally.batch("answer", "an unknown media type")
    docker, index = bed.target("docker").victim, bed.target("index").victim
    cases = []
    for media_type in UNKNOWN_TYPES:
        shown = repr(media_type[:40])
        header = media_type.replace("\x00", "") or None
        doc = dict(docker.manifest, mediaType=media_type)
        cases.append(Case(f"manifest mediaType {shown}", "docker", _tag_manifest(dumps(doc), header)))
        bare = {k: v for k, v in docker.manifest.items() if k != "mediaType"}
        cases.append(
            Case(f"no mediaType, Content-Type {shown}", "docker", _tag_manifest(dumps(bare), header))
        )
        entries = [dict(e) for e in index.manifest["manifests"]]
        entries[0]["mediaType"] = media_type
        body = dumps(dict(index.manifest, manifests=entries))
        cases.append(Case(f"index entry mediaType {shown}", "index", _tag_manifest(body, index.media_type)))
        child = dict(index.children[0].manifest, mediaType=media_type)
        cases.append(
            Case(
                f"index child mediaType {shown}", "index", lambda t, child=child: _index_chain(t, child=child)
            )
        )
        doc = dict(docker.manifest, config=dict(docker.manifest["config"], mediaType=media_type))
        cases.append(
            Case(
                f"config descriptor mediaType {shown}", "docker", _tag_manifest(dumps(doc), docker.media_type)
            )
        )
    bed.run(batch, cases)
    batch.assert_clean()


# --------------------------------------------------------------------------- sizes


def _padded(doc: dict[str, Any], size: int) -> bytes:
    """Valid JSON of exactly ``size`` bytes: the document with white space after it."""
    body = dumps(doc)
    assert len(body) <= size
    return body + b" " * (size - len(body))


def test_bodies_over_the_cap(bed: Bed, tally: Tally) -> None:
    batch = tally.batch("answer", "a body far over its cap")
    docker = bed.target("docker").victim
    config = docker.config
    assert config is not None
    manifest_cap, config_cap = 4 * MIB, 16 * MIB
    cases = []
    for raw in ("", "chunked"):
        how = "chunked, no Content-Length" if raw else "with Content-Length"
        headers = {RAW: raw} if raw else {}
        for size, name in ((manifest_cap + 1, "cap + 1"), (3 * manifest_cap, "3 x cap")):
            body = _padded(docker.manifest, size)
            cases.append(
                Case(
                    f"manifest {name}, {how}",
                    "docker",
                    _tag_manifest(body, docker.media_type, headers=dict(headers)),
                )
            )
        big = _padded(json.loads(config.data), config_cap + 1)

        def big_config(t: Target, big: bytes = big, headers: dict[str, str] = headers) -> dict[str, Served]:
            served = _image_with_config(t, big)
            served[t.blob_path(digest_of(big))].headers.update(headers)
            return served

        cases.append(Case(f"config cap + 1, {how}", "docker", big_config))
        body = _padded({"name": "x", "tags": ["victim", "witness"]}, manifest_cap + 1)
        cases.append(
            Case(
                f"tag list cap + 1, {how}",
                "docker",
                lambda t, b=body, h=headers: {t.tags_path: Served(b, headers=dict(h))},
                listing=True,
            )
        )
        body = _padded({"errors": [{"code": "X", "message": "y"}]}, 2 * manifest_cap)
        cases.append(
            Case(
                f"404 with a huge error body, {how}",
                "docker",
                _tag_manifest(body, None, status=404, headers=dict(headers), digest_header=None),
            )
        )
        # A manifest of exactly the cap is read: the cap is not off by one.
        body = _padded(docker.manifest, manifest_cap)
        cases.append(
            Case(
                f"manifest of exactly the cap, {how}",
                "docker",
                _tag_manifest(body, docker.media_type, headers=dict(headers)),
            )
        )
    # Compressed small, huge once inflated: the cap counts what is inflated.
    bomb = gzip.compress(dumps(docker.manifest) + b" " * (64 * MIB))
    cases.append(
        Case(
            "manifest gzip bomb (64 MiB inflated)",
            "docker",
            _tag_manifest(bomb, docker.media_type, headers={"Content-Encoding": "gzip"}, digest_header=None),
        )
    )
    cases.append(
        Case(
            "tag list gzip bomb",
            "docker",
            lambda t: {t.tags_path: Served(bomb, headers={"Content-Encoding": "gzip"})},
            listing=True,
        )
    )
    # A Content-Length that claims a huge body is refused before anything is read.
    cases.append(
        Case(
            "Content-Length of 1 TB",
            "docker",
            _tag_manifest(b"{}", docker.media_type, headers={"Content-Length": str(10**12)}),
        )
    )
    bed.run(batch, cases)
    exact = [c for c in batch.cases if "exactly the cap" in c.name]
    assert [c.outcome for c in exact] == [HANDLED, HANDLED], exact
    batch.assert_clean()


# --------------------------------------------------------------------------- pagination


def test_link_headers_that_loop_or_leave(bed: Bed, tally: Tally, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = tally.batch("answer", "a bad Link header")
    port = bed.proxy.host.rsplit(":", 1)[1]
    other = "127.0.0.1:1" if port != "1" else "127.0.0.1:2"
    links: dict[str, Callable[[Target], str]] = {
        "to itself": lambda t: f'<{t.first_page}>; rel="next"',
        "to itself, absolute": lambda t: f'<{bed.proxy.url}{t.first_page}>; rel="next"',
        "to another host": lambda t: f'<http://127.0.0.2:{port}{t.first_page}&x=1>; rel="next"',
        "to another port": lambda t: f'<http://{other}{t.first_page}>; rel="next"',
        "to https on the same port": lambda t: (
            f'<https://{bed.proxy.host}{t.first_page}&last=victim>; rel="next"'
        ),
        "to file:": lambda t: '<file:///etc/passwd>; rel="next"',
        "to javascript:": lambda t: '<javascript:alert(1)>; rel="next"',
        "to a port out of range": lambda t: f'<http://127.0.0.1:99999{t.first_page}>; rel="next"',
        "to a port that is not a number": lambda t: f'<http://127.0.0.1:abc{t.first_page}>; rel="next"',
        "to a broken IPv6 host": lambda t: f'<http://[::1{t.first_page}>; rel="next"',
        "to user:password@ the host": lambda t: (
            f'<http://u:p@{bed.proxy.host}{t.first_page}&last=victim>; rel="next"'
        ),
        "empty target": lambda t: '<>; rel="next"',
        "no brackets": lambda t: f'{t.first_page}&last=victim; rel="next"',
        "an unterminated bracket": lambda t: f'<{t.first_page}&last=victim; rel="next"',
        "unicode in the target": lambda t: f'<{t.first_page}&last=\u00e9>; rel="next"',
        "a very long target": lambda t: f'<{t.first_page}&last={"x" * 30000}>; rel="next"',
        "rel prev only": lambda t: f'<{t.first_page}&last=victim>; rel="prev"',
        "many next links": lambda t: ", ".join([f'<{t.first_page}>; rel="next"'] * 500),
        "a loop through two pages": lambda t: f'<{t.first_page}&last=victim>; rel="next"',
    }
    page = dumps({"name": "x", "tags": ["victim"]})
    page2 = dumps({"name": "x", "tags": ["witness"]})

    def pages(link: Callable[[Target], str]) -> Callable[[Target], dict[str, Served]]:
        return lambda t: {
            t.first_page: Served(page, headers={"Link": link(t)}),
            f"{t.first_page}&last=victim": Served(page2, headers={"Link": f'<{t.first_page}>; rel="next"'}),
        }

    cases = [Case(f"Link {name}", "docker", pages(link), listing=True) for name, link in links.items()]

    def endless(t: Target) -> list[Fault]:
        def fault(seen: Seen) -> Action | None:
            if not seen.path.startswith(t.tags_path):
                return None
            n = int(seen.path.rsplit("page=", 1)[1]) if "page=" in seen.path else 0
            return Action(
                status=200,
                headers={
                    "Content-Type": "application/json",
                    "Link": f'<{t.tags_path}?page={n + 1}>; rel="next"',
                },
                body=dumps({"name": "x", "tags": [f"t{n}"]}),
            )

        return [fault]

    # Pages without end: the page limit made small to try it.
    monkeypatch.setattr(regdata.client.remote, "MAX_PAGES", 50)
    cases.append(Case("Link to a new page, forever", "docker", lambda t: {}, extra=endless, listing=True))
    durations = bed.run(batch, cases)
    assert max(durations.values()) < 10, durations
    batch.assert_clean()


# --------------------------------------------------------------------------- Retry-After

ABSURD_RETRY_AFTER = (
    "99999999999",
    "1" * 400,
    "9" * 4000,
    "1e999",
    "inf",
    "-inf",
    "nan",
    "-1",
    "-99999999999",
    "0x10",
    "1,000",
    "1.5.5",
    "\u00b2",
    "\u00b3\u00b3",
    "   ",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "Mon, 01 Jan 99999999999999999999 00:00:00 GMT",
    "Mon, 01 Jan 2024 00:00:00 +9999",
    "Wed, 21 Oct 2015 07:28:00",
    "Thu, 01 Jan 1970 00:00:00 GMT",
    "tomorrow",
)


def test_absurd_retry_after_is_capped(bed: Bed, tally: Tally) -> None:
    batch = tally.batch("answer", "an absurd Retry-After")
    body = b'{"errors":[{"code":"TOOMANYREQUESTS"}]}'
    cases = [
        Case(
            f"{status} Retry-After {value[:40]!r}",
            "docker",
            lambda t, s=status, v=value: {
                t.tags_path: Served(body, status=s, headers={"Retry-After": v}, digest_header=None)
            },
            listing=True,
        )
        for status in (429, 503)
        for value in ABSURD_RETRY_AFTER
    ]
    durations = bed.run(batch, cases)
    # The cap (60 s) or the exponential schedule: never the registry's absurd wait.
    assert max(durations.values()) < 5, durations
    batch.assert_clean()


# --------------------------------------------------------------------------- digests


def test_bodies_that_do_not_match_their_digest(bed: Bed, tally: Tally) -> None:
    batch = tally.batch("answer", "a digest that does not match its body")
    docker, index = bed.target("docker").victim, bed.target("index").victim
    body = docker.manifest_bytes
    config = docker.config
    assert config is not None
    child = index.children[0]
    variants = {
        "one byte changed": body.replace(b"2", b"3", 1),
        "white space added": body + b"\n",
        "another valid manifest": index.children[1].manifest_bytes,
        "empty": b"",
    }
    cases = []
    for name, changed in variants.items():
        # Served under the real digest: the body no longer matches it.
        cases += [
            Case(
                f"tag manifest {name}",
                "docker",
                _tag_manifest(changed, docker.media_type, digest_header=docker.digest),
            ),
            Case(
                f"child manifest by digest {name}",
                "index",
                lambda t, c=changed: {
                    t.manifest_path(child.digest): Served(c, child.media_type, digest_header=None)
                },
            ),
            Case(
                f"config blob {name}",
                "docker",
                lambda t, c=changed: {
                    t.blob_path(config.digest): Served(c or b"{}", "application/octet-stream")
                },
            ),
        ]
    for header in (
        "sha256:" + "0" * 64,
        "sha256:" + "g" * 64,
        "sha256:abc",
        "md5:" + "0" * 32,
        "sha512:" + "0" * 128,
        "../../etc/passwd",
        "sha256:" + "0" * 64 + "?x=1",
        "\u00e9",
        "sha256:\x1b[31m" + "0" * 64,
        "sha256:" + "0" * 63 + "\x07",
    ):
        cases.append(
            Case(
                f"Docker-Content-Digest {header[:30]!r}",
                "docker",
                _tag_manifest(body, docker.media_type, digest_header=header),
            )
        )
    bed.run(batch, cases)
    batch.assert_clean()


# --------------------------------------------------------------------------- broken transfers


def test_broken_transfers(bed: Bed, tally: Tally) -> None:
    batch = tally.batch("answer", "a transfer cut short or overlong")
    docker, index = bed.target("docker").victim, bed.target("index").victim
    config = docker.config
    assert config is not None
    child = index.children[0]
    places: dict[str, tuple[str, Callable[[Target], str], bytes, str]] = {
        "tag manifest": ("docker", lambda t: t.tag_path, docker.manifest_bytes, docker.media_type),
        "child manifest": (
            "index",
            lambda t: t.manifest_path(child.digest),
            child.manifest_bytes,
            child.media_type,
        ),
        "config": ("docker", lambda t: t.blob_path(config.digest), config.data, "application/octet-stream"),
        "tag list": (
            "docker",
            lambda t: t.first_page,
            dumps({"name": "x", "tags": ["victim", "witness"]}),
            "application/json",
        ),
    }
    cases = []
    for where, (kind, path, body, media_type) in places.items():
        listing = where == "tag list"
        for mode in ("truncate", "overlong", "chunked"):
            cases.append(
                Case(
                    f"{where}: {mode}",
                    kind,
                    lambda t, p=path, b=body, m=media_type, mode=mode: {
                        p(t): Served(b, m, headers={RAW: mode})
                    },
                    listing=listing,
                )
            )

        def drop(t: Target, path: Callable[[Target], str] = path) -> list[Fault]:
            return [lambda seen: Action(drop=True) if seen.path == path(t) else None]

        cases.append(Case(f"{where}: connection dropped", kind, lambda t: {}, extra=drop, listing=listing))
    bed.run(batch, cases)
    batch.assert_clean()


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class TokenCase:
    """A fault at the registry (its challenge) or at the token server (its answer), for one repository.

    Each factory takes the repository the case runs on and returns a fault
    that touches that repository's requests only, so cases run at once.
    """

    name: str
    registry: Callable[[str], Fault] | None = None
    token: Callable[[str], Fault] | None = None


@dataclass
class TokenBed:
    server: TokenServer
    registry_proxy: RawProxy
    token_proxy: RawProxy
    registry_overlay: Overlay
    token_overlay: Overlay
    repos: list[str]
    baselines: dict[str, pd.DataFrame]
    credentials: Credentials

    @property
    def realm(self) -> str:
        return f"{self.token_proxy.url}/token"

    def run(self, batch: Batch, cases: list[TokenCase]) -> None:
        """Each case with a fresh Registry (an empty token cache), REPLICAS at a time."""

        def work(copy: int) -> None:
            for case in cases[copy::REPLICAS]:
                self._one(batch, case, self.repos[copy])

        with ThreadPoolExecutor(REPLICAS) as pool:
            list(pool.map(work, range(REPLICAS)))

    def _one(self, batch: Batch, case: TokenCase, repo: str) -> str:
        at_registry = [case.registry(repo)] if case.registry else []
        at_token = [case.token(repo)] if case.token else []
        with (
            self.registry_overlay.serving({}, at_registry),
            self.token_overlay.serving({}, at_token),
            client(credentials=self.credentials) as reg,
        ):
            try:
                frame = reg.get_repository(f"{self.registry_proxy.host}/{repo}")
            except Exception as exc:
                return batch.exception(case.name, exc)
        return batch.record(case.name, *judge_scan(frame, self.baselines[repo], set()))


@pytest.fixture(scope="module")
def token_bed(
    token_registry: RegistryServer, token_server: TokenServer, token_builder: Builder
) -> Iterator[TokenBed]:
    repos = [f"private/reliability-token-{copy}" for copy in range(REPLICAS)]
    for repo in repos:
        token_builder.push_image(repo, ImageSpec(labels={"who": "alice"}), tags=["1", "2"])
    token_proxy = RawProxy(f"127.0.0.1:{token_server.port}")
    token_overlay = Overlay()
    token_proxy.add(token_overlay)
    registry_proxy = RawProxy(token_registry.host)
    registry_overlay = Overlay()
    registry_proxy.add(registry_overlay)
    realm = f"{token_proxy.url}/token"

    def to_token_proxy(seen: Seen) -> Action:
        def rewrite(status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
            return (
                status,
                {
                    k: v.replace(token_server.realm, realm) if k.lower() == "www-authenticate" else v
                    for k, v in headers.items()
                },
                body,
            )

        return Action(transform=rewrite)

    registry_proxy.add(to_token_proxy)
    credentials = Credentials.from_mapping({registry_proxy.host: ("alice", token_server.users["alice"])})
    baselines = {}
    with client(credentials=credentials) as reg:
        for repo in repos:
            baselines[repo] = reg.get_repository(f"{registry_proxy.host}/{repo}")
            assert len(baselines[repo]) == 2 and baselines[repo]["error"].isna().all()
    assert any(r.path == "/token" for r in token_server.requests)
    yield TokenBed(
        token_server,
        registry_proxy,
        token_proxy,
        registry_overlay,
        token_overlay,
        repos,
        baselines,
        credentials,
    )
    registry_proxy.stop()
    token_proxy.stop()


def _mine(repo: str, path: str) -> bool:
    """Whether a request is for ``repo``: its API path, or a token request whose scope names it."""
    return path.startswith(f"/v2/{repo}/") or quote(f"repository:{repo}:", safe="") in path


def _token_answer(change: Callable[[dict[str, Any]], Any]) -> Callable[[str], Fault]:
    """A fault rewriting the token server's JSON answer with ``change``.

    ``change`` returns the new document, raw bytes, or (bytes, extra headers).
    """

    def for_repo(repo: str) -> Fault:
        def fault(seen: Seen) -> Action | None:
            if not (seen.path.startswith("/token") and _mine(repo, seen.path)):
                return None

            def transform(
                status: int, headers: dict[str, str], body: bytes
            ) -> tuple[int, dict[str, str], bytes]:
                if status != 200:
                    return status, headers, body
                new = change(json.loads(body))
                extra: dict[str, str] = {}
                if isinstance(new, tuple):
                    new, extra = new
                return status, {**headers, **extra}, new if isinstance(new, bytes) else dumps(new)

            return Action(transform=transform)

        return fault

    return for_repo


def _token_status(status: int) -> Callable[[str], Fault]:
    def for_repo(repo: str) -> Fault:
        return lambda seen: (
            Action(status=status, headers={"Content-Type": "text/html"}, body=HTML)
            if seen.path.startswith("/token") and _mine(repo, seen.path)
            else None
        )

    return for_repo


def _challenge(value: str) -> Callable[[str], Fault]:
    """A fault putting ``value`` in the registry's WWW-Authenticate for one repository."""

    def for_repo(repo: str) -> Fault:
        def fault(seen: Seen) -> Action | None:
            if not _mine(repo, seen.path):
                return None

            def transform(
                status: int, headers: dict[str, str], body: bytes
            ) -> tuple[int, dict[str, str], bytes]:
                if status == 401:
                    headers = {k: v for k, v in headers.items() if k.lower() != "www-authenticate"}
                    headers["WWW-Authenticate"] = value
                return status, headers, body

            return Action(transform=transform)

        return fault

    return for_repo


def test_wrongly_typed_token_answers(token_bed: TokenBed, tally: Tally) -> None:
    batch = tally.batch("answer", "wrong type in a token answer")
    sample = {"token": "t", "access_token": "t", "expires_in": 300, "issued_at": "2024-01-01T00:00:00Z"}
    cases = [
        TokenCase(
            f"token answer: {name}", token=_token_answer(lambda doc, p=path, v=value: mutated(doc, p, v))
        )
        for name, path, value in mutations(sample)
    ]
    # Both token fields wrong at once: nothing usable is left.
    cases += [
        TokenCase(
            f"token and access_token = {json.dumps(value)}",
            token=_token_answer(lambda doc, v=value: dict(doc, token=v, access_token=v)),
        )
        for value in (None, 0, True, [], {}, "", "\ud800")
    ]
    token_bed.run(batch, cases)
    batch.assert_clean()


def test_token_answers_malformed_expired_and_huge(token_bed: TokenBed, tally: Tally) -> None:
    batch = tally.batch("answer", "a malformed, expired or huge token answer")
    one_mib = 1024 * 1024
    changes: dict[str, Callable[[dict[str, Any]], Any]] = {
        "expires_in 0": lambda d: dict(d, expires_in=0),
        "expires_in -1": lambda d: dict(d, expires_in=-1),
        "expires_in -10**9": lambda d: dict(d, expires_in=-(10**9)),
        "expires_in 10**30": lambda d: dict(d, expires_in=10**30),
        "expires_in 1e308": lambda d: dict(d, expires_in=1e308),
        "token of 100 KiB": lambda d: dict(d, token="a" * 100_000, access_token="a" * 100_000),
        "token with CR LF": lambda d: dict(d, token=d["token"] + "\r\nX-Injected: 1"),
        "token with a space": lambda d: dict(d, token=d["token"][:20] + " " + d["token"][20:]),
        "token not Latin-1": lambda d: dict(d, token="\u4e2d\u6587" + d["token"]),
        "token with a NUL": lambda d: dict(d, token=d["token"] + "\x00"),
        "answer padded over 1 MiB": lambda d: dumps(d) + b" " * one_mib,
        "answer over 1 MiB, chunked": lambda d: (dumps(d) + b" " * one_mib, {RAW: "chunked"}),
        "answer truncated": lambda d: dumps(d)[:-5],
        "answer truncated in transfer": lambda d: (dumps(d), {RAW: "truncate"}),
        "answer is HTML": lambda d: HTML,
        "answer is empty": lambda d: b"",
        "answer is a list": lambda d: b"[]",
        "answer nested 100,000 deep": lambda d: b"[" * 100_000 + b"]" * 100_000,
        "an unknown token format": lambda d: dict(d, token="not-a-jwt", access_token="not-a-jwt"),
    }
    cases = [TokenCase(name, token=_token_answer(change)) for name, change in changes.items()]
    cases += [
        TokenCase(f"token endpoint answers {status} HTML", token=_token_status(status))
        for status in (400, 401, 403, 404, 500, 503)
    ]
    token_bed.run(batch, cases)
    # The faults did reach their answers: a bad one refused, a short-lived one used once.
    outcomes = {c.name: c.outcome for c in batch.cases}
    assert outcomes["answer is HTML"] == outcomes["token with CR LF"] == CLEAR, outcomes
    assert outcomes["expires_in 0"] == outcomes["expires_in -10**9"] == HANDLED, outcomes
    # A token the server signed already expired: the registry refuses it.
    server = token_bed.server
    server.exp_shift = -3600
    try:
        token_bed._one(batch, TokenCase("token already expired when issued"), token_bed.repos[0])
    finally:
        server.exp_shift = 0
    assert batch.cases[-1].outcome == CLEAR, batch.cases[-1]
    batch.assert_clean()


def test_malformed_www_authenticate(token_bed: TokenBed, tally: Tally) -> None:
    batch = tally.batch("answer", "a malformed WWW-Authenticate challenge")
    realm = token_bed.realm
    service = token_bed.server.service
    challenges = [
        "",
        " ",
        "Bearer",
        "Bearer ",
        "Bearer realm",
        "Bearer realm=",
        'Bearer realm=""',
        'Bearer realm="',
        'Bearer realm="\\"',
        "Bearer ,,,,",
        "Bearer =",
        '=Bearer realm="x"',
        "Bearer\trealm=x",
        'Bearer realm="http://127.0.0.1:99999/token"',
        'Bearer realm="http://127.0.0.1:abc/token"',
        'Bearer realm="http://[::1/token"',
        'Bearer realm="ftp://127.0.0.1/token"',
        'Bearer realm="file:///etc/passwd"',
        'Bearer realm="javascript:alert(1)"',
        'Bearer realm="/token"',
        'Bearer realm="//127.0.0.1/token"',
        'Bearer realm="http://example.invalid/token"',
        'Bearer realm="http://127.0.0.1:1/token"',
        f'Bearer realm="{realm.replace("http://", "http://u:p@")}",service="{service}"',
        f'Bearer realm="{realm}",service="{"x" * 30000}"',
        f'Bearer realm="{realm}" service="{service}"',
        f"Bearer realm={realm},service={service}",
        f'bEaReR ReAlM="{realm}",SERVICE="{service}"',
        f'Bearer realm="{realm}",,service="{service}",,',
        f'Bearer realm="{realm}?x=1&y",service="{service}"',
        f'Bearer realm="{realm}",service="{service}",scope="repository:../../x:pull"',
        f'Bearer realm="{realm}",service="{service}",error="insufficient_scope",scope="registry:catalog:*"',
        f'Bearer realm="{realm}",service="\u00e9\u00e8"',
        'Bearer error="invalid_token"',
        'Basic realm="registry"',
        "Negotiate",
        'Digest realm="r", nonce="n", qop="auth"',
        'Bearer realm="' + "a" * 60000 + '"',
    ]
    token_bed.run(
        batch,
        [TokenCase(f"WWW-Authenticate {value[:60]!r}", registry=_challenge(value)) for value in challenges],
    )
    outcomes = {c.name: c.outcome for c in batch.cases}
    assert outcomes["WWW-Authenticate 'Negotiate'"] == CLEAR, outcomes
    batch.assert_clean()

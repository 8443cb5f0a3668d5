"""The cache in a scan, against the real registry and the real memcached (issue 4's acceptance).

Requests are counted from ``Registry.requests``: a row whose ``cache`` is not
``hit`` went over HTTP.  Time is moved with an injected clock, never slept.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import regdata
from regdata import Credential, Credentials
from regdata.cache import Cache
from regdata.cache.backends import Backend, MemoryBackend
from regdata.cache.backends.memcached import MemcachedBackend
from regdata.cache.backends.sqlite import SQLiteBackend
from regdata.cache.open import open_cache, parse_ttl
from regdata.cache.remote import CachedRemote
from regdata.errors import NotFound, RegistryError
from tests.support.builder import Builder, ImageSpec, Schema1Spec, helm_chart_spec
from tests.support.proxy import Seen, start_proxy
from tests.support.registry_server import MemcachedServer, RegistryServer
from tests.test_cache_backends import Ticker, memcached_dump

ROOT = Path(__file__).resolve().parent.parent


def http(reg: regdata.Registry) -> pd.DataFrame:
    """The rows of the request log that went over HTTP."""
    df = reg.requests
    return df[df["cache"] != "hit"]


def counts(reg: regdata.Registry) -> dict[tuple[str, str], int]:
    """HTTP requests by (kind, method)."""
    sizes = http(reg).groupby(["kind", "method"], observed=True).size()
    return {(str(kind), str(method)): int(n) for (kind, method), n in sizes.to_dict().items()}


def scan(reg: regdata.Registry, repo: str) -> tuple[pd.DataFrame, dict[tuple[str, str], int]]:
    """One get_repository, and the HTTP requests it made."""
    reg.factory.log.clear()
    frame = reg.get_repository(repo)
    return frame, counts(reg)


def client(cache: Any, credentials: Credentials | None = None, **kwargs: Any) -> regdata.Registry:
    return regdata.Registry(cache=cache, credentials=credentials or Credentials.none(), **kwargs)


def push_every_kind(builder: Builder, repo: str) -> None:
    """Five tags, each of another kind: Docker, OCI, an index with attestations, an artifact, schema1."""
    builder.push_image(repo, ImageSpec(format="docker", labels={"v": "1"}), tags=["docker", "same"])
    builder.push_image(repo, ImageSpec(format="oci", created="2024-03-01T00:00:00Z"), tags=["oci"])
    builder.push_multiarch(
        repo,
        ["linux/amd64", "linux/arm64/v8"],
        tags=["multi"],
        format="oci",
        attest=True,
        spec=ImageSpec(created="2024-05-01T00:00:00Z"),
    )
    builder.push_artifact(repo, helm_chart_spec(), tags=["chart"])
    builder.push_schema1(repo, "old", Schema1Spec())


TAGS = 6


@pytest.fixture(params=["memcached", "sqlite", "memory"])
def backend_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Makes backends of one kind over one store (several backends: several processes' view)."""
    made: list[Backend] = []

    def make() -> Backend:
        backend: Backend
        if request.param == "memcached":
            server: MemcachedServer = request.getfixturevalue("memcached")
            backend = MemcachedBackend([server.address])
        elif request.param == "sqlite":
            backend = SQLiteBackend(tmp_path / "cache.sqlite")
        else:
            backend = made[0] if made else MemoryBackend()
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


# --------------------------------------------------------------------------- the acceptance


def test_warm_scan_within_ttl_makes_no_request(
    backend_factory: Any, registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    push_every_kind(builder, repo_name)
    repo = f"{registry.host}/{repo_name}"
    uncached, _ = scan(client(None), repo)
    reg = client(Cache(backend_factory(), ttl=300))
    cold, cold_counts = scan(reg, repo)
    pd.testing.assert_frame_equal(cold, uncached)
    assert cold_counts[("tags", "GET")] == 1
    # Six tags (two sharing a manifest), two index children, four distinct configs.
    assert cold_counts[("manifest", "GET")] == TAGS + 2
    assert cold_counts[("blob", "GET")] == 4

    warm, warm_counts = scan(reg, repo)
    assert warm_counts == {}
    pd.testing.assert_frame_equal(warm, uncached)
    hits = reg.requests
    assert set(hits["cache"]) == {"hit"}
    assert (hits["kind"] == "manifest_head").sum() == TAGS  # the tag digests, not asked

    # Another Registry over the same store (a new process's view): no request either.
    other = client(Cache(backend_factory(), ttl=300))
    again, again_counts = scan(other, repo)
    assert again_counts == {}
    pd.testing.assert_frame_equal(again, uncached)


class CountingBackend(MemoryBackend):
    """A memory backend that counts its reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, key: str) -> bytes | None:
        self.reads += 1
        return super().get(key)


def test_warm_scan_reads_this_processs_memory_not_the_backend(
    registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    """What this process checked once is kept parsed: a warm scan reads no backend and hands no
    task to a thread (each is answered at once); with ``memory=0`` every read goes to the backend."""
    push_every_kind(builder, repo_name)
    repo = f"{registry.host}/{repo_name}"
    backend = CountingBackend()
    reg = client(Cache(backend, ttl=300))
    cold, _ = scan(reg, repo)
    backend.reads = 0
    threads = set()
    real_config = reg.factory.remote(registry.host).config

    def spy(*args: Any, **kwargs: Any) -> Any:  # the pool's path: it must not be taken
        threads.add(threading.current_thread().name)
        return real_config(*args, **kwargs)

    reg.factory.remote(registry.host).config = spy  # type: ignore[method-assign]
    warm, warm_counts = scan(reg, repo)
    pd.testing.assert_frame_equal(warm, cold)
    assert warm_counts == {} and backend.reads == 0 and threads == set()
    assert reg.cache is not None and reg.cache.stats()["memory_hits"] > 0

    bare = client(Cache(backend, ttl=300, memory=0))
    scan(bare, repo)
    backend.reads = 0
    again, again_counts = scan(bare, repo)
    pd.testing.assert_frame_equal(again, cold)
    assert again_counts == {} and backend.reads > 0

    # A memory too small for the repository keeps within its bound; the rest comes from the backend.
    small = Cache(backend, ttl=300, memory=20_000)
    scan(client(small), repo)
    tight, tight_counts = scan(client(small), repo)
    pd.testing.assert_frame_equal(tight, cold)
    assert tight_counts == {} and 0 < small.stats()["memory_bytes"] <= 20_000


def test_a_task_half_answered_from_memory_logs_each_hit_once(
    registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    """Manifests in memory but configs not: the task goes to a worker, and the hits its quick
    try found are not logged twice."""
    push_every_kind(builder, repo_name)
    repo = f"{registry.host}/{repo_name}"
    backend = MemoryBackend()
    scan(client(Cache(backend, ttl=300)), repo)

    def hits(reg: regdata.Registry) -> dict[str, int]:
        log = reg.requests
        return {str(k): int(v) for k, v in log[log["cache"] == "hit"]["kind"].value_counts().items()}

    from_store = client(Cache(backend, ttl=300))  # another process: every hit from the backend
    scan(from_store, repo)
    cache = Cache(backend, ttl=300)
    half = client(cache)
    scan(half, repo)
    for key in [k for k in cache._recent._entries if k[0] == "config"]:
        cache._recent.pop(key)
    before = cache.hits
    scan(half, repo)
    assert hits(half) == hits(from_store)
    assert cache.hits - before == sum(hits(from_store).values())


def test_a_tag_list_handed_out_is_the_callers_to_change(
    registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    builder.push_image(repo_name, ImageSpec(labels={"n": "1"}), tags=["a", "b"])
    repo = f"{registry.host}/{repo_name}"
    reg = client(Cache(MemoryBackend(), ttl=300))
    tags = reg.tags(repo)
    tags.remove("a")
    assert sorted(reg.tags(repo)) == ["a", "b"]
    assert sorted(reg.get_repository(repo)["tag"]) == ["a", "b"]


def test_after_ttl_one_tag_list_and_heads_only(
    backend_factory: Any, registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    push_every_kind(builder, repo_name)
    repo = f"{registry.host}/{repo_name}"
    clock = Ticker(1_000_000.0)
    reg = client(Cache(backend_factory(), ttl=60, clock=clock))
    first, _ = scan(reg, repo)
    clock.advance(59)
    assert scan(reg, repo)[1] == {}
    clock.advance(2)
    stale, stale_counts = scan(reg, repo)
    assert stale_counts == {("tags", "GET"): 1, ("manifest_head", "HEAD"): TAGS}
    pd.testing.assert_frame_equal(stale, first)
    # Revalidated: fresh again for another TTL.
    assert scan(reg, repo)[1] == {}
    clock.advance(61)
    assert scan(reg, repo)[1] == {("tags", "GET"): 1, ("manifest_head", "HEAD"): TAGS}


def test_changed_tag_is_fetched_again(
    backend_factory: Any, registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    builder.push_image(repo_name, ImageSpec(labels={"build": "1"}), tags=["moving"])
    builder.push_image(repo_name, ImageSpec(labels={"build": "fixed"}), tags=["fixed"])
    repo = f"{registry.host}/{repo_name}"
    clock = Ticker(1_000_000.0)
    reg = client(Cache(backend_factory(), ttl=60, clock=clock))
    first, _ = scan(reg, repo)
    old = first.set_index("tag").loc["moving", "digest"]
    new = builder.push_image(repo_name, ImageSpec(labels={"build": "2"}), tags=["moving"])
    builder.push_image(repo_name, ImageSpec(labels={"build": "3"}), tags=["added"])

    within, within_counts = scan(reg, repo)  # within the TTL the cache answers: the old digest
    assert within_counts == {}
    assert within.set_index("tag").loc["moving", "digest"] == old

    clock.advance(61)
    after, after_counts = scan(reg, repo)
    assert after.set_index("tag").loc["moving", "digest"] == new.digest
    assert dict(after.set_index("tag").loc["moving", "labels"]) == {"build": "2"}
    assert set(after["tag"]) == {"moving", "fixed", "added"}
    # The tag list, a HEAD per known tag, and only the new manifests and configs.
    assert after_counts == {
        ("tags", "GET"): 1,
        ("manifest_head", "HEAD"): 2,
        ("manifest", "GET"): 2,
        ("blob", "GET"): 2,
    }
    pd.testing.assert_frame_equal(after, scan(client(None), repo)[0])


SECOND_PROCESS = textwrap.dedent("""
    import json, sys
    import regdata
    reg = regdata.Registry(cache=sys.argv[1], credentials=regdata.Credentials.none())
    frame = reg.get_repository(sys.argv[2])
    log = reg.requests
    http = log[log["cache"] != "hit"]
    print(json.dumps({
        "http": len(http),
        "manifest_gets": int(((http["kind"] == "manifest") & (http["method"] == "GET")).sum()),
        "hits": int((log["cache"] == "hit").sum()),
        "frame": frame.to_json(orient="records", date_format="iso", default_handler=str),
    }))
""")


def test_second_process_makes_no_manifest_get(
    memcached: MemcachedServer, registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    push_every_kind(builder, repo_name)
    repo = f"{registry.host}/{repo_name}"
    first = client(f"memcached://{memcached.host}")
    frame, first_counts = scan(first, repo)
    assert first_counts[("manifest", "GET")] == TAGS + 2
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REGDATA_CACHE": "none"}
    done = subprocess.run(
        [sys.executable, "-c", SECOND_PROCESS, f"memcached://{memcached.host}", repo],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout)
    assert second["manifest_gets"] == 0
    assert second["http"] == 0  # within the TTL: not even the tag list
    assert second["hits"] > 0
    assert second["frame"] == frame.to_json(orient="records", date_format="iso", default_handler=str)


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("fault", ["killed", "restarted", "paused"])
def test_memcached_failing_mid_scan(
    fault: str,
    server_factory: Any,
    registry: RegistryServer,
    builder: Builder,
    repo_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for i in range(12):
        builder.push_image(repo_name, ImageSpec(labels={"n": str(i)}), tags=[f"t{i}"])
    mc = server_factory.memcached()
    # A slow registry makes the scan long enough to lose memcached in its middle.
    proxy = start_proxy(registry.host, delay=0.02)
    manifests = 0
    lock = threading.Lock()

    def strike(seen: Seen) -> None:
        nonlocal manifests
        if "/manifests/" not in seen.path:
            return None
        with lock:
            manifests += 1
            if manifests != 5:
                return None
        if fault == "killed":
            mc.kill()
        elif fault == "restarted":
            mc.restart(kill=True)
        else:
            mc.pause()
        return None

    try:
        repo = f"{proxy.host}/{repo_name}"
        uncached, _ = scan(client(None), repo)
        proxy.add(strike)
        cache = Cache(MemcachedBackend([mc.address], timeout=0.3, connect_timeout=0.3))
        reg = client(cache, concurrency=4)
        with caplog.at_level(logging.WARNING, logger="regdata.cache"):
            frame, _ = scan(reg, repo)
            pd.testing.assert_frame_equal(frame, uncached)
            assert frame["error"].isna().all()
            if fault != "restarted":  # a restarted memcached may serve the rest of the scan
                frame, _ = scan(reg, repo)
                pd.testing.assert_frame_equal(frame, uncached)
        assert manifests >= 5
        assert cache.errors > 0
        warnings = [r for r in caplog.records if r.name.startswith("regdata.cache")]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "memcached" in warnings[0].getMessage()
        errors = [op for op in cache.backend.operations.records() if op.outcome == "error"]  # type: ignore[attr-defined]
        assert errors
    finally:
        if fault == "paused":
            mc.resume()
        proxy.stop()


def test_memcached_down_from_the_start(
    server_factory: Any,
    registry: RegistryServer,
    builder: Builder,
    repo_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    builder.push_image(repo_name, ImageSpec(), tags=["a", "b"])
    mc = server_factory.memcached()
    mc.kill()
    repo = f"{registry.host}/{repo_name}"
    cache = Cache(MemcachedBackend([mc.address]))
    with caplog.at_level(logging.WARNING, logger="regdata.cache"):
        frame, _ = scan(client(cache), repo)
    pd.testing.assert_frame_equal(frame, scan(client(None), repo)[0])
    assert cache.errors > 0 and len([r for r in caplog.records if r.name == "regdata.cache"]) == 1


def test_sqlite_unwritable_scans_uncached(
    tmp_path: Path,
    registry: RegistryServer,
    builder: Builder,
    repo_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    builder.push_image(repo_name, ImageSpec(), tags=["a", "b"])
    (tmp_path / "not-a-dir").write_text("")
    repo = f"{registry.host}/{repo_name}"
    reg = client(f"sqlite://{tmp_path}/not-a-dir/cache.sqlite")  # no exception making it
    with caplog.at_level(logging.WARNING, logger="regdata.cache"):
        frame, first = scan(reg, repo)
        # Another process, or another Registry, finds nothing: the file holds nothing.
        _, second = scan(client(f"sqlite://{tmp_path}/not-a-dir/cache.sqlite"), repo)
    pd.testing.assert_frame_equal(frame, scan(client(None), repo)[0])
    assert first == second  # nothing was cached
    assert reg.cache is not None and reg.cache.errors > 0
    # One warning per Cache: the two Registries each said it once.
    assert len([r for r in caplog.records if r.name == "regdata.cache"]) == 2


def test_corrupt_and_foreign_entries_are_misses_and_overwritten(
    registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    builder.push_image(repo_name, ImageSpec(labels={"x": "1"}), tags=["a"])
    builder.push_image(repo_name, ImageSpec(labels={"x": "2"}), tags=["b"])
    builder.push_image(repo_name, ImageSpec(labels={"x": "3"}), tags=["c"])
    repo = f"{registry.host}/{repo_name}"
    backend = MemoryBackend()
    cache = Cache(backend)
    reg = client(cache)
    truth, _ = scan(reg, repo)
    by_tag = truth.set_index("tag")
    remote = reg.factory.remote(registry.host)
    assert isinstance(remote, CachedRemote)

    def key(kind: str, reference: str) -> str:
        return remote.key(kind, repo_name, reference)

    a_manifest = key("manifest", str(by_tag.loc["a", "digest"]))
    b_config = key("blob", str(by_tag.loc["b", "config_digest"]))
    original_manifest = backend.get(a_manifest)
    original_config = backend.get(b_config)
    assert original_manifest is not None and original_config is not None
    backend.set(key("tags", ""), b"{not json")  # bad JSON
    backend.set(key("tag", "c"), json.dumps({"v": "sha256:../../etc", "t": 1e18}).encode())  # foreign
    body = original_manifest.split(b"\n", 2)[2]
    # A manifest that parses, under the digest of another: caught by its digest.
    media_type = original_manifest.split(b"\n", 2)[1]
    backend.set(a_manifest, b"M1\n" + media_type + b"\n" + body.replace(b"}", b" }", 1))
    backend.set(b_config, original_config + b" ")  # a config whose digest is wrong

    # This process remembers what it checked; another one reads the poisoned store.
    cache = Cache(backend)
    reg = client(cache)
    frame, requests = scan(reg, repo)
    pd.testing.assert_frame_equal(frame, truth)
    assert requests == {("tags", "GET"): 1, ("manifest", "GET"): 2, ("blob", "GET"): 1}
    assert cache.corrupt == 4
    # Overwritten with what the registry said: the next scan is all hits.
    assert backend.get(a_manifest) == original_manifest
    assert backend.get(b_config) == original_config
    assert scan(reg, repo)[1] == {}


def test_cached_bodies_are_verified_on_the_way_out(
    registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    """A poisoned store cannot put a wrong image in a frame: every body is hashed as it leaves."""
    builder.push_image(repo_name, ImageSpec(labels={"real": "yes"}), tags=["v1"])
    other = builder.push_image(repo_name + "-other", ImageSpec(labels={"real": "no"}), tags=["v1"])
    repo = f"{registry.host}/{repo_name}"
    backend = MemoryBackend()
    cache = Cache(backend)
    reg = client(cache)
    truth, _ = scan(reg, repo)
    remote = reg.factory.remote(registry.host)
    assert isinstance(remote, CachedRemote)
    digest = str(truth.loc[0, "digest"])
    # Swap in another image's (valid, well-formed) manifest under this digest's key.
    backend.set(
        remote.key("manifest", repo_name, digest),
        b"M1\n" + other.media_type.encode() + b"\n" + other.manifest_bytes,
    )
    # Read by another process (this one remembers what it checked).
    frame, requests = scan(client(Cache(backend)), repo)
    pd.testing.assert_frame_equal(frame, truth)
    assert frame.loc[0, "labels"] == {"real": "yes"}
    assert requests == {("manifest", "GET"): 1}


# --------------------------------------------------------------------------- who sees what


@pytest.fixture
def private_repo(token_registry: RegistryServer, token_builder: Builder, repo_name: str) -> str:
    token_builder.push_image(f"private/{repo_name}", ImageSpec(labels={"secret": "plans"}), tags=["v1", "v2"])
    return f"{token_registry.host}/private/{repo_name}"


def user(server: RegistryServer, name: str) -> Credentials:
    return Credentials.from_mapping({server.host: (name, server.users[name])})


def test_entries_of_one_credential_never_serve_another(
    memcached: MemcachedServer, token_registry: RegistryServer, private_repo: str
) -> None:
    cache_url = f"memcached://{memcached.host}"
    alice = client(cache_url, user(token_registry, "alice"))
    frame, _ = scan(alice, private_repo)
    assert len(frame) == 2 and frame["error"].isna().all()
    assert scan(alice, private_repo)[1] == {}  # alice's own entries serve alice

    digest = str(frame.loc[0, "digest"])
    for who in (user(token_registry, "bob"), Credentials.none()):
        other = client(cache_url, who)
        with pytest.raises(RegistryError) as denied:
            other.get_repository(private_repo)
        assert denied.value.status in (401, 403)
        with pytest.raises(RegistryError):  # not by digest either, which alice's scan stored
            other.get_image(f"{private_repo}@{digest}")
        assert not (other.requests["cache"] == "hit").any()
        assert other.cache is not None and other.cache.hits == 0


def test_two_registries_with_one_repository_name_do_not_collide(
    registry: RegistryServer, builder: Builder, server_factory: Any, repo_name: str
) -> None:
    second = server_factory.registry()
    second_builder = server_factory.builder(second)
    one = builder.push_image(repo_name, ImageSpec(labels={"on": "one"}), tags=["v1"])
    two = second_builder.push_image(repo_name, ImageSpec(labels={"on": "two"}), tags=["v1"])
    reg = client(Cache(MemoryBackend()))
    for _ in range(2):  # cold, then from the cache
        a, _ = scan(reg, f"{registry.host}/{repo_name}")
        b, _ = scan(reg, f"{second.host}/{repo_name}")
        assert a.loc[0, "digest"] == one.digest and a.loc[0, "labels"] == {"on": "one"}
        assert b.loc[0, "digest"] == two.digest and b.loc[0, "labels"] == {"on": "two"}


def _secrets_of(reg: regdata.Registry, server: RegistryServer) -> list[str]:
    """The passwords and every bearer token the Registry's Remote holds."""
    remote = reg.factory.remote(server.host)
    layer: Any = remote.transport
    while not hasattr(layer, "tokens"):
        layer = layer.inner
    tokens = [t.value for t in layer.tokens._tokens.values()]
    assert tokens, "the scan should have fetched tokens"
    return [*server.users.values(), *tokens]


def _assert_secret_free(blob: bytes, secrets: list[str]) -> None:
    import base64

    for secret in secrets:
        for form in (secret, base64.b64encode(secret.encode()).decode()):
            assert form.encode() not in blob, "a secret reached the cache"
        # A token's signature alone is enough to be a leak.
        assert secret.rsplit(".", 1)[-1].encode() not in blob


def test_no_token_or_password_in_memcached(
    server_factory: Any, token_registry: RegistryServer, private_repo: str
) -> None:
    mc = server_factory.memcached()
    alice = client(f"memcached://{mc.host}", user(token_registry, "alice"))
    scan(alice, private_repo)
    dump = memcached_dump(mc.address)
    assert len(dump) >= 5  # tag list, 2 tags, manifest, config
    everything = b"\n".join(k.encode() + b"=" + v for k, v in dump.items())
    _assert_secret_free(everything, _secrets_of(alice, token_registry))
    assert b"Bearer" not in everything and b"Basic" not in everything


def test_no_token_or_password_in_the_sqlite_file(
    tmp_path: Path, token_registry: RegistryServer, private_repo: str
) -> None:
    path = tmp_path / "cache.sqlite"
    alice = client(f"sqlite://{path}", user(token_registry, "alice"))
    scan(alice, private_repo)
    secrets = _secrets_of(alice, token_registry)
    backend = alice.cache.backend  # type: ignore[union-attr]
    assert isinstance(backend, SQLiteBackend)
    values = b"\n".join(k.encode() + b"=" + (backend.get(k) or b"") for k in backend.keys())  # noqa: SIM118
    assert len(backend.keys()) >= 5
    alice.close()
    files = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("cache.sqlite"))
    for blob in (values, files):
        _assert_secret_free(blob, secrets)


# --------------------------------------------------------------------------- the credential identity


def test_credential_identity_is_a_slow_kdf_stable_across_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    calls = []
    real = hashlib.scrypt

    def counting(*args: Any, **kwargs: Any) -> bytes:
        calls.append(kwargs.get("n"))
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    alice = Credential("alice", "alice-Secret-1")
    identity = alice.identity()
    assert alice.identity() == identity and len(calls) == 1  # once per Credential
    assert calls[0] is not None and calls[0] >= 2**13
    assert Credential("alice", "alice-Secret-2").identity() != identity
    assert Credential.anonymous().identity() == "anonymous"
    assert "alice" not in identity
    code = "from regdata import Credential; print(Credential('alice', 'alice-Secret-1').identity())"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert done.stdout.strip() == identity


# --------------------------------------------------------------------------- policy details


def test_per_host_ttl(registry: RegistryServer, builder: Builder, repo_name: str) -> None:
    builder.push_image(repo_name, ImageSpec(), tags=["a"])
    repo = f"{registry.host}/{repo_name}"
    reg = client(open_cache("memory://", ttl={registry.host: 0, "*": "1h"}))
    assert reg.cache is not None and reg.cache.ttl == 3600 and reg.cache.ttl_for(registry.host) == 0
    scan(reg, repo)
    # A TTL of 0 for this host: always revalidated, never fetched again.
    assert scan(reg, repo)[1] == {("tags", "GET"): 1, ("manifest_head", "HEAD"): 1}


def test_cache_stats_report_the_backend(
    memcached: MemcachedServer, registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    builder.push_image(repo_name, ImageSpec(), tags=["a"])
    reg = client(f"memcached://{memcached.host}")
    scan(reg, f"{registry.host}/{repo_name}")
    scan(reg, f"{registry.host}/{repo_name}")  # from this process's memory
    scan(client(f"memcached://{memcached.host}"), f"{registry.host}/{repo_name}")  # from memcached
    assert reg.cache is not None
    stats = reg.cache.stats()
    assert stats["backend"] == "memcached" and stats["memory_hits"] >= 4 and stats["errors"] == 0
    assert stats["hits"] == stats["memory_hits"]  # the backend's were the other Registry's
    ops = stats["backend_stats"]["operations"]
    assert ops["set"]["ok"] >= 4
    assert stats["backend_stats"]["servers"] == [memcached.host]


def test_open_cache_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert open_cache(None) is None and open_cache("none") is None and open_cache("") is None
    memory = open_cache("memory://", ttl="5m")
    assert memory is not None and isinstance(memory.backend, MemoryBackend) and memory.ttl == 300
    assert open_cache(memory) is memory
    own = MemoryBackend()
    wrapped = open_cache(own, ttl=12)
    assert wrapped is not None and wrapped.backend is own and wrapped.ttl == 12

    absolute = open_cache(f"sqlite://{tmp_path}/a/b.sqlite")
    assert absolute is not None and absolute.backend.path == tmp_path / "a" / "b.sqlite"  # type: ignore[attr-defined]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    default = open_cache("sqlite://")
    assert default is not None and default.backend.path == tmp_path / "xdg" / "regdata" / "cache.sqlite"  # type: ignore[attr-defined]
    monkeypatch.chdir(tmp_path)
    relative = open_cache("sqlite://rel/c.sqlite")
    assert relative is not None and relative.backend.path == Path("rel/c.sqlite")  # type: ignore[attr-defined]

    many = open_cache("memcached://127.0.0.1:1,[::1]:2,cache.example?timeout=250ms&dead_timeout=1m")
    assert many is not None
    mc = many.backend
    assert isinstance(mc, MemcachedBackend)
    assert mc.servers == [("127.0.0.1", 1), ("::1", 2), ("cache.example", 11211)]
    assert mc.timeout == 0.25 and mc.dead_timeout == 60
    srv = open_cache("memcached+srv://memcached.flux?update_interval=30s")
    assert srv is not None and isinstance(srv.backend, MemcachedBackend)
    assert srv.backend.service == "memcached.flux" and srv.backend.update_interval == 30
    assert srv.backend.refreshes == 0  # no lookup until it is used

    for bad in (
        "redis://x",
        "memcached://",
        "memcached://h:port",
        "memcached://h:1?nope=1",
        "memcached+srv://",
    ):
        with pytest.raises(ValueError):
            open_cache(bad)
    with pytest.raises(TypeError):
        open_cache(42)
    assert parse_ttl("500ms") == 0.5 and parse_ttl("2h") == 7200 and parse_ttl(None) == 300
    for bad_ttl in ("-1", "soon", "nan"):
        with pytest.raises(ValueError):
            parse_ttl(bad_ttl)


def test_environment_chooses_the_cache(monkeypatch: pytest.MonkeyPatch, memcached: MemcachedServer) -> None:
    monkeypatch.setenv("REGDATA_CACHE", f"memcached://{memcached.host}")
    monkeypatch.setenv("REGDATA_CACHE_TTL", "42")
    reg = regdata.Registry(credentials=Credentials.none())
    assert reg.cache is not None and isinstance(reg.cache.backend, MemcachedBackend)
    assert reg.cache.ttl == 42
    monkeypatch.setenv("REGDATA_CACHE", "none")
    assert regdata.Registry(credentials=Credentials.none()).cache is None


def test_unknown_repository_is_remembered_for_the_ttl(
    backend_factory: Any, registry: RegistryServer, repo_name: str
) -> None:
    # A fleet naming an image the registry lacks costs one request per TTL, not one per run.
    repo = f"{registry.host}/{repo_name}-absent"
    reg = client(Cache(backend_factory(), ttl=300))
    with pytest.raises(NotFound) as first:
        reg.get_repository(repo)
    assert counts(reg) == {("tags", "GET"): 1}
    reg.factory.log.clear()
    with pytest.raises(NotFound) as again:
        reg.get_repository(repo)
    assert counts(reg) == {}
    assert set(reg.requests["cache"]) == {"hit"}
    assert str(again.value) == str(first.value) and again.value.codes == ("NAME_UNKNOWN",)
    # Another process over the same store learns it too; after the TTL the registry is asked again.
    other = client(Cache(backend_factory(), ttl=300))
    with pytest.raises(NotFound):
        other.get_repository(repo)
    assert counts(other) == {}
    expired = client(Cache(backend_factory(), ttl=300, clock=lambda: time.time() + 301))
    with pytest.raises(NotFound):
        expired.get_repository(repo)
    assert counts(expired) == {("tags", "GET"): 1}

"""The request log: its frames' schemas, its ring, nothing secret in it; the summary, the
timeline plot and the Prometheus metrics built on it."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator

import matplotlib
import pandas as pd
import pytest
import requests

import regdata
from regdata.cache.backends import BackendUnavailable
from regdata.cache.backends.memcached import MemcachedBackend
from regdata.frames import REQUESTS
from regdata.instrument import metrics
from regdata.instrument.requestlog import LIMITER_EVENTS, REQUEST_LOG, LimiterEvent, RequestLog, RequestRecord
from regdata.instrument.summary import SEED_KINDS, SUMMARY, plot_timeline, summarize
from regdata.transport import RetryPolicy
from tests.conftest import TOKEN_ACL, TOKEN_USERS, ServerFactory
from tests.support.builder import Builder, ImageSpec
from tests.support.proxy import Action, Seen, start_proxy
from tests.support.registry_server import RegistryServer
from tests.support.token_server import AclRule

matplotlib.use("Agg")

T0 = 1_700_000_000.0


def record(**fields: object) -> RequestRecord:
    base: dict[str, object] = dict(
        started=T0,
        host="r.example:443",
        repository="team/app",
        kind="manifest",
        method="GET",
        status=200,
        duration_s=0.1,
        bytes=100,
        attempt=1,
        cache="none",
        error=None,
    )
    base.update(fields)
    return RequestRecord(**base)  # type: ignore[arg-type]


def assert_schema(frame: pd.DataFrame, schema: tuple[tuple[str, str], ...]) -> None:
    assert list(frame.columns) == [c for c, _ in schema]
    assert [str(frame[c].dtype) for c, _ in schema] == [d for _, d in schema]


def client(**kwargs: object) -> regdata.Registry:
    kwargs.setdefault("cache", None)
    kwargs.setdefault("credentials", regdata.Credentials.none())
    return regdata.Registry(**kwargs)  # type: ignore[arg-type]


# -- schemas ------------------------------------------------------------------------------------


def test_columns_and_dtypes_are_fixed_also_when_empty() -> None:
    log = RequestLog()
    assert_schema(log.frame(), REQUESTS)
    assert_schema(log.frame(concurrency=True), REQUEST_LOG)
    assert_schema(log.limiter_frame(), LIMITER_EVENTS)
    assert list(log.frame()["kind"].cat.categories) == [
        "tags",
        "manifest",
        "manifest_head",
        "blob",
        "token",
        "catalog",
        "ping",
    ]
    assert list(log.frame()["cache"].cat.categories) == ["hit", "miss", "none"]
    reg = client()
    assert_schema(reg.requests, REQUESTS)
    assert_schema(reg.limiter_log, LIMITER_EVENTS)
    assert_schema(reg.summary(), SUMMARY)


def test_columns_and_dtypes_hold_with_missing_values() -> None:
    log = RequestLog()
    log.record(record())
    log.record(
        record(
            status=None,
            bytes=None,
            error="connection failed for GET http://h/v2/",
            attempt=2,
            repository=None,
            kind="ping",
            concurrency=8,
        )
    )
    log.record(record(status=None, attempt=0, cache="hit", duration_s=0.0001))
    log.record_event(LimiterEvent(T0, "r.example:443", "start", None, 8, reason="initial concurrency"))
    log.record_event(LimiterEvent(T0 + 1, "r.example:443", "grow", 8, 16, 0.03, 0.03, "latency holds"))
    frame = log.frame()
    assert_schema(frame, REQUESTS)
    assert frame["started"].iloc[0] == pd.Timestamp(T0, unit="s", tz="UTC")
    assert frame["status"].tolist()[:1] == [200] and frame["status"].isna().tolist() == [False, True, True]
    assert_schema(log.frame(concurrency=True), REQUEST_LOG)
    assert log.frame(concurrency=True)["concurrency"].isna().tolist() == [True, False, True]
    events = log.limiter_frame()
    assert_schema(events, LIMITER_EVENTS)
    assert events["concurrency"].tolist() == [8, 16]


def test_the_real_log_after_a_read(registry: RegistryServer, builder: Builder, repo_name: str) -> None:
    builder.push_image(repo_name, ImageSpec(), tags=["a", "b"])
    reg = client()
    reg.get_repository(f"{registry.host}/{repo_name}")
    log = reg.requests
    assert_schema(log, REQUESTS)
    # No ping: a TLS hello refused by a plain-HTTP registry is no HTTP request.
    assert set(log["kind"].astype(str)) == {"tags", "manifest", "blob"}
    assert (log["host"] == registry.host).all()
    assert (log["attempt"] == 1).all() and (log["duration_s"] >= 0).all()
    with_limits = reg.factory.log.frame(concurrency=True)
    assert (with_limits["concurrency"] == 8).all()  # the default start, on a short read
    assert reg.limiter_log["event"].tolist()[:1] == ["start"]


# -- the ring --------------------------------------------------------------------------------


def test_the_ring_is_bounded_and_clearable() -> None:
    log = RequestLog(capacity=5)
    for i in range(12):
        log.record(record(repository=f"r{i}"))
    assert len(log) == 5 and log.dropped == 7 and log.capacity == 5
    assert log.frame()["repository"].tolist() == ["r7", "r8", "r9", "r10", "r11"]
    log.record_event(LimiterEvent(T0, "h", "start", None, 8))
    log.clear()
    assert len(log) == 0 and log.dropped == 0 and log.events() == []
    assert_schema(log.frame(), REQUESTS)
    with pytest.raises(ValueError):
        RequestLog(capacity=0)
    events = RequestLog(capacity=100, event_capacity=3)
    for i in range(5):
        events.record_event(LimiterEvent(T0 + i, "h", "grow", i, i + 1))
    assert [e.concurrency for e in events.events()] == [3, 4, 5]


def test_the_registry_sizes_and_clears_its_ring(
    registry: RegistryServer, builder: Builder, repo_name: str
) -> None:
    builder.push_image(repo_name, ImageSpec(), tags=[f"t{i}" for i in range(6)])
    reg = client(request_log_size=4)
    reg.get_repository(f"{registry.host}/{repo_name}")
    assert len(reg.requests) == 4 and reg.factory.log.dropped > 0
    reg.factory.log.clear()
    assert reg.requests.empty


# -- nothing secret --------------------------------------------------------------------------


PASSWORD = "PLANTED-pass-4c1d9e"
BEARER = "PLANTED-bearer-7f02ab"


@pytest.fixture
def planted(server_factory: ServerFactory) -> Iterator[tuple[RegistryServer, object]]:
    """A token-auth registry whose user ``planted`` has a recognisable password."""
    ts = server_factory.token_server(
        users={**TOKEN_USERS, "planted": PASSWORD},
        acl=(*TOKEN_ACL, AclRule(account="planted", name="planted/*", actions=("pull",))),
    )
    server = server_factory.registry(token_server=ts)
    server_factory.builder(server, "pusher").push_image("planted/app", ImageSpec(), tags=["1.0", "2.0"])
    yield server, ts


def test_no_credential_or_token_in_the_frames_or_the_debug_logs(
    planted: tuple[RegistryServer, object], caplog: pytest.LogCaptureFixture
) -> None:
    server, ts = planted
    caplog.set_level(logging.DEBUG)  # every logger: ours, urllib3's, requests'
    texts: list[str] = []
    with start_proxy(server.host) as proxy:
        # Throttle and drop a share of the registry's answers, so retries and errors are logged too.
        count = {"n": 0}

        def flaky(seen: Seen) -> Action | None:
            count["n"] += 1
            if count["n"] % 4 == 0:
                return Action(status=429, headers={"Retry-After": "0"})
            return Action(drop=True) if count["n"] % 7 == 0 else None

        proxy.add(flaky)
        retry = RetryPolicy(attempts=5, initial=0.01, maximum=0.02)
        # 1. Password: Basic to the token realm, a bearer token from it to the registry.
        creds = regdata.Credentials.from_mapping({proxy.host: ("planted", PASSWORD)})
        reg = client(credentials=creds, retry=retry)
        df = reg.get_repository(f"{proxy.host}/planted/app")
        assert df["error"].isna().all() and len(df) == 2
        issued = {
            s.authorization.split(" ", 1)[1]
            for s in proxy.seen
            if s.authorization and s.authorization.startswith("Bearer ")
        }
        assert issued, "the registry should have been sent a bearer token"
        # 2. An identity (refresh) token, traded by an OAuth2 POST.
        refresh = requests.get(
            ts.realm,
            params={
                "service": ts.service,
                "offline_token": "true",  # type: ignore[attr-defined]
                "scope": "repository:planted/app:pull",
            },
            auth=("planted", PASSWORD),
            timeout=10,
        ).json()["refresh_token"]
        by_refresh = regdata.Credentials.from_mapping(
            {proxy.host: regdata.Credential(identity_token=refresh)}
        )
        reg2 = client(credentials=by_refresh, retry=retry)
        assert reg2.get_repository(f"{proxy.host}/planted/app")["error"].isna().all()
        # 3. A registry token the registry refuses: the failure must not quote it.
        bad = regdata.Credentials.from_mapping({proxy.host: regdata.Credential(registry_token=BEARER)})
        reg3 = client(credentials=bad, retry=retry)
        with pytest.raises(regdata.RegdataError) as refused:
            reg3.get_repository(f"{proxy.host}/planted/app")
        texts.append(str(refused.value))
        texts.append(repr(refused.value))
        for r in (reg, reg2, reg3):
            texts.append(r.requests.to_csv())
            texts.append(r.factory.log.frame(concurrency=True).to_string())
            texts.append(r.limiter_log.to_csv())
            texts.append(r.summary().to_csv())
            texts.append(repr(r))
            texts.append(repr(r.factory.log.records()))
            texts.append(repr(r.rate_limits))
    assert (reg.requests["attempt"] > 1).any()  # retries happened, and were logged at DEBUG
    assert any(rec.name == "regdata.transport" for rec in caplog.records)
    texts.append(caplog.text)
    texts.extend(str(rec.args) for rec in caplog.records)
    haystack = "\n".join(texts)
    secrets = {
        PASSWORD,
        BEARER,
        refresh,
        *issued,
        base64.b64encode(f"planted:{PASSWORD}".encode()).decode(),
        requests.utils.quote(PASSWORD),
        requests.utils.quote(refresh, safe=""),
    }
    for secret in secrets:
        assert secret not in haystack, "a secret leaked into the request log or the debug logs"


# -- the summary and the timeline --------------------------------------------------------------


def sample_log() -> RequestLog:
    log = RequestLog()
    a, b = "a.example:443", "b.example:443"
    log.record(record(host=a, kind="ping", status=401, error="HTTP 401", bytes=0, duration_s=0.01))
    log.record(record(host=a, kind="token", duration_s=0.05, bytes=800))
    log.record(record(host=a, kind="tags", duration_s=0.2, bytes=50, started=T0 + 0.1))
    log.record(
        record(
            host=a, kind="manifest", status=429, error="HTTP 429", duration_s=0.1, bytes=0, started=T0 + 0.3
        )
    )
    log.record(record(host=a, kind="manifest", attempt=2, duration_s=0.1, bytes=1000, started=T0 + 0.5))
    log.record(
        record(host=a, kind="manifest_head", method="HEAD", duration_s=0.05, bytes=0, started=T0 + 0.6)
    )
    log.record(record(host=a, kind="blob", duration_s=0.3, bytes=2000, started=T0 + 0.6))
    log.record(
        record(
            host=a,
            kind="manifest",
            status=None,
            attempt=0,
            cache="hit",
            duration_s=0.001,
            bytes=1000,
            started=T0 + 0.7,
        )
    )
    log.record(record(host=b, kind="tags", duration_s=0.4, bytes=10, started=T0 + 1.0))
    return log


def test_summary_by_host_and_kind() -> None:
    s = summarize(sample_log().frame())
    assert_schema(s, SUMMARY)
    rows = {(r.host, r.kind): r for r in s.itertuples()}
    m = rows[("a.example:443", "manifest")]
    assert (m.requests, m.retries, m.errors, m.cache_hits, m.bytes) == (2, 1, 1, 1, 1000)
    assert m.time_s == pytest.approx(0.2) and m.mean_s == pytest.approx(0.1)
    assert m.wall_s == pytest.approx(0.7 + 0.001 - 0.3)
    assert rows[("b.example:443", "tags")].requests == 1
    assert list(s["host"]) == sorted(s["host"])
    assert s["requests"].sum() == 8  # the cache hit is not a request


def test_summary_by_flux_seed_kinds() -> None:
    s = summarize(sample_log().frame(), seed=True)
    assert_schema(s, SUMMARY)
    assert list(s["kind"].cat.categories) == list(SEED_KINDS) == ["tags", "metadata", "other"]
    rows = {(r.host, r.kind): r for r in s.itertuples()}
    meta = rows[("a.example:443", "metadata")]
    assert (meta.requests, meta.bytes, meta.cache_hits) == (4, 3000, 1)  # manifests, HEAD and blob
    assert rows[("a.example:443", "tags")].requests == 1
    assert rows[("a.example:443", "other")].requests == 2  # ping and token
    assert summarize(RequestLog().frame(), seed=True).empty


def test_registry_summary_matches_its_log(registry: RegistryServer, builder: Builder, repo_name: str) -> None:
    builder.push_image(repo_name, ImageSpec(), tags=["x", "y", "z"])
    reg = client()
    reg.get_repository(f"{registry.host}/{repo_name}")
    s = reg.summary()
    assert s["requests"].sum() == len(reg.requests)
    assert s["bytes"].sum() == reg.requests["bytes"].sum()
    assert set(reg.summary(seed=True)["kind"].astype(str)) == {"tags", "metadata"}


def test_timeline_plot(registry: RegistryServer, builder: Builder, repo_name: str) -> None:
    import matplotlib.pyplot as plt

    builder.push_image(repo_name, ImageSpec(), tags=[f"t{i}" for i in range(12)])
    reg = client(concurrency=2)
    reg.get_repository(f"{registry.host}/{repo_name}")
    ax = plot_timeline(reg.requests, limiter=reg.limiter_log)
    bars = [p for p in ax.patches if p.get_height() == pytest.approx(0.8)]
    assert len(bars) == len(reg.requests)
    assert any(line.get_label().startswith("concurrency limit") for line in ax.get_lines())
    assert ax.get_xlabel() and ax.get_legend() is not None
    _, given = plt.subplots()
    assert plot_timeline(sample_log().frame(), ax=given) is given
    assert plot_timeline(RequestLog().frame(), ax=given) is given  # empty: an empty plot, no error
    plt.close("all")


def test_timeline_lanes_count_what_is_in_flight() -> None:
    import numpy as np

    from regdata.instrument.summary import _lanes

    start = np.array([0.0, 0.1, 0.2, 1.0, 1.0, 1.05])
    end = np.array([0.5, 0.5, 0.3, 2.0, 1.1, 1.2])
    assert _lanes(start, end).tolist() == [0, 1, 2, 0, 1, 2]


# -- Prometheus metrics ----------------------------------------------------------------------


@pytest.fixture
def prom() -> Iterator[object]:
    pytest.importorskip("prometheus_client")
    from prometheus_client import CollectorRegistry

    metrics.disable()
    target = CollectorRegistry()
    metrics.enable(target, namespace="flux")
    yield target
    metrics.disable()


def sample(target: object, name: str, **labels: str) -> float:
    value = target.get_sample_value(name, labels)  # type: ignore[attr-defined]
    return 0.0 if value is None else float(value)


def test_metrics_have_flux_v1_names_and_labels(
    prom: object, registry: RegistryServer, builder: Builder, repo_name: str, memcached: object
) -> None:
    builder.push_multiarch(repo_name, ["linux/amd64", "linux/arm64/v8"], tags=["m"])
    builder.push_image(repo_name, ImageSpec(), tags=["s"])
    reg = client(cache=f"memcached://{memcached.host}")  # type: ignore[attr-defined]
    metrics.instrument_cache(reg.cache)
    metrics.instrument_cache(reg.cache)  # twice: wrapped once
    assert type(reg.cache.backend).__name__ == "InstrumentedBackend"  # type: ignore[union-attr]
    assert type(reg.cache.backend.inner).__name__ != "InstrumentedBackend"  # type: ignore[union-attr]
    reg.get_repository(f"{registry.host}/{repo_name}")
    with pytest.raises(regdata.NotFound):
        reg.get_image(f"{registry.host}/{repo_name}:missing")

    assert sample(prom, "flux_registry_fetch_duration_seconds_count", success="true") == 1
    assert sample(prom, "flux_registry_fetch_duration_seconds_count", success="false") == 1
    log = reg.requests
    http = log[log["cache"] != "hit"]
    tags = (http["kind"] == "tags").sum()
    meta = http["kind"].isin(["manifest", "manifest_head", "blob"]).sum()
    assert sample(prom, "flux_client_fetch_duration_seconds_count", kind="tags", success="true") == tags
    total_meta = sample(
        prom, "flux_client_fetch_duration_seconds_count", kind="metadata", success="true"
    ) + sample(prom, "flux_client_fetch_duration_seconds_count", kind="metadata", success="false")
    assert total_meta == meta >= 5
    assert sample(prom, "flux_client_fetch_duration_seconds_count", kind="metadata", success="false") >= 1
    assert sample(prom, "flux_memcache_request_duration_seconds_count", method="get", success="true") > 0
    assert sample(prom, "flux_memcache_request_duration_seconds_count", method="set", success="true") > 0
    reg.close()


def test_metrics_cost_nothing_until_enabled() -> None:
    metrics.disable()
    assert metrics.active() is None
    metrics.observe_request("manifest", True, 0.1)  # no-ops, no registry needed
    metrics.observe_fetch(True, 0.1)
    metrics.observe_memcache("get", False, 0.1)
    with metrics.timed_fetch():
        time.sleep(0)


def test_memcache_hook_times_failures(prom: object, server_factory: ServerFactory) -> None:
    mc = server_factory.memcached()
    mc.kill()  # a memcached that is down: every call fails
    backend = metrics.InstrumentedBackend(MemcachedBackend([mc.address]))
    with pytest.raises(
        (OSError, BackendUnavailable)
    ):  # refused, then marked down: the cache policy makes misses
        backend.get("k")
    with pytest.raises(
        (OSError, BackendUnavailable)
    ):  # refused, then marked down: the cache policy makes misses
        backend.set("k", b"v")
    assert sample(prom, "flux_memcache_request_duration_seconds_count", method="get", success="false") == 1
    assert sample(prom, "flux_memcache_request_duration_seconds_count", method="set", success="false") == 1
    assert backend.name == "memcached"

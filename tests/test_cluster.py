"""get_repositories on a real Dask LocalCluster (2 worker processes) against the real registries.

One cluster for the module (about 5 s to start).  Its workers import this
checkout's regdata (checked), get a docker config of their own (alice on the
htpasswd registry: what ``worker_credentials="own"`` reads), and a short
semaphore lease timeout, so a killed worker's leases come back in seconds.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import regdata
from regdata.frames import IMAGES
from tests.support.builder import Builder, ImageSpec
from tests.support.inflight import CountingProxy
from tests.support.proxy import Action, Seen
from tests.support.registry_server import MemcachedServer, RegistryServer
from tests.test_many import fill
from tests.test_registry import assert_schema

distributed = pytest.importorskip("distributed")
ROOT = Path(__file__).resolve().parents[1]
SECRETS = ("alice-Secret-1", "alice-Token-1", "bob-Secret-2")


def client_registry(**kwargs: object) -> regdata.Registry:
    kwargs.setdefault("cache", None)
    kwargs.setdefault("credentials", regdata.Credentials.none())
    return regdata.Registry(**kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, htpasswd_registry: RegistryServer) -> Iterator[Any]:
    import dask

    docker = tmp_path_factory.mktemp("worker-docker")
    auth = f"alice:{htpasswd_registry.users['alice']}".encode()
    import base64

    (docker / "config.json").write_text(
        json.dumps({"auths": {htpasswd_registry.host: {"auth": base64.b64encode(auth).decode()}}})
    )
    env = {
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "DOCKER_CONFIG": str(docker),
        "REGDATA_CACHE": "none",
    }
    with dask.config.set(
        {
            "distributed.scheduler.locks.lease-timeout": "3s",
            "distributed.scheduler.locks.lease-validation-interval": "1s",
        }
    ):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=8,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            env=env,
            silence_logs=40,
        )
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()


@pytest.fixture(scope="module")
def repos(registry: RegistryServer, builder: Builder) -> list[str]:
    names = fill(builder, "cluster", 8)
    broken = builder.push_image(names[-1], ImageSpec(labels={"broken": "yes"}), tags=["noconfig"])
    assert broken.config_digest is not None
    builder.delete_blob(names[-1], broken.config_digest)  # an error row, on the cluster too
    return [f"{registry.host}/{name}" for name in names]


def test_workers_run_this_checkout(cluster: Any) -> None:
    files = cluster.run(lambda: __import__("regdata").__file__)
    assert len(files) == 2
    assert all(f.startswith(str(ROOT)) for f in files.values()), files


def test_every_test_repository_gives_the_same_frame(
    cluster: Any, registry: RegistryServer, repos: list[str]
) -> None:
    """Everything the session's registry holds so far (bad tags and all): the same frame as one process."""
    catalog = client_registry().catalog(registry.host)
    assert len(catalog) >= len(repos)
    local = client_registry().get_repositories(catalog)
    on_cluster = client_registry().get_repositories(catalog, client=cluster)
    assert_schema(on_cluster, IMAGES)
    pd.testing.assert_frame_equal(on_cluster, local)
    assert local["error"].notna().any()  # the session's broken tags are in there too


def test_a_bad_repository_is_one_row_on_the_cluster(
    cluster: Any, registry: RegistryServer, repos: list[str]
) -> None:
    names = [repos[0], f"{registry.host}/cluster/nope", "Not A Name", repos[1]]
    df = client_registry().get_repositories(names, client=cluster)
    pd.testing.assert_frame_equal(df, client_registry().get_repositories(names))
    bad = df[df["tag"].isna()]
    assert bad["repository"].tolist() == ["cluster/nope", "Not A Name"]
    assert_schema(client_registry().get_repositories([], client=cluster), IMAGES)
    assert "NAME_UNKNOWN" in bad.iloc[0]["error"] and "InvalidReference" in bad.iloc[1]["error"]


def test_auth_modes_and_no_secret_in_keys_graphs_reprs_or_logs(
    cluster: Any,
    htpasswd_registry: RegistryServer,
    htpasswd_builder: Builder,
    token_registry: RegistryServer,
    token_builder: Builder,
    registry: RegistryServer,
    repos: list[str],
) -> None:
    htpasswd_builder.push_image("cluster/app", ImageSpec(), tags=["1", "2"])
    token_builder.push_image("public/cluster", ImageSpec(), tags=["1"])
    token_builder.push_image("private/cluster", ImageSpec(), tags=["1", "2", "3"])
    hp, tk = htpasswd_registry.host, token_registry.host
    names = [f"{hp}/cluster/app", f"{tk}/public/cluster", f"{tk}/private/cluster", repos[0]]
    alice = regdata.Credentials.from_mapping(
        {hp: ("alice", htpasswd_registry.users["alice"]), tk: ("alice", token_registry.users["alice"])}
    )
    reg = client_registry(credentials=alice)
    seen: list[str] = []

    def spy(dask_scheduler: Any) -> list[str]:  # runs on the scheduler, while the call is on
        return [
            f"{key} {ts.run_spec!r} {pickle.dumps(ts.run_spec)!r}" for key, ts in dask_scheduler.tasks.items()
        ]

    def watch() -> None:
        for _ in range(40):
            seen.extend(cluster.run_on_scheduler(spy))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    df = reg.get_repositories(names, client=cluster)
    watcher.join()
    assert df["error"].isna().all(), df[["repository", "error"]]
    pd.testing.assert_frame_equal(df, client_registry(credentials=alice).get_repositories(names))
    assert seen and any("regdata-read-" in s for s in seen)
    logs = [str(cluster.get_scheduler_logs()), str(cluster.get_worker_logs()), repr(reg), str(df.to_dict())]
    for text in [*seen, *logs]:
        for secret in SECRETS:
            assert secret not in text
    # Anonymous, the private repositories are one error row each; the public one is read.
    anonymous = client_registry().get_repositories(names, client=cluster)
    by_repo = {r: g for r, g in anonymous.groupby("repository")}
    assert "Unauthorized" in by_repo["cluster/app"]["error"].iloc[0]
    assert "Unauthorized" in by_repo["private/cluster"]["error"].iloc[0]
    assert by_repo["public/cluster"]["error"].isna().all()
    # "own": the workers' own docker config (alice on the htpasswd registry), nothing sent.
    own = client_registry().get_repositories(names[:1], client=cluster, worker_credentials="own")
    assert own["error"].isna().all() and len(own) == 2


def test_the_host_limit_holds_across_the_cluster(
    cluster: Any, registry: RegistryServer, repos: list[str]
) -> None:
    with CountingProxy(registry.host, delay=0.03) as proxy:
        names = [name.replace(registry.host, proxy.host) for name in repos]
        df = client_registry(concurrency=3).get_repositories(names, client=cluster)
        assert df["error"].notna().sum() == 1  # the broken tag alone
        assert 2 <= proxy.max_in_flight <= 3  # two workers, 8 threads each: shares of 2 and 1
        # A 429 brakes the host for the whole cluster: the call still completes, row for row.
        answered: list[int] = []

        def throttle(seen: Seen) -> Action | None:
            answered.append(1)
            if len(answered) in (5, 6, 7):
                return Action(status=429, headers={"Retry-After": "1"}, body=b'{"errors":[]}')
            return None

        proxy.add(throttle)
        again = client_registry(concurrency=4).get_repositories(names, client=cluster)
    assert len(answered) > 3  # the 429s came, and were retried
    pd.testing.assert_frame_equal(again, df)
    assert proxy.max_in_flight <= 4


def test_a_429_brakes_the_host_for_every_worker(cluster: Any) -> None:
    def signal() -> None:  # what a worker's gate does on a 429 from brake.test
        from distributed import get_client

        from regdata.client.cluster import ClusterGate

        ClusterGate(None, 4, get_client()).brake("brake.test").signal(2.0)  # type: ignore[arg-type]

    def braked_for() -> float:  # what another worker's gate reads
        from distributed import get_client

        from regdata.client.cluster import ClusterGate, _Brake

        brake: _Brake = ClusterGate(None, 4, get_client()).brake("brake.test")  # type: ignore[arg-type]
        brake._look()
        return brake.until - time.time()

    first, second = sorted(cluster.scheduler_info()["workers"])
    cluster.submit(signal, workers=[first], pure=False).result()
    left = cluster.submit(braked_for, workers=[second], pure=False).result()
    assert 1.0 < left <= 2.0


def test_a_second_run_on_memcached_makes_no_request(
    cluster: Any, registry: RegistryServer, memcached: MemcachedServer, repos: list[str]
) -> None:
    cache = f"memcached://{memcached.host}"
    with CountingProxy(registry.host) as proxy:  # a missing blob is asked for again: left out
        names = [name.replace(registry.host, proxy.host) for name in repos[:-1]]
        first = client_registry(cache=cache).get_repositories(names, client=cluster)
        assert proxy.served > 0
        proxy.reset()
        second = client_registry(cache=cache).get_repositories(names, client=cluster)
        assert proxy.served == 0
    pd.testing.assert_frame_equal(first, second)


def test_as_dask_is_partitioned_by_repository(cluster: Any, repos: list[str]) -> None:
    import dask.dataframe as dd

    ddf = client_registry().get_repositories(repos, client=cluster, as_dask=True)
    assert isinstance(ddf, dd.DataFrame)
    assert ddf.npartitions == len(repos)
    assert_schema(ddf._meta, IMAGES)
    frame = ddf.compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(frame, client_registry().get_repositories(repos))
    assert ddf.partitions[2].compute()["repository"].unique().tolist() == [repos[2].split("/", 1)[1]]
    from regdata.client.cluster import release

    assert len(release(cluster)) == 1 and release(cluster) == []  # its plugin, kept for lost partitions


def test_the_budget_covers_the_call_on_the_cluster(
    cluster: Any, registry: RegistryServer, repos: list[str]
) -> None:
    with CountingProxy(registry.host, delay=0.3) as proxy:
        names = [name.replace(registry.host, proxy.host) for name in repos]
        started = time.monotonic()
        df = client_registry(budget=0.6, concurrency=2).get_repositories(names, client=cluster)
        assert time.monotonic() - started < 10
    assert set(df["repository"]) == {n.split("/", 1)[1] for n in repos}  # every one has its rows
    assert df["error"].fillna("").str.contains("timed out").any()


def test_a_worker_killed_mid_scan_loses_and_doubles_nothing(
    cluster: Any, registry: RegistryServer, repos: list[str]
) -> None:
    expected = client_registry().get_repositories(repos)
    with CountingProxy(registry.host, delay=0.05) as proxy:
        names = [name.replace(registry.host, proxy.host) for name in repos]
        pids = cluster.run(os.getpid)
        victim = sorted(pids.values())[0]
        killed: list[int] = []

        def kill_when_busy() -> None:
            deadline = time.monotonic() + 10
            while proxy.served < 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(victim, 9)
            killed.append(proxy.served)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        df = client_registry(concurrency=4).get_repositories(names, client=cluster)
        killer.join()
        df["error"] = df["error"].str.replace(proxy.host, registry.host)
    assert killed
    pd.testing.assert_frame_equal(df.drop(columns="registry"), expected.drop(columns="registry"))
    cluster.wait_for_workers(2, timeout=30)  # the nanny starts a new one


def test_without_dask_the_call_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, repos: list[str]
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'regdata\[dask\]'"):
        client_registry().get_repositories(repos, client=object())
    code = "import regdata, sys; regdata.Registry(cache=None); assert not any(m.startswith(('dask', 'distributed')) for m in sys.modules)"
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )


def test_shares_add_up_to_the_limit() -> None:
    from regdata.client.cluster import shares

    assert shares(32, ["tcp://b", "tcp://a"]) == {"tcp://a": 16, "tcp://b": 16}
    assert shares(3, ["tcp://b", "tcp://a"]) == {"tcp://a": 2, "tcp://b": 1}
    assert shares(1, ["tcp://b", "tcp://a"]) == {"tcp://a": 1}  # the other worker gets no task
    assert shares(8, []) == {}
    for limit in range(1, 40):
        assert sum(shares(limit, [f"w{i}" for i in range(5)]).values()) == limit

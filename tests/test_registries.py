"""Each registry's own ways, against a local stand-in for it (the real registry behind it)."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

import regdata
from regdata.tag_details import TAG_DETAILS, tag_details_rows
from tests.support.builder import Builder, ImageSpec
from tests.support.gcr import UPLOADED_MS, start_gcr
from tests.support.proxy import FaultProxy
from tests.support.registry_server import RegistryServer


def _reg() -> regdata.Registry:
    return regdata.Registry(cache=None, credentials=regdata.Credentials.none())


# --------------------------------------------------------------------------- GCR / Artifact Registry


@pytest.fixture(scope="module")
def gcr(registry: RegistryServer, builder: Builder) -> Iterator[FaultProxy]:
    builder.push_image("gcr/app", ImageSpec(created="2024-03-01T10:00:00Z"), tags=["1.0", "stable"])
    builder.push_image("gcr/app", ImageSpec(created="2024-05-02T12:30:00.5Z"), tags=["2.0"])
    builder.push_multiarch("gcr/app", ["linux/amd64", "linux/arm64/v8"], tags=["multi"])
    proxy = start_gcr(registry.host)
    yield proxy
    proxy.stop()


def test_gcr_tag_details_in_one_request(gcr: FaultProxy) -> None:
    reg = _reg()
    details = reg.tag_details(f"{gcr.host}/gcr/app")
    assert list(details.columns) == [c for c, _ in TAG_DETAILS]
    assert [str(details[c].dtype) for c in details.columns] == [d for _, d in TAG_DETAILS]
    assert details["tag"].tolist() == ["2.0", "1.0", "stable", "multi"]  # newest first, unknown time last
    assert details["created"].tolist()[:3] == [pd.Timestamp("2024-05-02T12:30:00.5Z"),
                                               pd.Timestamp("2024-03-01T10:00:00Z"),
                                               pd.Timestamp("2024-03-01T10:00:00Z")]
    assert (details["uploaded"] == pd.Timestamp(UPLOADED_MS, unit="ms", tz="UTC")).all()
    assert details["error"].isna().all() and (details["size"].iloc[:3] > 0).all()
    assert reg.requests["kind"].astype(str).tolist() == ["tags"]  # one request for all of it
    # The digests are those the manifests have, as a full scan finds them.
    images = _reg().get_repository(f"{gcr.host}/gcr/app").drop_duplicates("tag").set_index("tag")
    assert details.set_index("tag")["digest"].to_dict() == images["digest"].to_dict()


def test_tag_details_of_a_registry_without_the_map_lists_the_tags(registry: RegistryServer,
                                                                    builder: Builder) -> None:
    builder.push_image("gcr/plain", ImageSpec(), tags=["a"])
    details = _reg().tag_details(f"{registry.host}/gcr/plain")
    assert details["tag"].tolist() == ["a"] and details["digest"].isna().all()


def test_a_bad_manifest_map_entry_is_its_rows_error() -> None:
    digest = "sha256:" + "a" * 64
    pages = [{"tags": ["ok", "bad", "orphan"], "manifest": {
        digest: {"tag": ["ok"], "imageSizeBytes": "12", "timeCreatedMs": "1700000000000"},
        "sha256:" + "b" * 64: {"tag": ["bad", 7], "imageSizeBytes": "-3", "timeCreatedMs": "soon"},
        "not-a-digest": {"tag": ["x"]},
        "sha256:" + "c" * 64: "nope",
    }}]
    rows = {(r.get("tag"), r.get("digest")): r for r in tag_details_rows("gcr.io", "p/app", pages)}
    assert rows[("ok", digest)]["size"] == 12 and rows[("ok", digest)]["error"] is None
    bad = rows[("bad", "sha256:" + "b" * 64)]
    assert bad["size"] is None and bad["created"] is None
    assert bad["error"] == "imageSizeBytes is not a count; timeCreatedMs is not a count; a tag is not a string"
    assert rows[(None, None)]["error"].startswith("manifest map key is not a digest")
    assert rows[(None, "sha256:" + "c" * 64)]["error"] == "manifest map entry is not an object"
    assert ("orphan", None) in rows  # listed, but not in the map

"""cosign's tag-schema signatures, attestations and SBOMs, against the real registry.

cosign tags what it says about image ``sha256:<hex>`` as ``sha256-<hex>.sig``
(``.att``, ``.sbom``).  They are images by their manifests, but not images to run:
their own kind, a ``subject`` column, and never a version or a candidate.
"""

from __future__ import annotations

import pandas as pd

import regdata
from regdata.analysis.freshness import newest_per_track, usable_images
from regdata.client.rows import error_row
from regdata.frames import IMAGE_CATEGORIES, IMAGES
from regdata.oci.digest import cosign_subject
from regdata.oci.reference import Reference
from tests.support.builder import ArtifactSpec, Blob, Builder, ImageSpec, Layer
from tests.support.registry_server import RegistryServer

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


def test_cosign_subject_reads_the_tag_scheme() -> None:
    hex64 = "0f" * 32
    assert cosign_subject(f"sha256-{hex64}.sig") == ("signature", f"sha256:{hex64}")
    assert cosign_subject(f"sha256-{hex64}.att") == ("attestation", f"sha256:{hex64}")
    assert cosign_subject(f"sha256-{hex64}.sbom") == ("sbom", f"sha256:{hex64}")
    for tag in (
        None,
        "",
        "1.0",
        "sig",
        f"sha256-{hex64}",
        f"sha256-{hex64}.tar",
        f"sha256-{hex64[:-1]}.sig",
        f"sha256_{hex64}.sig",
        f"md5-{hex64}.sig",
    ):
        assert cosign_subject(tag) is None, tag


def test_signatures_have_their_kind_and_subject_and_stay_out_of_freshness(
    registry: RegistryServer, builder: Builder
) -> None:
    repo = "cosign/app"
    app = builder.push_image(repo, ImageSpec(created="2024-01-01T00:00:00Z"), tags=["1.0"])
    stem = app.digest.replace(":", "-")
    # cosign's signature: an image manifest whose layer is the simple-signing payload, created
    # later than the image, so a freshness that took it for an image would pick it.
    builder.push_image(
        repo,
        ImageSpec(
            created="2025-01-01T00:00:00Z", layers=(Layer.from_seed("signature", media_type=SIMPLESIGNING),)
        ),
        tags=[f"{stem}.sig"],
    )
    builder.push_image(
        repo,
        ImageSpec(
            created="2025-01-02T00:00:00Z",
            layers=(Layer.from_seed("attestation", media_type="application/vnd.dsse.envelope.v1+json"),),
        ),
        tags=[f"{stem}.att"],
    )
    builder.push_artifact(
        repo,
        ArtifactSpec(blobs=(Blob(b'{"spdxVersion":"SPDX-2.3"}', "text/spdx+json"),)),
        tags=[f"{stem}.sbom"],
    )

    reg = regdata.Registry(cache=None, credentials=regdata.Credentials.none())
    df = reg.get_repository(f"{registry.host}/{repo}")
    assert list(df.columns) == [c for c, _ in IMAGES] and df.columns[-1] == "subject"
    assert list(df["kind"].cat.categories) == list(IMAGE_CATEGORIES["kind"])
    assert df["error"].isna().all(), df[["tag", "error"]]
    by_tag = df.set_index("tag")
    assert by_tag.loc["1.0", "kind"] == "image" and pd.isna(by_tag.loc["1.0", "subject"])
    for suffix, kind in (("sig", "signature"), ("att", "attestation"), ("sbom", "sbom")):
        row = by_tag.loc[f"{stem}.{suffix}"]
        assert (row["kind"], row["subject"]) == (kind, app.digest), suffix

    usable = usable_images(df)
    assert usable["tag"].tolist() == ["1.0"]
    newest = newest_per_track(df, by="created")
    assert set(newest["tag"]) <= {"1.0"}
    # An error row of such a tag still says what it is about: the tag alone tells.
    failed = error_row(Reference(registry.host, repo, f"{stem}.sig", None), f"{stem}.sig", "boom")
    assert failed["subject"] == app.digest

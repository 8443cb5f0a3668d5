"""Real Docker Hub metadata (``data/dockerhub/`` in this repository) turned into images for the builder.

What is real: the platforms of each tag (os, architecture, variant, os.version, their
order, attestation entries), each platform's history (created, created_by), its default
command/entrypoint/shell, docker_version, the layer count and media types, and for foreign
(Windows) layers even the digest and size (never uploaded, so they cost nothing).

What is a stand-in: layer bytes. Each is a small deterministic blob seeded by the real
layer digest, so a layer shared between real tags or platforms stays shared here, and two
tags that pointed at the same real manifest get the same manifest digest here too. Sizes
are therefore not the real ones (unless ``max_layer_bytes`` lets them be).

Two approximations: the data does not say which history entries made empty layers, so
``empty_layer`` is guessed from ``created_by`` and adjusted to the layer count (the
sandbox's guess, ``regdata.sandbox.imagebuild.empty_flags``, so both make the same configs); and
an attestation entry is taken to attest the image listed just before it (one image may
lack its attestation, as on Docker Hub).

The sandbox (``regdata.sandbox.imagebuild``) builds the same metadata differently on purpose:
its layers declare the real sizes (unpullable, a few MB for the whole demo), while these
images are whole and consistent, for tests that pull, copy and compare bytes.
"""

from __future__ import annotations

import io
import json
import lzma
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from regdata.sandbox.imagebuild import empty_flags, json_list

from .builder import (
    DOCKER_FOREIGN_LAYER,
    ArtifactSpec,
    Builder,
    Format,
    History,
    ImageSpec,
    Layer,
    Platform,
    Pushed,
    attestation_spec,
)

__all__ = [
    "DATA_ENV",
    "HubEntry",
    "HubTag",
    "data_dir",
    "hub_tag",
    "image_spec",
    "load_snapshot",
    "open_data",
    "push_dockerhub_repo",
    "push_dockerhub_tag",
]

DATA_ENV = "REGDATA_DOCKERHUB_DATA"


def data_dir() -> Path:
    """``$REGDATA_DOCKERHUB_DATA`` (the uncompressed files), else ``<repo>/data/dockerhub`` (xz)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "data" / "dockerhub"


def open_data(name: str) -> io.TextIOBase:
    """One file of the Docker Hub data (``snapshot.json``, ``timeline.csv``, ...) as text.

    The repository keeps them xz-compressed; a directory named by the environment may
    hold them as they were published.
    """
    plain = data_dir() / name
    if plain.is_file():
        return plain.open(encoding="utf-8")  # type: ignore[return-value]
    packed = plain.with_name(name + ".xz")
    if not packed.is_file():
        raise FileNotFoundError(f"Docker Hub data not found at {packed}; set {DATA_ENV} to its directory")
    return lzma.open(packed, "rt", encoding="utf-8")  # type: ignore[return-value]


@cache
def load_snapshot(name: str = "snapshot.json") -> dict[str, Any]:
    """``{image: {tag: record}}`` (parsed once per process; do not mutate)."""
    with open_data(name) as f:
        return dict(json.load(f))


@dataclass(frozen=True)
class HubEntry:
    """One entry of a real index, ready to push."""

    record: Mapping[str, Any]
    spec: ImageSpec | None  # None for an attestation
    attests: int | None  # for an attestation: the position of its image in entries

    @property
    def is_attestation(self) -> bool:
        return self.spec is None

    @property
    def real_digest(self) -> str:
        return str(self.record["manifest_digest"])


@dataclass(frozen=True)
class HubTag:
    image: str
    tag: str
    record: Mapping[str, Any]
    format: Format
    entries: tuple[HubEntry, ...]

    @property
    def real_index_digest(self) -> str:
        return str(self.record["index_digest"])

    @property
    def is_index(self) -> bool:
        return self.record.get("index_mime") is not None


def image_spec(record: Mapping[str, Any], fmt: Format, max_layer_bytes: int = 0) -> ImageSpec:
    """The builder spec of one real platform image."""
    layers = []
    for layer in record["layers"]:
        mime, digest, size = str(layer["mime"]), str(layer["digest"]), int(layer["size"])
        if mime == DOCKER_FOREIGN_LAYER:
            layers.append(Layer.foreign(digest, size))
        elif 0 < size <= max_layer_bytes:
            layers.append(Layer.from_seed(digest, size=size, media_type=mime))
        else:
            layers.append(Layer.from_seed(digest, media_type=mime))
    hist = list(record.get("history") or [])
    flags = empty_flags([str(h.get("created_by") or "") for h in hist], len(layers))
    history = [
        History(created=h.get("created"), created_by=h.get("created_by"), empty_layer=e)
        for h, e in zip(hist, flags, strict=True)
    ]
    created = max((h.created for h in history if h.created), default=None)
    extra: dict[str, Any] = {}
    if record.get("docker_version"):
        extra["docker_version"] = record["docker_version"]
    platform = Platform(
        os=str(record["os"]),
        architecture=str(record["architecture"]),
        variant=record.get("variant") or None,
        os_version=record.get("os_version") or None,
    )
    return ImageSpec(
        layers=tuple(layers),
        platform=platform,
        format=fmt,
        created=created,
        history=tuple(history),
        env=None,  # not in the data: leave it out rather than invent it
        cmd=json_list(record.get("default_command")),
        entrypoint=json_list(record.get("entrypoint")),
        shell=json_list(record.get("shell")),
        config_extra=extra,
    )


def hub_tag(image: str, tag: str, *, snapshot: str = "snapshot.json", max_layer_bytes: int = 0) -> HubTag:
    """The push plan of one real tag."""
    data = load_snapshot(snapshot)
    try:
        record = data[image][tag]
    except KeyError:
        raise KeyError(f"{image}:{tag} is not in {snapshot}") from None
    index_mime = record.get("index_mime")
    fmt: Format = "oci" if index_mime and "oci" in index_mime else "docker"
    entries: list[HubEntry] = []
    last_image: int | None = None
    for rec in record["platforms"]:
        if rec.get("is_attestation"):
            entries.append(HubEntry(rec, None, last_image))
        else:
            last_image = len(entries)
            entries.append(HubEntry(rec, image_spec(rec, fmt, max_layer_bytes), None))
    return HubTag(image, tag, record, fmt, tuple(entries))


def _attestation(entry: HubEntry, image_digest: str) -> ArtifactSpec:
    seeds = [str(layer["digest"]) for layer in entry.record["layers"]] or [entry.real_digest]
    return attestation_spec(image_digest, seeds)


def push_dockerhub_tag(
    builder: Builder,
    image: str,
    tag: str,
    target_repo: str | None = None,
    *,
    snapshot: str = "snapshot.json",
    max_layer_bytes: int = 0,
) -> Pushed:
    """Push one real tag (its images, attestations and index) and tag it."""
    plan = hub_tag(image, tag, snapshot=snapshot, max_layer_bytes=max_layer_bytes)
    repo = target_repo or f"library/{image}"
    pushed: list[Pushed | None] = []
    for entry in plan.entries:
        if entry.spec is not None:
            pushed.append(builder.push_image(repo, entry.spec))
        else:
            pushed.append(None)
    if not plan.is_index:
        first = next(p for p in pushed if p is not None)
        return builder.tag(repo, first, tag)
    images = [p for p in pushed if p is not None]
    attested: dict[str, Pushed] = {}
    for entry in plan.entries:
        if entry.spec is None and entry.attests is not None:
            target = pushed[entry.attests]
            assert target is not None
            attested[target.digest] = builder.push_artifact(repo, _attestation(entry, target.digest))
    return _push_hub_index(builder, repo, tag, plan, images, attested)


def _push_hub_index(
    builder: Builder,
    repo: str,
    tag: str,
    plan: HubTag,
    images: list[Pushed],
    attested: dict[str, Pushed],
) -> Pushed:
    # push_index would make its own attestations; the real ones (seeded by real layer
    # digests) are listed here in their real positions instead.
    entries: list[dict[str, Any]] = []
    for img in images:
        entries.append(img.descriptor())
        att = attested.get(img.digest)
        if att is not None:
            entries.append(
                att.descriptor(
                    {
                        "vnd.docker.reference.digest": img.digest,
                        "vnd.docker.reference.type": "attestation-manifest",
                    }
                )
            )
    index_mime = str(plan.record["index_mime"])
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": index_mime, "manifests": entries},
        separators=(",", ":"),
    ).encode()
    digest = builder.put_manifest(repo, tag, body, index_mime)
    return Pushed(
        repo=repo,
        digest=digest,
        media_type=index_mime,
        manifest_bytes=body,
        tags=(tag,),
        children=tuple(images),
        attestations=tuple(attested.values()),
    )


def push_dockerhub_repo(
    builder: Builder,
    image: str,
    tags: Iterable[str] | None = None,
    target_repo: str | None = None,
    *,
    snapshot: str = "snapshot.json",
    max_layer_bytes: int = 0,
) -> dict[str, Pushed]:
    """Push the given tags (default: every tag in the snapshot) of a real image."""
    data = load_snapshot(snapshot)
    if image not in data:
        raise KeyError(f"{image} is not in {snapshot}")
    chosen = list(tags) if tags is not None else sorted(data[image])
    return {
        t: push_dockerhub_tag(
            builder,
            image,
            t,
            target_repo,
            snapshot=snapshot,
            max_layer_bytes=max_layer_bytes,
        )
        for t in chosen
    }

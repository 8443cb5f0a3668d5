"""From manifests and configs to rows of the images and history frames.

Pure functions: they fetch nothing.  The scan (:mod:`regdata.client.scan`) fetches
and calls them; the mock factory's users get the same rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regdata.errors import MalformedContent
from regdata.oci.digest import cosign_subject
from regdata.oci.manifest import (
    Descriptor,
    ImageConfig,
    ImageManifest,
    Platform,
    Schema1Manifest,
    parse_time,
)
from regdata.oci.reference import Reference

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LABEL_TIMES", "created_of", "error_row", "image_row", "schema1_row"]

# Labels that carry a build time, in the order they are trusted.
LABEL_TIMES = ("org.opencontainers.image.created", "org.label-schema.build-date")


def created_of(config: ImageConfig, labels_win: bool) -> tuple[pd.Timestamp | None, str | None]:
    """The created time of an image and where it came from (``config`` or ``label:<name>``)."""
    if labels_win:
        for name in LABEL_TIMES:
            try:
                stamp = parse_time(config.labels.get(name))
            except MalformedContent:  # an unreadable label falls back to the config
                stamp = None
            if stamp is not None:
                return stamp, f"label:{name}"
    if config.created is not None:
        return config.created, "config"
    return None, None


def _base(ref: Reference, tag: str | None, digest: str | None, media_type: str | None) -> dict[str, Any]:
    # A reference by digest names no tag: ``tag`` stays NA and the digest goes where digests go.
    row: dict[str, Any] = {
        "registry": ref.registry,
        "repository": ref.repository,
        "tag": tag,
        "digest": digest if digest is not None else ref.digest,
        "media_type": media_type,
    }
    cosign = cosign_subject(tag)
    if cosign is not None:  # known from the tag alone, so an error row has it too
        row["subject"] = cosign[1]
    return row


def error_row(
    ref: Reference,
    tag: str | None,
    error: str,
    *,
    digest: str | None = None,
    media_type: str | None = None,
    kind: str | None = None,
    platform: Platform | None = None,
    manifest_digest: str | None = None,
) -> dict[str, Any]:
    """A row that says what went wrong, with what is known and NA for the rest."""
    row = _base(ref, tag, digest, media_type)
    row.update(kind=kind, manifest_digest=manifest_digest, error=error)
    if platform is not None:
        row.update(
            platform=str(platform),
            os=platform.os,
            architecture=platform.architecture,
            variant=platform.variant,
            os_version=platform.os_version,
        )
    return row


def image_row(
    ref: Reference,
    tag: str | None,
    top_digest: str,
    top_media_type: str,
    kind: str,
    manifest_digest: str,
    manifest: ImageManifest,
    config: ImageConfig | None,
    descriptor: Descriptor | None,
    labels_win: bool,
) -> dict[str, Any]:
    """The row of one image (or artifact) manifest, from a tag or from an index entry."""
    row = _base(ref, tag, top_digest, top_media_type)
    cosign = cosign_subject(tag)
    # cosign pushes its signatures as images (a config, a layer): the tag says what they are.
    shown = cosign[0] if cosign is not None and kind in ("image", "artifact") else kind
    row.update(
        kind=shown,
        manifest_digest=manifest_digest,
        config_digest=manifest.config.digest,
        size=manifest.size,
        layers=len(manifest.layers),
        artifact_type=manifest.artifact_type or (manifest.config.media_type if kind == "artifact" else None),
        annotations=dict(manifest.annotations) or None,
        labels={},
    )
    if kind == "artifact":
        return row
    declared = descriptor.platform if descriptor is not None else None
    os_name = (config.os if config else None) or (declared.os if declared else None)
    arch = (config.architecture if config else None) or (declared.architecture if declared else None)
    variant = (config.variant if config else None) or (declared.variant if declared else None)
    os_version = (config.os_version if config else None) or (declared.os_version if declared else None)
    if os_name and arch:
        row.update(platform=str(Platform(os_name, arch, variant)))
    row.update(os=os_name, architecture=arch, variant=variant, os_version=os_version)
    if config is not None:
        created, source = created_of(config, labels_win)
        row.update(created=created, created_source=source, labels=dict(config.labels))
        _say_lost_time(row, config)
    return row


def _say_lost_time(row: dict[str, Any], config: ImageConfig) -> None:
    # A created time a frame cannot hold (year 2999) is NaT; the row says why, and keeps the rest.
    if row.get("created") is None and config.created_problem is not None:
        row["error"] = config.created_problem


def schema1_row(
    ref: Reference, tag: str | None, digest: str, manifest: Schema1Manifest, labels_win: bool
) -> dict[str, Any]:
    """The row of a schema1 manifest, its metadata read from ``v1Compatibility``."""
    config = manifest.config()
    created, source = created_of(config, labels_win)
    row = _base(ref, tag, digest, manifest.media_type)
    platform = Platform(config.os or "linux", config.architecture or "", config.variant)
    row.update(
        kind="schema1",
        manifest_digest=digest,
        platform=str(platform) if platform.architecture else None,
        os=platform.os,
        architecture=platform.architecture or None,
        variant=platform.variant,
        created=created,
        created_source=source,
        layers=len(manifest.layers),
        labels=dict(config.labels),
    )
    _say_lost_time(row, config)
    return row


def history_rows(
    ref: Reference, tag: str | None, platform: str | None, config: ImageConfig
) -> list[dict[str, Any]]:
    """One row per history entry of an image config."""
    return [
        {
            "registry": ref.registry,
            "repository": ref.repository,
            "tag": tag,
            "platform": platform,
            "step": step,
            "created": entry.created,
            "created_by": entry.created_by,
            "empty_layer": entry.empty_layer,
            "comment": entry.comment or None,
        }
        for step, entry in enumerate(config.history)
    ]

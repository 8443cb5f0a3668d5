"""A stand-in for Google's registries (GCR, Artifact Registry) in front of the real registry.

Google answers ``GET /v2/<name>/tags/list`` with a ``manifest`` map beside
``tags`` (documented in Artifact Registry's Docker API notes, and relied on by
gcrane and ``gcloud container images list-tags``)::

    {"child": [], "manifest": {"sha256:...": {"imageSizeBytes": "2801",
      "mediaType": "...", "tag": ["v1"], "timeCreatedMs": "...", "timeUploadedMs": "..."}},
     "name": "project/app", "tags": ["v1"]}

This proxy builds that map from what the Distribution registry behind it
holds (each tag's manifest, and its config's ``created``), so the answer is
the one Google would give for the same content.  Numbers are strings, as
Google sends them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import requests

from tests.support.proxy import Action, FaultProxy, Seen, start_proxy

__all__ = ["UPLOADED_MS", "start_gcr"]

UPLOADED_MS = 1_700_000_000_000
_TAGS = re.compile(r"^/v2/(.+)/tags/list")
_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def _millis(created: str | None) -> str:
    import pandas as pd

    return str(int(pd.Timestamp(created).value // 1_000_000)) if created else "0"


def _manifest_map(upstream: str, name: str, tags: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    with requests.Session() as session:
        session.trust_env = False
        for tag in tags:
            answer = session.get(
                f"http://{upstream}/v2/{name}/manifests/{tag}", headers={"Accept": _ACCEPT}, timeout=10
            )
            digest = answer.headers["Docker-Content-Digest"]
            doc = answer.json()
            entry = found.setdefault(
                digest,
                {
                    "tag": [],
                    "mediaType": doc.get("mediaType", ""),
                    "imageSizeBytes": "0",
                    "timeCreatedMs": "0",
                    "timeUploadedMs": str(UPLOADED_MS),
                    "layerId": "",
                },
            )
            entry["tag"].append(tag)
            if "config" in doc:
                size = doc["config"]["size"] + sum(layer["size"] for layer in doc.get("layers", []))
                config = session.get(
                    f"http://{upstream}/v2/{name}/blobs/{doc['config']['digest']}", timeout=10
                ).json()
                entry["imageSizeBytes"] = str(size)
                entry["timeCreatedMs"] = _millis(config.get("created"))
    return found


def start_gcr(upstream: str) -> FaultProxy:
    """A GCR-shaped proxy in front of the registry at ``upstream`` (``host:port``)."""
    proxy = start_proxy(upstream)

    def tags_list(seen: Seen) -> Action | None:
        match = _TAGS.match(seen.path)
        if seen.method != "GET" or not match:
            return None
        name = match.group(1)

        def add_map(status: int, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
            if status != 200:
                return status, headers, body
            doc = json.loads(body)
            doc = {
                "child": [],
                "manifest": _manifest_map(upstream, name, doc.get("tags") or []),
                "name": name,
                "tags": doc.get("tags") or [],
            }
            out = json.dumps(doc).encode()
            return status, {**headers, "Content-Length": str(len(out))}, out

        return Action(transform=add_map)

    proxy.add(tags_list)
    return proxy

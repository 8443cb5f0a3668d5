"""The images a fleet runs, read from a plain list, Kubernetes manifests or a docker compose file."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from regdata.errors import InvalidReference
from regdata.frames import FLEET, make_frame
from regdata.oci.reference import parse_reference

__all__ = ["read_fleet"]

FleetKind = Literal["list", "kubernetes", "compose"]

_YAML_SUFFIXES = (".yaml", ".yml", ".json")
_FILE_SUFFIXES = (*_YAML_SUFFIXES, ".txt", ".list", ".lst")
# Where a pod spec sits in the workload kinds (and in look-alike custom resources).
_POD_SPEC_PATHS = (
    ("spec", "template", "spec"),
    ("spec", "jobTemplate", "spec", "template", "spec"),
    ("template", "spec"),
    ("spec",),
)
_CONTAINER_LISTS = (
    ("initContainers", "init"),
    ("containers", "container"),
    ("ephemeralContainers", "ephemeral"),
)
_COMPOSE_VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)|(?P<dollar>\$))"
)


def _reference_row(image: Any, **where: Any) -> dict[str, Any]:
    """A fleet row for one image field as written; a bad reference gives a row with ``error``."""
    row: dict[str, Any] = dict(where)
    if image is None or (isinstance(image, str) and not image.strip()):
        row.update(image=None if image is None else str(image), error="no image given")
        return row
    text = image if isinstance(image, str) else str(image)
    row["image"] = text
    try:
        ref = parse_reference(text.strip(), default_tag=True)
    except InvalidReference as exc:
        row["error"] = str(exc)
        return row
    row.update(
        reference=str(ref), registry=ref.registry, repository=ref.repository, tag=ref.tag, digest=ref.digest
    )
    return row


def _read_list(text: str, name: str) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        # '#' cannot occur in a reference, so it always starts a comment.
        entry = line.split("#", 1)[0].strip()
        if entry:
            rows.append(_reference_row(entry, source=f"{name}:{number}", role="list"))
    return rows


def _dig(node: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for path in _POD_SPEC_PATHS:
        spec = _dig(obj, path)
        if isinstance(spec, Mapping) and any(isinstance(spec.get(k), list) for k, _ in _CONTAINER_LISTS):
            return spec
    return None


def _k8s_objects(doc: Any) -> Iterator[Mapping[str, Any]]:
    """The objects of a document, ``List`` kinds (``kind: List``, ``PodList``...) unfolded."""
    if not isinstance(doc, Mapping):
        return
    items = doc.get("items")
    if isinstance(items, list) and str(doc.get("kind", "")).endswith("List"):
        for item in items:
            yield from _k8s_objects(item)
    else:
        yield doc


def _read_kubernetes(docs: list[Any], name: str) -> list[dict[str, Any]]:
    rows = []
    for number, doc in enumerate(docs):
        for obj in _k8s_objects(doc):
            spec = _pod_spec(obj)
            if spec is None:
                continue
            kind = str(obj.get("kind") or "?")
            metadata = obj.get("metadata")
            meta: Mapping[str, Any] = metadata if isinstance(metadata, Mapping) else {}
            obj_name = str(meta.get("name") or meta.get("generateName") or "?")
            namespace = meta.get("namespace")
            for list_name, role in _CONTAINER_LISTS:
                containers = spec.get(list_name)
                if not isinstance(containers, list):
                    continue
                for index, container in enumerate(containers):
                    if not isinstance(container, Mapping):
                        continue
                    cname = str(container.get("name") or f"{list_name}[{index}]")
                    rows.append(
                        _reference_row(
                            container.get("image"),
                            source=f"{name}#{number}/{kind}/{obj_name}/{cname}",
                            workload=f"{kind}/{obj_name}",
                            container=cname,
                            namespace=None if namespace is None else str(namespace),
                            role=role,
                        )
                    )
    return rows


def _interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}`` and ``$$``, from ``env``.

    An unset variable without a default is left as written, so the reference
    fails to parse and the row says why.
    """

    def replace(match: re.Match[str]) -> str:
        if match["dollar"]:
            return "$"
        var = match["braced"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(var)
        if op == ":-" and not value:
            return arg
        if op == "-" and value is None:
            return arg
        return match.group(0) if value is None else value

    return _COMPOSE_VARIABLE.sub(replace, text)


def _read_compose(doc: Mapping[str, Any], name: str, env: Mapping[str, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    services = doc.get("services")
    if not isinstance(services, Mapping):
        return rows
    for service, spec in services.items():
        # A service with only a build section has no image to pull.
        if not isinstance(spec, Mapping) or "image" not in spec:
            continue
        image = spec.get("image")
        if isinstance(image, str):
            image = _interpolate(image, env)
        container = spec.get("container_name") or service
        rows.append(
            _reference_row(
                image,
                source=f"{name}#services/{service}",
                workload=str(service),
                container=str(container),
                role="service",
            )
        )
    return rows


def _source_text(source: str | os.PathLike[str]) -> tuple[str, str, str]:
    """(text, name for the source column, lower-cased suffix) of a path or of literal text."""
    if isinstance(source, os.PathLike):
        path = Path(source)
        return path.read_text(encoding="utf-8"), str(path), path.suffix.lower()
    if "\n" not in source and source.strip():
        path = Path(source.strip())
        if path.is_file():
            return path.read_text(encoding="utf-8"), str(path), path.suffix.lower()
        if path.suffix.lower() in _FILE_SUFFIXES:
            raise FileNotFoundError(f"no such fleet file: {source}")
    return source, "<text>", ""


def _detect(docs: list[Any]) -> FleetKind | None:
    mappings = [d for d in docs if isinstance(d, Mapping)]
    if any(isinstance(d.get("services"), Mapping) for d in mappings):
        return "compose"
    if any("kind" in d or "apiVersion" in d for d in mappings):
        return "kubernetes"
    return None


def read_fleet(
    source: str | os.PathLike[str],
    *,
    kind: FleetKind | None = None,
    name: str | None = None,
    env: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Read the image references of a fleet into a frame, one row per image field.

    ``source`` is a path (a :class:`~pathlib.Path`, or a string naming an
    existing file) or the text itself.  Its kind is detected from the content,
    or given with ``kind``:

    * ``compose``: a mapping with ``services``; each ``services.<name>.image``
      (``${VAR}`` / ``${VAR:-default}`` filled from ``env``, default none);
      services with only ``build`` are skipped.
    * ``kubernetes``: documents with ``kind``/``apiVersion``; the
      ``initContainers``, ``containers`` and ``ephemeralContainers`` of
      Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs,
      CronJobs (``jobTemplate``), pod templates, and of ``List`` items.
    * ``list``: one reference per line, ``#`` starts a comment.

    A reference that does not parse (or a container without image) becomes a
    row with ``error`` set, never an exception; so does a YAML file that does
    not parse.  References without tag or digest get ``latest``, as
    ``docker pull`` and Kubernetes do.

    Columns (:data:`FLEET`): source (``file:line`` for lists,
    ``file#doc/Kind/name/container`` for Kubernetes with ``doc`` the 0-based
    YAML document index, ``file#services/name`` for compose), workload
    (``Kind/name``, or the compose service), container, image (as written),
    reference (canonical), registry, repository, tag, digest, error,
    namespace and role (``container``, ``init``, ``ephemeral``, ``service``,
    ``list``).  ``name`` replaces the file name in ``source``.
    """
    text, default_name, suffix = _source_text(source)
    label = name or default_name
    rows: list[dict[str, Any]]
    docs: list[Any] | None = None
    yaml_error: str | None = None
    if kind != "list":
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            yaml_error = f"YAML does not parse: {exc}".replace("\n", " ")
    detected = kind or (_detect(docs) if docs is not None else None)
    if detected is None:
        if suffix in _YAML_SUFFIXES:
            if yaml_error is not None:
                return make_frame([{"source": label, "error": yaml_error}], FLEET)
            detected = "kubernetes"
        elif (
            docs is not None
            and len(docs) == 1
            and isinstance(docs[0], list)
            and all(isinstance(item, str) for item in docs[0])
        ):
            rows = [
                _reference_row(item, source=f"{label}#{i}", role="list") for i, item in enumerate(docs[0])
            ]
            return make_frame(rows, FLEET)
        else:
            detected = "list"
    if detected != "list" and docs is None:
        return make_frame([{"source": label, "error": yaml_error}], FLEET)
    if detected == "list":
        rows = _read_list(text, label)
    elif detected == "compose":
        assert docs is not None
        rows = [r for d in docs if isinstance(d, Mapping) for r in _read_compose(d, label, env or {})]
    else:
        assert docs is not None
        rows = _read_kubernetes(docs, label)
    return make_frame(rows, FLEET)

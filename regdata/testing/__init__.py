"""In-memory registries for tests: a :class:`~regdata.Registry` over images you build, with no server.

The Flux v1 mock remote factory, served as httpx's ``MockTransport`` is.
Build images, indexes, artifacts and schema1 manifests as real JSON bytes
with real sha256 digests, push them to a :class:`MockRegistry`, and read
them back through regdata's own Remote: the mock answers HTTP requests as a
Distribution registry would, under the real auth, retries, limits, cache and
request log::

    >>> from regdata.testing import MockRegistry, image, index
    >>> mock = MockRegistry()
    >>> app = image(created="2024-01-02T03:04:05Z", platform="linux/amd64",
    ...             labels={"team": "core"}, layers=[1200, 3400])
    >>> mock.push("example.com/team/app:1.0", app) == app.digest
    True
    >>> digest = mock.push("example.com/team/app:2.0", index(
    ...     image(created="2024-02-01T00:00:00Z", platform="linux/amd64", layers=[100]),
    ...     image(created="2024-02-01T00:00:00Z", platform="linux/arm64/v8", layers=[200]),
    ...     attestations=True))
    >>> mock.tag("example.com/team/app:latest", "example.com/team/app:2.0")   # a shared digest
    >>> mock.fail("example.com/team/app:broken")              # a listed tag whose manifest 404s
    >>> reg = mock.registry()                                 # a regdata.Registry; any of its options
    >>> reg.tags("example.com/team/app")
    ['1.0', '2.0', 'broken', 'latest']
    >>> df = reg.get_repository("example.com/team/app")
    >>> df[["tag", "kind", "platform", "created", "size"]]
          tag   kind        platform                   created  size
    0     2.0  index     linux/amd64 2024-02-01 00:00:00+00:00   100
    1     2.0  index  linux/arm64/v8 2024-02-01 00:00:00+00:00   200
    2  latest  index     linux/amd64 2024-02-01 00:00:00+00:00   100
    3  latest  index  linux/arm64/v8 2024-02-01 00:00:00+00:00   200
    4     1.0  image     linux/amd64 2024-01-02 03:04:05+00:00  4600
    5  broken    NaN            <NA>                       NaT  <NA>
    >>> df.loc[5, "error"]
    'NotFound: 404 from example.com/v2/team/app/manifests/broken (MANIFEST_UNKNOWN: manifest unknown)'
    >>> int((reg.requests["kind"] == "blob").sum())           # one config fetch per digest
    3

Builders (each returns a :class:`Content`: ``.digest``, ``.body``, ``.media_type``...):
:func:`image` (Docker schema2, or OCI with ``oci=True``), :func:`index`
(a manifest list or OCI index, optionally with buildkit attestations),
:func:`artifact` (an OCI artifact, e.g. a Helm chart), :func:`schema1`
(a signed Docker schema1 manifest) and :func:`raw` (any bytes as a manifest).

Faults: :meth:`MockRegistry.fail` makes requests for a repository, tag or
digest answer with an error (a 404 by default; a config blob by its digest
for a missing config; a 429 with ``retry_after=`` is retried as from a real
registry), :meth:`MockRegistry.drop` closes the connection unanswered,
:meth:`MockRegistry.delay` answers late, and :meth:`MockRegistry.corrupt`
serves other bytes than the stored ones (a digest mismatch, or malformed JSON).

Modules: :mod:`~regdata.testing.content` (the builders),
:mod:`~regdata.testing.store` (what the registry holds),
:mod:`~regdata.testing.transport` (the HTTP answers) and
:mod:`~regdata.testing.registry` (:class:`MockRegistry`).

Layer blobs are not stored (regdata never fetches them): a layer is only its
descriptor.  Signatures of schema1 manifests are not valid ones (regdata
does not check them); their digests are, computed over the signed payload.
"""

from __future__ import annotations

from regdata.testing.content import (
    DOCKER_LAYER,
    IN_TOTO,
    OCI_LAYER,
    Content,
    artifact,
    image,
    index,
    raw,
    schema1,
)
from regdata.testing.registry import MockRegistry
from regdata.testing.transport import MockTransport

__all__ = [
    "DOCKER_LAYER",
    "IN_TOTO",
    "OCI_LAYER",
    "Content",
    "MockRegistry",
    "MockTransport",
    "artifact",
    "image",
    "index",
    "raw",
    "schema1",
]

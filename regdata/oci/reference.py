"""Image references, parsed the way Docker parses them.

The grammar is the one of ``github.com/distribution/reference``::

    reference := name [ ":" tag ] [ "@" digest ]
    name      := [domain "/"] path
    domain    := host [":" port]

Names are built one on another, as in go-containerregistry's ``pkg/name``:
a :class:`Repository` is a registry host plus a path, and a :class:`Reference`
is a repository plus a tag and/or a digest.

Docker Hub is special: ``docker.io``, ``index.docker.io`` and
``registry-1.docker.io`` are one registry, its API is served from
``registry-1.docker.io``, and a one-component path gets the implicit
``library/`` namespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from regdata.errors import InvalidReference
from regdata.oci.digest import DIGEST, HEX_LENGTH, is_verifiable

__all__ = [
    "DOCKER_HUB",
    "Reference",
    "Repository",
    "api_host",
    "canonical_host",
    "check_identifier",
    "is_loopback_host",
    "parse_reference",
    "parse_repository",
    "short_name",
]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DEFAULT_TAG = "latest"

# Docker's limit on the whole name (host and path), from distribution/reference.
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*\Z")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})"
_DOMAIN = re.compile(rf"{_HOST}(?::[0-9]+)?\Z")
# ASCII, as Go's \w in Docker's grammar: Python's \w takes any letter or digit of Unicode.
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z", re.ASCII)


def canonical_host(host: str) -> str:
    """Return the canonical name of a registry host.

    Lower-cases the host and folds Docker Hub's aliases into ``docker.io``.
    Scheme prefixes and paths (as found in docker config keys such as
    ``https://index.docker.io/v1/``) are stripped.
    """
    text = host.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0].lower()
    return DOCKER_HUB if text in _DOCKER_HUB_ALIASES else text


def api_host(registry: str) -> str:
    """Return the host that serves the registry API for ``registry``."""
    return DOCKER_HUB_API if canonical_host(registry) == DOCKER_HUB else registry


def is_loopback_host(host: str) -> bool:
    """True for hosts Docker talks plain HTTP to without being told: loopback."""
    name = host.lower()
    if name.startswith("["):
        name = name[1 : name.find("]")]
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    return name in ("localhost", "::1") or name.startswith("127.") or name.endswith(".localhost")


def _check_digest(text: str, original: str) -> str:
    match = DIGEST.fullmatch(text)
    if match is None:
        raise InvalidReference(original, f"invalid digest {text!r}")
    algorithm, encoded = match["algorithm"], match["encoded"]
    expected = HEX_LENGTH.get(algorithm)
    if expected is not None and not is_verifiable(text):
        problem = (
            f"must have {expected} hex characters, got {len(encoded)}"
            if len(encoded) != expected
            else "must be lower-case hex"
        )
        raise InvalidReference(original, f"invalid digest {text!r}: {algorithm} digest {problem}")
    return text


@dataclass(frozen=True, order=True)
class Repository:
    """A repository: a registry host and a path such as ``library/alpine``."""

    registry: str
    repository: str

    @property
    def api_host(self) -> str:
        """The host serving this repository's API (``registry-1.docker.io`` for Docker Hub)."""
        return api_host(self.registry)

    @property
    def name(self) -> str:
        """The familiar name: Docker Hub's ``library/`` and host left out where Docker does."""
        if self.registry == DOCKER_HUB:
            return self.repository.removeprefix("library/")
        return f"{self.registry}/{self.repository}"

    def with_tag(self, tag: str) -> Reference:
        """A reference to ``tag`` in this repository."""
        return parse_reference(f"{self}:{tag}")

    def with_digest(self, digest: str) -> Reference:
        """A reference to ``digest`` in this repository."""
        return parse_reference(f"{self}@{digest}")

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}"


@dataclass(frozen=True, order=True)
class Reference:
    """An image reference: a repository with a tag, a digest, or both.

    ``str()`` gives the canonical, fully qualified form
    (``docker.io/library/alpine:3.19``).
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repo(self) -> Repository:
        """The repository part alone."""
        return Repository(self.registry, self.repository)

    @property
    def api_host(self) -> str:
        """The host serving this reference's API."""
        return api_host(self.registry)

    @property
    def identifier(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def _split(text: str) -> tuple[str, str, str | None, str | None]:
    """Split a reference into (domain, path, tag, digest), validating each part."""
    original = text
    if not isinstance(text, str):
        raise InvalidReference(repr(text), "a reference must be a string")
    if text == "":
        raise InvalidReference(original, "empty reference")
    if text != text.strip():
        raise InvalidReference(original, "leading or trailing white space")
    if is_verifiable(f"sha256:{text}"):  # the hex of a sha256 digest, alone
        raise InvalidReference(original, "a 64-character hex string is an image ID, not a reference")

    digest: str | None = None
    if "@" in text:
        text, digest = text.split("@", 1)
        _check_digest(digest, original)

    tag: str | None = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidReference(original, f"invalid tag {tag!r}")

    if text == "":
        raise InvalidReference(original, "missing repository name")

    first, _, rest = text.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, path = first, rest
        if not _DOMAIN.match(domain):
            raise InvalidReference(original, f"invalid registry host {domain!r}")
    else:
        domain, path = DOCKER_HUB, text

    domain = canonical_host(domain) if domain.lower() in _DOCKER_HUB_ALIASES else domain
    if domain == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"

    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(original, f"name longer than {NAME_TOTAL_LENGTH_MAX} characters")
    for component in path.split("/"):
        if component == "":
            raise InvalidReference(original, "empty path component")
        if not _PATH_COMPONENT.match(component):
            if _PATH_COMPONENT.match(component.lower()):
                raise InvalidReference(original, "repository name must be lowercase")
            raise InvalidReference(original, f"invalid path component {component!r}")
    return domain, path, tag, digest


def check_identifier(tag: str | None, digest: str | None, where: str) -> None:
    """Raise InvalidReference for a tag or digest no reference could hold.

    For the ones that come from a registry rather than from a parsed
    reference (a tag a listing named, a digest a manifest named), before
    they go into a URL path.
    """
    if tag is not None and not (isinstance(tag, str) and _TAG.match(tag)):
        raise InvalidReference(f"{where}:{tag}", "invalid tag")
    if digest is not None:
        _check_digest(digest, f"{where}@{digest}")


def parse_reference(text: str | Reference | Repository, *, default_tag: bool = False) -> Reference:
    """Parse an image reference such as ``alpine``, ``ghcr.io/org/app:1.2`` or ``x@sha256:...``.

    With ``default_tag=True`` a reference naming neither tag nor digest gets
    ``latest``, as ``docker pull`` does.  Raises :class:`InvalidReference`
    (a ``ValueError``) naming the input and what is wrong with it.
    """
    if isinstance(text, Reference):
        ref = text
    elif isinstance(text, Repository):
        ref = Reference(text.registry, text.repository)
    else:
        domain, path, tag, digest = _split(text)
        ref = Reference(domain, path, tag, digest)
    if default_tag and ref.tag is None and ref.digest is None:
        ref = Reference(ref.registry, ref.repository, DEFAULT_TAG, None)
    return ref


def short_name(text: str, digest_hex: int = 12) -> str:
    """A reference as people read it: Docker Hub's ``docker.io/library/`` dropped, digests cut.

    For labels and tables; never parse what this returns.
    """
    name, at, digest = text.partition("@")
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix) and name.count("/") <= prefix.count("/") + 1:
            name = name[len(prefix) :]
            break
    if not at:
        return name
    algorithm, _, hexpart = digest.partition(":")
    short = f"{algorithm}:{hexpart[:digest_hex]}…" if len(hexpart) > digest_hex else digest
    return f"{name}@{short}"


def parse_repository(text: str | Reference | Repository) -> Repository:
    """Parse a repository name (a reference without tag or digest).

    A :class:`Reference` is accepted and reduced to its repository.
    """
    if isinstance(text, Repository):
        return text
    if isinstance(text, Reference):
        return text.repo
    domain, path, tag, digest = _split(text)
    if tag is not None or digest is not None:
        raise InvalidReference(text, "a repository name takes no tag or digest")
    return Repository(domain, path)

"""The one exception tree of regdata.

Every error regdata raises is a :class:`RegdataError`; each says whether
retrying the same request may help (``temporary``)::

    RegdataError
    ├── InvalidReference          (also ValueError) a reference that does not parse
    ├── CredentialsError          a docker config / auth file or credential helper failed
    ├── TransportError            the request got no HTTP answer (refused, reset, TLS, timeout)
    │   ├── RequestTimeout        connect or read timeout
    │   └── TLSError              the TLS handshake failed (``verify_failed``: the certificate)
    ├── InsecureRequest           plain HTTP or a credential to a host not allowed to have it
    ├── RegistryError             the registry answered with an error status
    │   ├── Unauthorized          401
    │   ├── Denied                403
    │   ├── NotFound              404
    │   ├── TooManyRequests       429
    │   │   └── QuotaExhausted    429 for a pull quota used up: no retry helps until it resets
    │   └── ServerError           5xx
    ├── ContentError              the answer arrived but cannot be used
    │   ├── DigestMismatch        the body does not hash to its digest
    │   ├── MalformedContent      bad JSON, wrong field types, too large, bad pagination
    │   └── UnsupportedMediaType  a media type regdata does not read
    └── Cancelled                 the scan was cancelled or ran out of its time budget
        ├── BudgetExceeded        the scan's total time budget ran out
        └── QuotaFloorReached     a host's pull quota reached the floor kept

Messages never carry a secret: they name hosts, repositories and digests,
and quote at most a short, sanitised part of a registry's answer.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BudgetExceeded",
    "Cancelled",
    "ContentError",
    "CredentialsError",
    "Denied",
    "DigestMismatch",
    "InsecureRequest",
    "InvalidReference",
    "MalformedContent",
    "NotFound",
    "QuotaExhausted",
    "QuotaFloorReached",
    "RegdataError",
    "RegistryError",
    "RequestTimeout",
    "ServerError",
    "TLSError",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "error_for_status",
    "printable",
]


class RegdataError(Exception):
    """Base of every error regdata raises."""

    #: Whether sending the same request again may succeed.
    temporary: bool = False


class InvalidReference(RegdataError, ValueError):
    """An image reference or repository name that does not parse."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"invalid reference {text!r}: {reason}")


class CredentialsError(RegdataError):
    """A credentials source (config file, auth file, credential helper) could not be read."""


class TransportError(RegdataError):
    """A request that got no HTTP answer: refused, reset, TLS failure."""

    temporary = True


class RequestTimeout(TransportError):
    """A connect or read timeout."""


class TLSError(TransportError):
    """A TLS handshake that failed: the server's certificate (``verify_failed``), or no TLS at all.

    ``client_certificate``: the server speaks TLS but refused us for want of an
    acceptable client certificate (mTLS).
    """

    temporary = False

    def __init__(self, message: str, verify_failed: bool = False, client_certificate: bool = False) -> None:
        super().__init__(message)
        self.verify_failed = verify_failed
        self.client_certificate = client_certificate


class InsecureRequest(RegdataError):
    """A request regdata refuses to make: plain HTTP, or a credential sent off its host."""


@dataclass(frozen=True)
class ErrorDetail:
    """One entry of a registry's ``errors[]`` body."""

    code: str
    message: str


class RegistryError(RegdataError):
    """The registry answered with an error status.

    ``errors`` holds the ``code``/``message`` entries the spec puts in the
    body, when the registry sent them.
    """

    def __init__(
        self,
        status: int,
        url: str,
        errors: tuple[ErrorDetail, ...] = (),
        *,
        detail: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.url = url
        self.errors = errors
        self.retry_after = retry_after
        codes = ", ".join(f"{e.code}: {e.message}" if e.message else e.code for e in errors)
        text = f"{status} from {url}"
        if codes:
            text += f" ({codes})"
        elif detail:
            text += f" ({detail})"
        super().__init__(text)

    @property
    def codes(self) -> tuple[str, ...]:
        """The error codes of the body, such as ``MANIFEST_UNKNOWN``."""
        return tuple(e.code for e in self.errors)


class Unauthorized(RegistryError):
    """401: no or bad credentials."""


class Denied(RegistryError):
    """403: the credentials do not give access."""


class NotFound(RegistryError):
    """404: no such repository, tag, manifest or blob."""


class TooManyRequests(RegistryError):
    """429: the registry is throttling us."""

    temporary = True


class QuotaExhausted(TooManyRequests):
    """429 from a host whose pull quota is used up (remaining 0, or Docker Hub's
    "You have reached your pull rate limit" without Retry-After): not retried."""

    temporary = False


class ServerError(RegistryError):
    """5xx: the registry failed; 502, 503 and 504 may pass."""

    def __init__(self, status: int, url: str, *args: object, **kwargs: object) -> None:
        super().__init__(status, url, *args, **kwargs)  # type: ignore[arg-type]
        self.temporary = status in (502, 503, 504)


class ContentError(RegdataError):
    """An answer arrived but its content cannot be used."""


class DigestMismatch(ContentError):
    """A body whose hash is not the digest it was asked for or announced with."""

    def __init__(self, expected: str, actual: str, what: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"digest mismatch for {what}: expected {expected}, got {actual}")


class MalformedContent(ContentError):
    """Unparseable or ill-typed JSON, an oversized body, a bad ``Link`` header."""


class UnsupportedMediaType(ContentError):
    """A manifest media type regdata does not read."""


class Cancelled(RegdataError):
    """The work was cancelled before it finished."""


class BudgetExceeded(Cancelled):
    """The scan's total time budget ran out."""


class QuotaFloorReached(Cancelled):
    """A host's remaining rate-limit quota reached the floor set: nothing more is sent to it.

    A :class:`Cancelled`, as the scan stops for it as it does for a cancel,
    with a row per unfinished tag saying why.
    """


def printable(text: object, limit: int = 200) -> str:
    """A registry's text made fit for a message: at most ``limit`` characters, the
    non-printable ones (terminal escapes, line breaks) as ``?``."""
    return "".join(c if c.isprintable() else "?" for c in str(text)[:limit])


_BY_STATUS: dict[int, type[RegistryError]] = {
    401: Unauthorized,
    403: Denied,
    404: NotFound,
    429: TooManyRequests,
}


def error_for_status(
    status: int,
    url: str,
    errors: tuple[ErrorDetail, ...] = (),
    *,
    detail: str = "",
    retry_after: float | None = None,
) -> RegistryError:
    """The :class:`RegistryError` subclass for an HTTP error status."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else RegistryError)
    return cls(status, url, errors, detail=detail, retry_after=retry_after)

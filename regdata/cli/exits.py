"""Exit codes, and the one line and code each failure becomes."""

from __future__ import annotations

import sys

from regdata.errors import (
    Cancelled,
    ContentError,
    CredentialsError,
    Denied,
    InsecureRequest,
    InvalidReference,
    NotFound,
    RegdataError,
    RegistryError,
    TransportError,
    Unauthorized,
)

__all__ = ["EXIT_CODES", "UsageError", "describe_error"]

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_DENIED = 4
EXIT_UNREACHABLE = 5
EXIT_REGISTRY = 6
EXIT_TIMEOUT = 7
EXIT_STALE = 8
EXIT_SANDBOX = 9
EXIT_INTERRUPTED = 130

#: Exit codes and what they mean (also in ``regdata --help``).
EXIT_CODES = {
    EXIT_OK: "success (rows may still carry an error: see the error column)",
    EXIT_BUG: "an internal error: a bug in regdata (the traceback is printed)",
    EXIT_USAGE: "bad usage: unknown option, invalid reference, bad value",
    EXIT_NOT_FOUND: "not found: repository, tag, digest or fleet file",
    EXIT_DENIED: "access denied: 401/403, or credentials that cannot be read",
    EXIT_UNREACHABLE: "registry unreachable: refused, DNS, TLS, timeout, plain HTTP not allowed",
    EXIT_REGISTRY: "the registry failed (5xx, 429) or answered unusable content",
    EXIT_TIMEOUT: "the --budget ran out or the work was cancelled",
    EXIT_STALE: "freshness/report --check: some deployed image is behind",
    EXIT_SANDBOX: "the sandbox registry cannot run (apt-get install docker-registry)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class UsageError(Exception):
    """A mistake on the command line found after parsing (exit code 2)."""


def describe_error(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message of an exception."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, UsageError | InvalidReference):
        return EXIT_USAGE, text
    if isinstance(exc, FileNotFoundError):
        return EXIT_NOT_FOUND, text if "no such" in text else f"no such file: {exc.filename or text}"
    if isinstance(exc, NotFound):
        return EXIT_NOT_FOUND, f"not found: {text}"
    if isinstance(exc, Unauthorized | Denied):
        return EXIT_DENIED, f"access denied: {text}"
    if isinstance(exc, CredentialsError):
        return EXIT_DENIED, f"credentials: {text}"
    if isinstance(exc, TransportError | InsecureRequest):
        return EXIT_UNREACHABLE, f"unreachable: {text}"
    if isinstance(exc, Cancelled):
        return EXIT_TIMEOUT, text
    if isinstance(exc, RegistryError | ContentError):
        return EXIT_REGISTRY, f"registry error: {text}"
    # Only the sandbox raises it, so it is a SandboxError only if the sandbox was imported:
    # looking it up here keeps `regdata --version` from importing the sandbox.
    sandbox = sys.modules.get("regdata.sandbox.errors")
    if sandbox is not None and isinstance(exc, sandbox.SandboxError):
        return EXIT_SANDBOX, f"sandbox: {text}"
    if isinstance(exc, RegdataError | ValueError):
        return EXIT_USAGE, text
    return EXIT_BUG, f"internal error: {type(exc).__name__}: {text}"

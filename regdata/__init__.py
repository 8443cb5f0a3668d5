"""regdata: container registries (Docker Registry HTTP API v2 / OCI Distribution) as pandas DataFrames.

>>> import regdata
>>> reg = regdata.Registry()                                   # doctest: +SKIP
>>> reg.get_repository("127.0.0.1:5000/team/app")              # doctest: +SKIP

The public API is what this module exports; everything else is an
implementation detail that may move.
"""

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# What each public name is imported from.  They load on first use (PEP 562), so
# that `regdata --version` or `regdata tags` does not pay for pandas and matplotlib.
_EXPORTS = {
    "BudgetExceeded": ".errors",
    "Cache": ".cache",
    "Cancelled": ".errors",
    "ContentError": ".errors",
    "Context": ".context",
    "Credential": ".credentials",
    "Credentials": ".credentials",
    "CredentialsError": ".errors",
    "Denied": ".errors",
    "DigestMismatch": ".errors",
    "InsecureRequest": ".errors",
    "InvalidReference": ".errors",
    "Limits": ".limits",
    "MalformedContent": ".errors",
    "NotFound": ".errors",
    "Proxies": ".transport.proxy",
    "QuotaExhausted": ".errors",
    "QuotaFloorReached": ".errors",
    "RateLimit": ".limits",
    "Reference": ".reference",
    "RegdataError": ".errors",
    "Registry": ".registry",
    "RegistryError": ".errors",
    "Remote": ".remote",
    "RemoteFactory": ".remote",
    "Repository": ".reference",
    "RequestLog": ".requestlog",
    "RequestTimeout": ".errors",
    "RetryPolicy": ".transport",
    "SandboxError": ".errors",
    "ServerError": ".errors",
    "TLSError": ".errors",
    "Timeouts": ".transport",
    "TooManyRequests": ".errors",
    "TransportError": ".errors",
    "Unauthorized": ".errors",
    "UnsupportedMediaType": ".errors",
    "cadence_summary": ".freshness",
    "classify_changes": ".freshness",
    "diff_snapshots": ".snapshots",
    "fleet_freshness": ".fleet",
    "load_snapshot": ".snapshots",
    "newest_per_track": ".freshness",
    "open_cache": ".cache.open",
    "parse_reference": ".reference",
    "parse_repository": ".reference",
    "parse_version": ".versions",
    "read_fleet": ".fleet",
    "release_cadence": ".freshness",
    "repush_share": ".freshness",
    "save_snapshot": ".snapshots",
    "shared_digests": ".freshness",
    "sort_tags": ".versions",
    "tag_ages": ".freshness",
    "version_frame": ".versions",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'regdata' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, "__version__"})


# For type checkers and readers: the same names, imported eagerly.
if TYPE_CHECKING:
    from .cache import Cache as Cache
    from .cache.open import open_cache as open_cache
    from .context import Context as Context
    from .credentials import Credential as Credential, Credentials as Credentials
    from .errors import (
        BudgetExceeded as BudgetExceeded,
        Cancelled as Cancelled,
        ContentError as ContentError,
        CredentialsError as CredentialsError,
        Denied as Denied,
        DigestMismatch as DigestMismatch,
        InsecureRequest as InsecureRequest,
        InvalidReference as InvalidReference,
        MalformedContent as MalformedContent,
        NotFound as NotFound,
        QuotaExhausted as QuotaExhausted,
        QuotaFloorReached as QuotaFloorReached,
        RegdataError as RegdataError,
        RegistryError as RegistryError,
        RequestTimeout as RequestTimeout,
        SandboxError as SandboxError,
        ServerError as ServerError,
        TLSError as TLSError,
        TooManyRequests as TooManyRequests,
        TransportError as TransportError,
        Unauthorized as Unauthorized,
        UnsupportedMediaType as UnsupportedMediaType,
    )
    from .fleet import fleet_freshness as fleet_freshness, read_fleet as read_fleet
    from .freshness import (
        cadence_summary as cadence_summary,
        classify_changes as classify_changes,
        newest_per_track as newest_per_track,
        release_cadence as release_cadence,
        repush_share as repush_share,
        shared_digests as shared_digests,
        tag_ages as tag_ages,
    )
    from .limits import Limits as Limits, RateLimit as RateLimit
    from .reference import (
        Reference as Reference,
        Repository as Repository,
        parse_reference as parse_reference,
        parse_repository as parse_repository,
    )
    from .registry import Registry as Registry
    from .remote import Remote as Remote, RemoteFactory as RemoteFactory
    from .requestlog import RequestLog as RequestLog
    from .snapshots import (
        diff_snapshots as diff_snapshots,
        load_snapshot as load_snapshot,
        save_snapshot as save_snapshot,
    )
    from .transport import RetryPolicy as RetryPolicy, Timeouts as Timeouts
    from .transport.proxy import Proxies as Proxies
    from .versions import (
        parse_version as parse_version,
        sort_tags as sort_tags,
        version_frame as version_frame,
    )

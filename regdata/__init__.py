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
    "BudgetExceeded": "regdata.errors",
    "Cache": "regdata.cache",
    "Cancelled": "regdata.errors",
    "ContentError": "regdata.errors",
    "Credential": "regdata.credentials",
    "Credentials": "regdata.credentials",
    "CredentialsError": "regdata.errors",
    "Denied": "regdata.errors",
    "DigestMismatch": "regdata.errors",
    "InsecureRequest": "regdata.errors",
    "InvalidReference": "regdata.errors",
    "MalformedContent": "regdata.errors",
    "MockRegistry": "regdata.testing",
    "NotFound": "regdata.errors",
    "Proxies": "regdata.transport.proxy",
    "QuotaExhausted": "regdata.errors",
    "QuotaFloorReached": "regdata.errors",
    "RateLimit": "regdata.transport.ratelimit",
    "Reference": "regdata.oci.reference",
    "RegdataError": "regdata.errors",
    "Registry": "regdata.client.registry",
    "RegistryError": "regdata.errors",
    "Remote": "regdata.client.remote",
    "Repository": "regdata.oci.reference",
    "RequestTimeout": "regdata.errors",
    "RetryPolicy": "regdata.transport",
    "Sandbox": "regdata.sandbox",
    "SandboxError": "regdata.sandbox.errors",
    "ServerError": "regdata.errors",
    "TLSError": "regdata.errors",
    "Timeouts": "regdata.transport",
    "TooManyRequests": "regdata.errors",
    "TransportError": "regdata.errors",
    "Unauthorized": "regdata.errors",
    "UnsupportedMediaType": "regdata.errors",
    "cadence_summary": "regdata.analysis.freshness",
    "classify_changes": "regdata.analysis.freshness",
    "diff_snapshots": "regdata.analysis.snapshots",
    "fleet_freshness": "regdata.analysis.fleet",
    "judge_fleet": "regdata.report",
    "load_snapshot": "regdata.analysis.snapshots",
    "newest_per_track": "regdata.analysis.freshness",
    "open_cache": "regdata.cache.open",
    "parse_reference": "regdata.oci.reference",
    "parse_repository": "regdata.oci.reference",
    "parse_version": "regdata.analysis.versions",
    "read_fleet": "regdata.analysis.fleet",
    "read_fleets": "regdata.report",
    "release_cadence": "regdata.analysis.freshness",
    "repush_share": "regdata.analysis.freshness",
    "save_snapshot": "regdata.analysis.snapshots",
    "scan_fleet": "regdata.report",
    "shared_digests": "regdata.analysis.freshness",
    "sort_tags": "regdata.analysis.versions",
    "tag_ages": "regdata.analysis.freshness",
    "version_frame": "regdata.analysis.versions",
    "write_report": "regdata.report",
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
    from regdata.analysis.fleet import fleet_freshness as fleet_freshness, read_fleet as read_fleet
    from regdata.analysis.freshness import (
        cadence_summary as cadence_summary,
        classify_changes as classify_changes,
        newest_per_track as newest_per_track,
        release_cadence as release_cadence,
        repush_share as repush_share,
        shared_digests as shared_digests,
        tag_ages as tag_ages,
    )
    from regdata.analysis.snapshots import (
        diff_snapshots as diff_snapshots,
        load_snapshot as load_snapshot,
        save_snapshot as save_snapshot,
    )
    from regdata.analysis.versions import (
        parse_version as parse_version,
        sort_tags as sort_tags,
        version_frame as version_frame,
    )
    from regdata.cache import Cache as Cache
    from regdata.cache.open import open_cache as open_cache
    from regdata.client.registry import Registry as Registry
    from regdata.client.remote import Remote as Remote
    from regdata.credentials import Credential as Credential, Credentials as Credentials
    from regdata.errors import (
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
        ServerError as ServerError,
        TLSError as TLSError,
        TooManyRequests as TooManyRequests,
        TransportError as TransportError,
        Unauthorized as Unauthorized,
        UnsupportedMediaType as UnsupportedMediaType,
    )
    from regdata.oci.reference import (
        Reference as Reference,
        Repository as Repository,
        parse_reference as parse_reference,
        parse_repository as parse_repository,
    )
    from regdata.report import (
        judge_fleet as judge_fleet,
        read_fleets as read_fleets,
        scan_fleet as scan_fleet,
        write_report as write_report,
    )
    from regdata.sandbox import Sandbox as Sandbox
    from regdata.sandbox.errors import SandboxError as SandboxError
    from regdata.testing import MockRegistry as MockRegistry
    from regdata.transport import RetryPolicy as RetryPolicy, Timeouts as Timeouts
    from regdata.transport.proxy import Proxies as Proxies
    from regdata.transport.ratelimit import RateLimit as RateLimit

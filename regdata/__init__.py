"""regdata: container registries (Docker Registry HTTP API v2 / OCI Distribution) as pandas DataFrames.

>>> import regdata
>>> reg = regdata.Registry()                                   # doctest: +SKIP
>>> reg.get_repository("127.0.0.1:5000/team/app")              # doctest: +SKIP

The public API is what this module exports; everything else is an
implementation detail that may move.
"""

from .cache import Cache
from .cache.open import open_cache
from .context import Context
from .credentials import Credential, Credentials
from .errors import (
    BudgetExceeded,
    Cancelled,
    ContentError,
    CredentialsError,
    Denied,
    DigestMismatch,
    InsecureRequest,
    InvalidReference,
    MalformedContent,
    NotFound,
    QuotaExhausted,
    QuotaFloorReached,
    RegdataError,
    RegistryError,
    RequestTimeout,
    SandboxError,
    ServerError,
    TooManyRequests,
    TransportError,
    Unauthorized,
    UnsupportedMediaType,
)
from .fleet import fleet_freshness, read_fleet
from .freshness import (
    cadence_summary,
    classify_changes,
    newest_per_track,
    release_cadence,
    repush_share,
    shared_digests,
    tag_ages,
)
from .limits import Limits, RateLimit
from .reference import Reference, Repository, parse_reference, parse_repository
from .registry import Registry
from .remote import Remote, RemoteFactory
from .requestlog import RequestLog
from .snapshots import diff_snapshots, load_snapshot, save_snapshot
from .transport import RetryPolicy, Timeouts
from .versions import parse_version, sort_tags, version_frame

__version__ = "0.1.0"

__all__ = [
    "BudgetExceeded",
    "Cache",
    "Cancelled",
    "ContentError",
    "Context",
    "Credential",
    "Credentials",
    "CredentialsError",
    "Denied",
    "DigestMismatch",
    "InsecureRequest",
    "InvalidReference",
    "Limits",
    "MalformedContent",
    "NotFound",
    "QuotaExhausted",
    "QuotaFloorReached",
    "RateLimit",
    "Reference",
    "RegdataError",
    "Registry",
    "RegistryError",
    "Remote",
    "RemoteFactory",
    "Repository",
    "RequestLog",
    "RequestTimeout",
    "RetryPolicy",
    "SandboxError",
    "ServerError",
    "Timeouts",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "cadence_summary",
    "classify_changes",
    "diff_snapshots",
    "fleet_freshness",
    "load_snapshot",
    "newest_per_track",
    "open_cache",
    "parse_reference",
    "parse_repository",
    "parse_version",
    "read_fleet",
    "release_cadence",
    "repush_share",
    "save_snapshot",
    "shared_digests",
    "sort_tags",
    "tag_ages",
    "version_frame",
]

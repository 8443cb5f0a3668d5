"""regdata: container registries as pandas DataFrames."""

from .errors import InvalidReference, RegdataError
from .reference import Reference, Repository, parse_reference, parse_repository

__all__ = [
    "InvalidReference",
    "Reference",
    "RegdataError",
    "Repository",
    "parse_reference",
    "parse_repository",
]

"""One host's credential, and the salted hash that identifies it without showing it."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, fields

__all__ = ["Credential"]


# The salt of the identity KDF; a new version names new cache keys for every credential.
_IDENTITY_DOMAIN = b"regdata.credential.identity.v2\x00"
# scrypt cost: 2**13 blocks of 1 KiB, about 30 ms on a laptop core.
_IDENTITY_SCRYPT_N = 2**13
_IDENTITY_LOCK = threading.Lock()
_SECRET_FIELDS = ("password", "identity_token", "registry_token")


@dataclass(frozen=True, repr=False)
class Credential:
    """What one registry host is given: basic auth, an identity token or a registry token.

    All fields are optional; a credential with none set is anonymous and
    falsy.  ``repr()`` and ``str()`` show the username but only ``<set>`` for
    the secrets.
    """

    username: str | None = None
    password: str | None = None
    #: An OAuth2 refresh token (Docker's ``identitytoken``), traded for bearer tokens.
    identity_token: str | None = None
    #: A bearer token sent to the registry as is (Docker's ``registrytoken``).
    registry_token: str | None = None

    @classmethod
    def anonymous(cls) -> Credential:
        """The empty credential: no authentication at all."""
        return cls()

    def __bool__(self) -> bool:
        """False for the anonymous credential (no field set, or all empty)."""
        return any(getattr(self, f.name) for f in fields(self))

    def identity(self) -> str:
        """A short hex digest naming this credential, for cache keys.

        Two credentials differing in any field (the secrets included) get
        different identities; the secrets cannot be read back from it.  Cache
        keys are visible to whoever can list a shared cache, so the digest is
        a slow, memory-hard KDF (scrypt, about 30 ms and 8 MiB) rather than a
        plain hash: guessing a password from a key costs that much per guess.
        The salt is a constant, so the identity is the same in every process
        and on every machine sharing a cache; it is computed once per
        Credential.  The anonymous credential's identity is ``"anonymous"``.
        """
        memo: str | None = self.__dict__.get("_identity")
        if memo is not None:
            return memo
        if not self:
            value = "anonymous"
            object.__setattr__(self, "_identity", value)
        else:
            # One at a time: a scan's threads asking at once wait for one computation
            # instead of each spending the time and the memory.
            with _IDENTITY_LOCK:
                again = self.__dict__.get("_identity")
                if isinstance(again, str):
                    return again
                # JSON keeps None apart from "" and a field's end from the next's start.
                payload = json.dumps([getattr(self, f.name) for f in fields(self)]).encode("utf-8")
                value = hashlib.scrypt(
                    payload,
                    salt=_IDENTITY_DOMAIN,
                    n=_IDENTITY_SCRYPT_N,
                    r=8,
                    p=1,
                    maxmem=64 * 1024 * 1024,
                    dklen=8,
                ).hex()
                # Not a field: equality, hashing and repr ignore it; frozen, so set it directly.
                object.__setattr__(self, "_identity", value)
        return value

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            shown = "<set>" if f.name in _SECRET_FIELDS else repr(value)
            parts.append(f"{f.name}={shown}")
        return f"Credential({', '.join(parts)})"

    __str__ = __repr__


_ANONYMOUS = Credential()

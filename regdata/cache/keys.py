"""Cache keys: registry host, repository, reference, media types asked for, credential.

A key names everything that decides the answer, so two registries with the
same repository name never collide (Flux v1 left the host out) and two
credentials with different rights never share an entry.  The credential is
there as its one-way identity hash, never the secret.  Keys stay readable
for a person looking at the store, and under memcached's 250-byte limit.
"""

from __future__ import annotations

import hashlib
import json
import re

__all__ = ["MAX_KEY_LENGTH", "make_key"]

MAX_KEY_LENGTH = 250
VERSION = "rd1"
_UNSAFE = re.compile(r"[^a-zA-Z0-9._:/@-]")


def make_key(kind: str, host: str, repository: str, reference: str, accept: str, identity: str) -> str:
    """``rd1:<kind>:<host>/<repository>@<reference>:<hash>``, at most 250 bytes.

    The hash covers every part, so a readable part cut short to fit the
    limit still gives a distinct key.
    """
    # JSON keeps the parts apart whatever they hold.
    parts = json.dumps([VERSION, kind, host, repository, reference, accept, identity])
    digest = hashlib.sha256(parts.encode()).hexdigest()[:32]
    readable = f"{VERSION}:{kind}:{host}/{repository}@{reference}"
    # memcached keys take no spaces or control characters, and a digest read from an
    # untrusted manifest may hold anything: keep a plain alphabet, the hash keeps keys apart.
    readable = _UNSAFE.sub("_", readable)
    room = MAX_KEY_LENGTH - len(digest) - 1
    return f"{readable[:room]}:{digest}"

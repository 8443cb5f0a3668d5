"""JSON text from untrusted sources, decoded into what regdata can hold.

Apart from :mod:`regdata.oci.manifest` so that :mod:`regdata.oci.digest`
(which reads a schema1 signature's JSON) needs nothing that needs digests.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["decode_json"]

# A \uD800-\uDFFF escape: half of a surrogate pair, or a lone one no text can hold.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def decode_json(data: bytes | str) -> Any:
    """Decode untrusted JSON; ValueError for anything that is not JSON text regdata can hold.

    Past ``json.loads``'s own errors, that is nesting too deep for the
    decoder (a RecursionError otherwise) and a lone surrogate escape
    (``"\\ud800"``), which no Unicode text can hold: it would fail later,
    wherever the string is encoded (a frame, a URL, a log line).
    """
    try:
        document = json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if isinstance(data, str):
        text = data
    else:
        encoding = json.detect_encoding(data)  # what json.loads decoded it with
        text = data.decode(encoding, "replace") if encoding != "utf-8" or b"\\u" in data else ""
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(document, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("JSON text holds a lone surrogate escape") from None
    return document

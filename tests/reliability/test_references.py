"""Any string either parses as a reference or raises InvalidReference, never anything else.

A big run across text strategies: any Unicode (surrogates and control
characters too), strings that look like references with one part broken,
and very long ones.  A string that parses must print back to itself
(parsed again, the same reference), and the URL regdata would ask for it
must be one a request can carry, or be refused with a RegdataError: the
parser is the door every reference a user types comes in by.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from regdata import InvalidReference, RegdataError, parse_reference, parse_repository
from regdata.transport import Request

from .support import CLEAR, CRASH, HANDLED, Batch, Tally, judge_exception

EXAMPLES = 1_000  # per strategy; five strategies
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Every code point, surrogates and control characters included.
_ANY = st.characters(exclude_categories=())
_CONTROL = st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Cs"])
_PIECES = st.sampled_from(
    [
        "docker.io",
        "localhost",
        "localhost:5000",
        "127.0.0.1:5000",
        "[::1]:5000",
        "ghcr.io",
        "a.b.c:1",
        "library",
        "alpine",
        "team/app",
        "a__b",
        "a--b",
        "a..b",
        "A",
        "_",
        "-",
        ".",
        "/",
        "//",
        ":",
        "::",
        "@",
        "@@",
        "latest",
        "v1.2.3",
        "sha256:",
        "sha512:",
        "0" * 64,
        "f" * 128,
        "x" * 128,
        "x" * 300,
        " ",
        "\t",
        "\n",
        "\x00",
        "\u00e9",
        "\u202e",
        "\ud800",
        "\uffff",
        "%2F",
        "..",
        "?",
        "#",
        "[",
        "]",
        "99999",
    ]
)
_LOOKALIKE = st.lists(_PIECES, min_size=1, max_size=12).map("".join)
_CORRUPTED = st.builds(
    lambda base, at, junk: base[:at] + junk + base[at:],
    st.sampled_from(
        [
            "127.0.0.1:5000/team/app:1.0",
            "ghcr.io/org/app@sha256:" + "a" * 64,
            "alpine:3.19",
            "localhost/a/b/c:tag@sha256:" + "0" * 64,
        ]
    ),
    st.integers(0, 60),
    st.text(_ANY, min_size=1, max_size=3),
)


def _check(batch: Batch, text: Any) -> None:
    """Parse; judge; a parsed reference must round-trip and give a URL that is usable or refused."""
    name = repr(text)[:80]
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        outcome, detail = judge_exception(exc)
        if outcome == CLEAR and isinstance(text, str) and text not in str(exc) and repr(text) not in str(exc):
            outcome, detail = CRASH, f"the message does not name the input: {exc}"
        batch.record(name, outcome, detail)
        assert outcome == CLEAR, detail
        return
    except Exception as exc:  # anything else escaping the parser is a crash
        batch.exception(name, exc)
        raise
    try:
        assert parse_reference(str(ref)) == ref, f"{text!r} -> {ref} does not round-trip"
        assert parse_repository(ref) == ref.repo
        url = f"https://{ref.api_host}/v2/{ref.repository}/manifests/{ref.identifier}"
        # Refused as a request (a port out of range) is clear too, and nothing is sent.
        with contextlib.suppress(RegdataError):
            Request("GET", url, "manifest")
    except Exception as exc:
        batch.record(name, CRASH, f"{type(exc).__name__}: {exc}")
        raise
    batch.record(name, HANDLED, str(ref)[:80])


@SETTINGS
@given(text=st.text(_ANY, max_size=80))
def test_any_unicode(text: str, tally: Tally) -> None:
    _check(tally.batch("reference", "any Unicode text"), text)


@SETTINGS
@given(text=st.text(st.one_of(_ANY, _CONTROL), min_size=1, max_size=40))
def test_control_characters_and_surrogates(text: str, tally: Tally) -> None:
    _check(tally.batch("reference", "control characters and surrogates"), text)


@SETTINGS
@given(text=_LOOKALIKE)
def test_strings_that_look_like_references(text: str, tally: Tally) -> None:
    _check(tally.batch("reference", "pieces of references, recombined"), text)


@SETTINGS
@given(text=_CORRUPTED)
def test_references_with_junk_inserted(text: str, tally: Tally) -> None:
    _check(tally.batch("reference", "a valid reference with junk inserted"), text)


@SETTINGS
@given(
    text=st.one_of(
        st.text(st.sampled_from("ab/:.@-_0"), min_size=200, max_size=5_000),
        st.builds(lambda n, tail: "a/" * n + tail, st.integers(100, 3_000), st.text(max_size=5)),
    )
)
def test_very_long_strings(text: str, tally: Tally) -> None:
    _check(tally.batch("reference", "very long strings"), text)


def test_what_is_not_a_string(tally: Tally) -> None:
    batch = tally.batch("reference", "not a string at all")
    for value in (None, 1, 1.5, b"alpine", ["alpine"], {"a": 1}, object()):
        _check(batch, value)
    assert all(c.outcome == CLEAR for c in batch.cases)

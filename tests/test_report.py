"""The batch report: a fleet scanned from the real registry, written, opened and checked."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from regdata import Credentials, Registry
from regdata.analysis.fleet import read_fleet
from regdata.report import FleetScan, judge_fleet, request_figures, scan_fleet, write_report
from tests.support.builder import Builder, ImageSpec
from tests.support.registry_server import RegistryServer

NOW = "2024-06-01T00:00:00Z"

FLEET = """\
services:
  web:
    image: web:1.0
  api:
    image: example.com/team/api:2.1
  db:
    image: db:5.0
  cache:
    image: missing:1
  app:
    image: ${REGISTRY}/shop/app:1.4
"""


class Page(HTMLParser):
    """The parts of an HTML page the checks need."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer, builder: Builder
) -> dict[str, object]:
    # The real registry stands for docker.io and example.com (Docker's registry-mirrors):
    # library/missing is never pushed, so its 404 is the registry's own.
    for tag, created in (
        ("1.0", "2024-01-01T00:00:00Z"),
        ("1.1", "2024-02-01T00:00:00Z"),
        ("1.2", "2024-03-01T12:00:00Z"),
    ):
        builder.push_multiarch(
            "library/web",
            ["linux/amd64", "linux/arm64/v8"],
            tags=[tag],
            seed=tag,
            spec=ImageSpec(created=created),
        )
    for tag, created in (("2.0", "2024-04-01T00:00:00Z"), ("2.1", "2024-05-01T00:00:00Z")):
        builder.push_image("team/api", ImageSpec(created=created, labels={"v": tag}), tags=[tag])
    builder.push_image("library/db", ImageSpec(created="2024-05-20T00:00:00Z"), tags=["5.0"])
    reg = Registry(
        cache=None,
        credentials=Credentials.none(),
        mirrors={"docker.io": registry.host, "example.com": registry.host},
    )
    fleet = read_fleet(FLEET)
    scan = scan_fleet(reg, fleet)
    freshness = judge_fleet(scan, now=NOW)
    out = tmp_path_factory.mktemp("report")
    html = write_report(
        freshness,
        scan.images,
        reg.requests,
        out / "report.html",
        errors=scan.errors,
        run={"scan": "0.1 s"},
        now=NOW,
    )
    markdown = write_report(
        freshness, scan.images, reg.requests, out / "report.md", "markdown", errors=scan.errors, now=NOW
    )
    page = Page()
    page.feed(html.read_text())
    return {
        "freshness": freshness,
        "scan": scan,
        "html": html,
        "markdown": markdown,
        "page": page,
        "requests": reg.requests,
    }


def test_judged_as_worked_out_by_hand(run: dict) -> None:
    freshness = run["freshness"].set_index("image")
    web = freshness.loc["web:1.0"]
    assert (web["status"], web["candidate_tag"], web["newer_versions"]) == ("behind", "1.2", 2)
    assert web["lag_days"] == pytest.approx(60.5)  # 2024-03-01T12:00 - 2024-01-01
    assert freshness.loc["example.com/team/api:2.1", "status"] == "current"
    assert freshness.loc["db:5.0", "status"] == "current"
    assert freshness.loc["missing:1", "status"] == "error"
    assert freshness.loc["missing:1", "reason"].startswith("NotFound: 404")
    assert freshness.loc["${REGISTRY}/shop/app:1.4", "status"] == "error"


def test_html_has_the_tables_stale_first(run: dict) -> None:
    page: Page = run["page"]
    assert len(page.tables) == 2  # the stale images, then all
    stale, everything = page.tables
    header = stale[0]
    assert header[:2] == ["status", "image"] and "lag (days)" in header and "why" in header
    assert [row[0] for row in stale[1:]] == ["behind"]
    assert stale[1][1] == "web:1.0" and stale[1][header.index("lag (days)")] == "60.5"
    statuses = [row[0] for row in everything[1:]]
    assert statuses == ["behind", "error", "error", "current", "current"]


def test_html_plots_are_inline_pngs(run: dict) -> None:
    page: Page = run["page"]
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    # The fleet plot, then a timeline and a size plot of the one repository with a stale image.
    assert len(images) == 1 + 2
    for attrs in images:
        src = attrs["src"] or ""
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
        assert attrs.get("alt")


def test_html_needs_no_server_and_no_network(run: dict) -> None:
    page: Page = run["page"]
    text = run["html"].read_text()
    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "iframe", "object", "embed")]
    for _, attrs in page.tags:
        for name in ("src", "href", "action"):
            value = attrs.get(name) or ""
            assert not value or value.startswith("data:"), (name, value[:60])
    assert "@import" not in text and "url(" not in text
    assert text.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in text


def test_html_lists_errors_and_request_figures(run: dict) -> None:
    page: Page = run["page"]
    text = " ".join(page.text)
    assert "Errors" in text
    # The unreadable repository's image, with the registry's own reason beside it.
    assert re.search(r"missing:1 .{0,200}NotFound: 404", text)
    assert "invalid reference '${REGISTRY}/shop/app:1.4'" in text
    assert "requests sent" in text and "manifest GETs" in text
    assert "scan" in text and "0.1 s" in text
    assert "5 deployed images: 1 behind, 2 error, 2 current" in text


def test_request_figures_count_what_was_sent(run: dict) -> None:
    figures = request_figures(run["requests"])
    assert figures["sent"] == len(run["requests"])
    assert figures["cached"] == 0
    assert figures["by_kind"]["tags"] == 4  # web, api, db, missing
    assert figures["manifest_gets"] > 0


def test_markdown_report(run: dict) -> None:
    path: Path = run["markdown"]
    text = path.read_text()
    assert text.startswith("# Fleet freshness")
    assert "| status | image |" in text
    assert "| **behind** | `web:1.0` |" in text
    files = path.with_name("report_files")
    plots = sorted(files.glob("*.png"))
    assert len(plots) == 3
    assert f"]({files.name}/{plots[0].name})" in text
    assert "## Errors" in text and "NotFound: 404" in text


def test_an_empty_fleet_still_makes_a_report(tmp_path: Path, run: dict) -> None:
    empty = run["freshness"].iloc[0:0]
    path = write_report(empty, {}, run["requests"].iloc[0:0], tmp_path / "empty.html")
    text = path.read_text()
    assert "No deployed image is behind" in text
    page = Page()
    page.feed(text)
    assert [tag for tag, _ in page.tags].count("img") == 1  # the (empty) fleet plot


def test_bad_format_is_refused(tmp_path: Path, run: dict) -> None:
    with pytest.raises(ValueError, match="format must be"):
        write_report(run["freshness"], {}, run["requests"], tmp_path / "x.pdf", "pdf")  # type: ignore[arg-type]


def test_scan_keeps_going_past_a_failed_repository(run: dict) -> None:
    scan = run["scan"]
    assert set(scan.images) == {"docker.io/library/web", "example.com/team/api", "docker.io/library/db"}
    assert list(scan.errors) == ["docker.io/library/missing"]
    # Targeted: web 1.0 and its line's best, 1.2, on linux/amd64 only; api 2.1 (its own best); db 5.0.
    assert isinstance(scan.all_images(), pd.DataFrame) and len(scan.all_images()) == 2 + 1 + 1
    assert set(scan.all_images()["tag"]) == {"1.0", "1.2", "2.1", "5.0"}


def test_every_repository_can_get_its_plots(tmp_path: Path, run: dict) -> None:
    scan = run["scan"]
    path = write_report(
        run["freshness"], scan.images, run["requests"], tmp_path / "all.html", repositories="all", now=NOW
    )
    page = Page()
    page.feed(path.read_text())
    assert [tag for tag, _ in page.tags].count("img") == 1 + 2 * 3
    opened = [attrs for tag, attrs in page.tags if tag == "details"]
    assert len(opened) == 3 and sum("open" in attrs for attrs in opened) == 1


def test_the_generated_time_is_printed_in_utc(tmp_path: Path, run: dict) -> None:
    scan: FleetScan = run["scan"]
    path = write_report(
        run["freshness"],
        scan.images,
        run["requests"],
        tmp_path / "r.md",
        "markdown",
        now="2024-06-01T02:00:00+02:00",
    )
    assert "2024-06-01 00:00 UTC" in path.read_text()


def test_a_digest_pinned_twice_is_read_once(registry: RegistryServer, builder: Builder) -> None:
    untagged = builder.push_multiarch(
        "library/web", ["linux/amd64"], seed="untagged", spec=ImageSpec(created="2023-12-01T00:00:00Z")
    )

    def requests_for(lines: int) -> int:
        reg = Registry(cache=None, credentials=Credentials.none(), mirrors={"docker.io": registry.host})
        scan = scan_fleet(reg, read_fleet(f"web@{untagged.digest}\n" * lines))
        assert "docker.io/library/web" in scan.pinned and not scan.errors
        return len(reg.requests)

    assert requests_for(2) == requests_for(1)

"""
The guide: every relative link, image and #anchor in README.md and docs/ resolves (as GitHub
shows them), and the showcase serves the same pages at /docs/, each demo page linking to its own.
"""

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from apps.core import docs, views


def guide_files(root: Path) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def broken_links(root: Path) -> list[str]:
    """Each relative link, image or anchor under root that points at nothing, as 'file: target'."""
    broken = []
    for page in guide_files(root):
        for target in docs.link_targets(page.read_text()):
            parts = urlsplit(target)
            if parts.scheme or parts.netloc:
                continue  # off-site: not ours to check offline
            path = unquote(parts.path)
            dest = (page.parent / path).resolve() if path else page
            if not resolves(dest, parts.fragment, root):
                broken.append(f"{page.relative_to(root)}: {target}")
    return broken


def resolves(dest: Path, fragment: str, root: Path) -> bool:
    """Whether dest is a file inside root and, given a fragment, a page with that anchor."""
    if not dest.is_relative_to(root.resolve()) or not dest.is_file():
        return False
    return not fragment or (dest.suffix == ".md" and fragment in docs.anchors(dest.read_text()))


def test_every_link_image_and_anchor_in_the_guide_resolves():
    assert broken_links(docs.root()) == []


def test_the_guide_links_every_docs_page_from_the_readme():
    root = docs.root()
    linked = {
        (root / urlsplit(t).path).resolve()
        for t in docs.link_targets((root / "README.md").read_text())
    }
    pages = set((root / "docs").rglob("*.md"))
    assert {p.relative_to(root) for p in pages if p.resolve() not in linked} == set()


def test_a_broken_link_image_or_anchor_is_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# A page\n\n## Twice\n\n## Twice\n")
    (tmp_path / "docs" / "chart.png").write_bytes(b"")
    (tmp_path / "README.md").write_text(
        "\n".join(
            [
                "# Front",
                "[fine](docs/page.md#twice-1) [fine](#front) ![fine](docs/chart.png)",
                "[gone](docs/gone.md) [bad anchor](docs/page.md#twice-2) ![gone](docs/gone.png)",
                "[self](#nowhere) [escapes](../README.md) [off-site](https://example.com/x)",
                "`[in code](docs/none.md)`",
                "```",
                "[in a fence](docs/none.md)",
                "```",
            ]
        )
    )
    assert broken_links(tmp_path) == [
        "README.md: docs/gone.md",
        "README.md: docs/page.md#twice-2",
        "README.md: docs/gone.png",
        "README.md: #nowhere",
        "README.md: ../README.md",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Deploying (`make cluster`)", "deploying-make-cluster"),
        (
            "What each choice costs (`make bench`, `make soak`)",
            "what-each-choice-costs-make-bench-make-soak",
        ),
        ("Stale connections and `CONN_MAX_AGE`", "stale-connections-and-conn_max_age"),
        ("`manage.py check --deploy` and HTTPS", "managepy-check---deploy-and-https"),
        ("The lobby's messages", "the-lobbys-messages"),
        ("Which ASGI server?", "which-asgi-server"),
        ("A **bold** [link](x.md) \u00d7 \u2713 Ünïcode", "a-bold-link---ünïcode"),
    ],
)
def test_anchors_are_githubs(heading, anchor):
    assert docs.anchors(f"# {heading}\n") == [anchor]


def test_repeated_headings_are_numbered_like_github():
    assert docs.anchors("# A\n## A\n### A\n```\n# A\n```\n# B\n") == ["a", "a-1", "a-2", "b"]


# ---------------------------------------------------------------------------- the served guide


def served_pages() -> list[tuple[str, Path]]:
    """Each guide page's URL and source: /docs/ is README.md, /docs/<name>/ docs/<name>.md."""
    docs_dir = docs.root() / "docs"
    return [("/docs/", docs.root() / "README.md")] + [
        (f"/docs/{p.relative_to(docs_dir).with_suffix('').as_posix()}/", p)
        for p in sorted(docs_dir.rglob("*.md"))
    ]


@pytest.mark.parametrize("demo", views.DEMOS, ids=lambda d: d.url_name)
def test_every_demo_page_links_to_the_doc_that_explains_it(client: Client, demo) -> None:
    html = client.get(reverse(demo.url_name)).content.decode()
    title = docs.title(docs.page_path(demo.guide))
    link = f'<a href="/docs/{demo.guide}/">Read the guide: {title}</a>'
    assert link in html
    page = client.get(f"/docs/{demo.guide}/")
    assert page.status_code == 200
    assert "<h1 id=" in page.content.decode()


@pytest.mark.parametrize(("url", "source"), served_pages(), ids=lambda v: str(v))
def test_every_guide_page_renders_with_githubs_heading_ids(
    client: Client, url: str, source: Path
) -> None:
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    ids = re.findall(r"<h[1-6] id=\"([^\"]*)\"", html)
    assert ids == docs.anchors(source.read_text())
    # Links between pages point at the served pages, never at a .md file.
    assert not re.search(r"(href|src)=\"[^\":]*\.md[\"#]", html)


def test_every_served_link_and_image_resolves(client: Client) -> None:
    responses = {url: client.get(url) for url, _ in served_pages()}
    pages = {url: response.content.decode() for url, response in responses.items()}
    status = {url: response.status_code for url, response in responses.items()}
    targets = set()
    for html in pages.values():
        targets |= set(re.findall(r"(?:href|src)=\"(/docs/[^\"]*)\"", html))
    assert targets, "the guide links nothing?"
    # Each page or image fetched once, however many links point at it.
    for target in sorted(targets):
        path, _, fragment = target.partition("#")
        if path not in status:
            status[path] = client.get(path).status_code
        assert status[path] == 200, target
        if fragment:
            assert f'id="{fragment}"' in pages[path], target


@pytest.mark.parametrize(
    "url",
    [
        "/docs/nowhere/",
        "/docs/README/",
        "/docs/..%2Fconfig%2Fsettings/",
        "/docs/..%2FREADME/",
        "/docs/..%2F..%2Fetc%2Fpasswd/",
        "/docs/upstream/..%2F..%2Fconfig%2Fsettings/",
        "/docs/%2E%2E/config/settings/",
        "/docs/..%2Fmanage.py",
        "/docs/..%2F.venv%2Fbin%2Fpython.png",
        "/docs/screenshots/nothing.png",
        "/docs/styles.md",
    ],
)
def test_unknown_pages_and_paths_outside_docs_are_404(client: Client, url: str) -> None:
    assert client.get(url).status_code == 404


def test_nothing_outside_docs_is_ever_a_page_or_a_file(tmp_path) -> None:
    # Names that pass the URL patterns' shapes still resolve inside docs/ only.
    assert docs.page_path("../config/settings") is None
    assert docs.file_path("../static/favicon.png") is None
    assert docs.page_path("styles") == docs.docs_dir() / "styles.md"

"""The guide's links: every relative link, image and #anchor in README.md and docs/ resolves."""

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from apps.core import docs


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

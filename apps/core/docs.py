"""The guide (README.md and docs/*.md): headings' anchors as GitHub makes them, and links.

GitHub gives each heading an id: its text, lowercased, with everything but letters, digits,
marks, spaces, hyphens and underscores dropped, and each space turned into a hyphen; a
repeated id gets `-1`, `-2`, ... The link test and the pages that serve the guide both use
this, so an `#anchor` means the same on GitHub and here. The showcase serves the guide itself
(`render`), rendered by Python-Markdown, with relative links rewritten to the served URLs.
"""

import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree as etree

import markdown
from django.conf import settings
from markdown.treeprocessors import Treeprocessor

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target), with an optional "title" after the target.
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EMPHASIS = re.compile(r"(\*{1,3}|\b_{1,3})(\S(?:.*?\S)?)\1")


def root() -> Path:
    """The directory that holds README.md and docs/."""
    return Path(settings.BASE_DIR)


def github_slug(text: str) -> str:
    """A heading's plain text as GitHub turns it into an id (before duplicates are numbered)."""
    kept = (
        ch for ch in text.strip().lower() if ch in " -_" or unicodedata.category(ch)[0] in "LNM"
    )
    return "".join(kept).replace(" ", "-")


class Slugger:
    """Numbers repeated ids the way GitHub does: `a`, `a-1`, `a-2`."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def slug(self, text: str) -> str:
        """The id of the next heading with this text."""
        base = slug = github_slug(text)
        while slug in self.seen:
            self.seen[base] += 1
            slug = f"{base}-{self.seen[base]}"
        self.seen[slug] = 0
        return slug


def outside_code(markdown: str) -> Iterator[str]:
    """The source's lines that are not inside a fenced code block."""
    fence = None
    for line in markdown.splitlines():
        match = FENCE.match(line)
        if match:
            if fence is None:
                fence = match.group(1)
            elif match.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield line


def plain_text(inline: str) -> str:
    """Inline Markdown as the text a reader sees: code spans, links and emphasis unwrapped."""
    parts = []
    for i, piece in enumerate(CODE_SPAN.split(inline)):
        # split() yields text, the backtick run, the code, text, ...: keep code as it is.
        if i % 3 == 2:
            parts.append(piece.strip())
        elif i % 3 == 0:
            piece = LINK.sub(lambda m: m.group(1), piece)
            parts.append(EMPHASIS.sub(lambda m: m.group(2), piece))
    return "".join(parts)


def headings(markdown: str) -> list[tuple[int, str]]:
    """Each ATX heading's level and plain text, in order."""
    found = []
    for line in outside_code(markdown):
        match = HEADING.match(line)
        if match:
            found.append((len(match.group(1)), plain_text(match.group(2))))
    return found


def anchors(markdown: str) -> list[str]:
    """The ids GitHub gives the document's headings, in order."""
    slugger = Slugger()
    return [slugger.slug(text) for _, text in headings(markdown)]


def link_targets(markdown: str) -> list[str]:
    """Every link's and image's target, outside code blocks and code spans."""
    targets = []
    for line in outside_code(markdown):
        prose = CODE_SPAN.sub("", line)
        targets += [m.group(2) for m in LINK.finditer(prose)]
    return targets


# ---------------------------------------------------------------------------- serving the guide
# /docs/ is README.md, /docs/<name>/ is docs/<name>.md, /docs/<path>.png an image under docs/.
PAGE_NAME = re.compile(r"[a-z0-9-]+(?:/[a-z0-9-]+)*")
FILE_NAME = re.compile(r"[a-z0-9_-]+(?:/[a-z0-9_-]+)*\.(?:png|svg|jpg)")


def docs_dir() -> Path:
    """docs/, resolved: nothing outside it is ever served."""
    return (root() / "docs").resolve()


def inside_docs(relative: str) -> Path | None:
    """The existing file docs/<relative>, if it really is inside docs/ (links resolved)."""
    path = (docs_dir() / relative).resolve()
    return path if path.is_relative_to(docs_dir()) and path.is_file() else None


def page_path(name: str) -> Path | None:
    """The Markdown file served at /docs/<name>/ (README.md for ""), or None."""
    if not name:
        return root() / "README.md"
    return inside_docs(f"{name}.md") if PAGE_NAME.fullmatch(name) else None


def file_path(relative: str) -> Path | None:
    """The image served at /docs/<relative>, or None."""
    return inside_docs(relative) if FILE_NAME.fullmatch(relative) else None


def served_url(target: str, source: Path) -> str:
    """A link or image of `source` as the showcase serves it (off-site and code links unchanged)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path:
        return target
    dest = (source.parent / unquote(parts.path)).resolve()
    top = root().resolve()
    if dest == top / "README.md":
        url = "/docs/"
    elif dest.is_relative_to(docs_dir()):
        name = dest.relative_to(docs_dir()).as_posix()
        url = f"/docs/{name.removesuffix('.md')}/" if name.endswith(".md") else f"/docs/{name}"
    else:
        return target
    return url + (f"#{parts.fragment}" if parts.fragment else "")


class ServedLinks(Treeprocessor):
    """Rewrites the relative links and images of one page to the URLs the showcase serves."""

    def __init__(self, md: markdown.Markdown, source: Path) -> None:
        super().__init__(md)
        self.source = source

    def run(self, root: etree.Element) -> None:
        """Rewrite every `<a href>` and `<img src>` in the rendered page."""
        for element, attribute in (("a", "href"), ("img", "src")):
            for found in root.iter(element):
                if value := found.get(attribute):
                    found.set(attribute, served_url(value, self.source))


def title(path: Path) -> str:
    """A guide page's title: the text of its first heading."""
    found = headings(path.read_text())
    return found[0][1] if found else path.stem


def render(path: Path) -> tuple[str, str]:
    """A guide page's title (its first heading) and its HTML, with GitHub's heading ids."""
    text = path.read_text()
    slugger = Slugger()
    md = markdown.Markdown(
        extensions=["tables", "fenced_code", "toc"],
        extension_configs={"toc": {"slugify": lambda value, separator: slugger.slug(value)}},
    )
    # After the inline patterns (priority 20) have made the links.
    md.treeprocessors.register(ServedLinks(md, path), "served_links", 1)
    return title(path), md.convert(text)

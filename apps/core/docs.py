"""The guide (README.md and docs/*.md): headings' anchors as GitHub makes them, and links.

GitHub gives each heading an id: its text, lowercased, with everything but letters, digits,
marks, spaces, hyphens and underscores dropped, and each space turned into a hyphen; a
repeated id gets `-1`, `-2`, ... The link test and the pages that serve the guide both use
this, so an `#anchor` means the same on GitHub and here.
"""

import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

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

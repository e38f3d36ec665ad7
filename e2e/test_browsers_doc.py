"""
docs/browsers.md shows exactly the tables the engine tests assert (e2e/browsers.py): a cell
changed in one place and not the other fails here. No browser needed.
"""

import re

from django.conf import settings

from e2e.browsers import markdown

DOC = settings.BASE_DIR / "docs" / "browsers.md"
TABLES = re.compile(r"<!-- tables: start .*?-->\n(.*?)\n<!-- tables: end -->", re.DOTALL)


def test_the_doc_shows_the_expected_tables() -> None:
    found = TABLES.search(DOC.read_text())
    assert found, f"{DOC} has no <!-- tables: start --> ... <!-- tables: end --> block"
    assert found[1].strip() == markdown().strip(), "run `python -m e2e.browsers` and paste it"

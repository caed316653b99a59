"""The one Markdown renderer, and the budgets that keep a hostile body cheap.

Why not markdown-it-py any more: its link rule, at every `[`, scans for the
matching `]` up to the end of the paragraph (`parseLinkLabel`), so a
paragraph of n brackets costs O(n²) (900 KB of `[` took 28.7 s); its table
rule is quadratic too, and even ordinary prose costs ~3 µs a character in
pure Python, so no bound on label length kept a 100 KB hostile body under
1 s (measured: 2.8 s for 100 KB of `[` with labels capped at 1,000
characters). cmark-gfm (`cmarkgfm`, GitHub's C implementation, fuzzed for
exactly these inputs) is linear: 1 MB of `[` renders in ~0.2-0.7 s.

Markdown source past `MAX_MARKDOWN_CHARS` is refused unread, and the HTML
it renders to meets the same markup budgets as HTML given directly
(`publisher.domain.budgets`: 1 MB of `>` is a million nested quotes).

Raw HTML in Markdown is kept (`UNSAFE`, as before): the one sanitizer in
`publisher.html` removes what is not allowed, right after.
"""

from __future__ import annotations

import cmarkgfm
from cmarkgfm.cmark import Options

from publisher.domain.budgets import check_markup
from publisher.domain.errors import InputError

#: Markdown source longer than this is refused (a long feature is ~60,000).
MAX_MARKDOWN_CHARS = 250_000
EXTENSIONS = ["table", "strikethrough"]


def render(field: str, source: str) -> str:
    """HTML for the Markdown `source`, or `InputError` naming `field` past a budget."""
    if len(source) > MAX_MARKDOWN_CHARS:
        raise InputError(
            field,
            f"is {len(source):,} characters; the limit for Markdown is {MAX_MARKDOWN_CHARS:,}",
        )
    html: str = cmarkgfm.markdown_to_html_with_extensions(
        source, options=Options.CMARK_OPT_UNSAFE, extensions=EXTENSIONS
    )
    check_markup(field, html)
    return html

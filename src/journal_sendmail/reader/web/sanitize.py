"""A mail's HTML made inert before it reaches the sandboxed frame: an allow-list of
tags and attributes, through bleach (python3-bleach, bookworm and trixie).

Why bleach: it is the allow-list sanitizer packaged in both releases (nh3 is in
trixie only; lxml's Cleaner is a block-list its authors call unsafe, and left lxml
for a separate package in trixie), and it parses as a browser does (html5lib), so
what it lets through is what the browser sees.  The sandbox and the frame's CSP
stay behind it: a second wall, not the first.

Nothing that loads or connects is kept: no link (``rel=preconnect`` and
``dns-prefetch`` open connections that no CSP governs), iframe, frame, object,
embed, meta, base, form, img, style sheet or script, and no ``href`` (a click
would navigate the frame to the sender, a read receipt; no CSP can forbid that).
"""

from __future__ import annotations

import bleach  # type: ignore[import-untyped]
import html5lib  # type: ignore[import-untyped]

# Dropped with everything in them (bleach would keep their text: a style sheet or a
# script shown as words).
DROPPED = ("script", "style", "head", "title", "template", "noscript", "noembed", "noframes", "iframe",
           "frame", "frameset", "object", "embed", "applet", "svg", "math", "textarea", "select", "xmp",
           "plaintext", "form", "button", "audio", "video", "picture", "canvas")
TAGS = frozenset({
    "a", "abbr", "acronym", "address", "b", "bdi", "bdo", "big", "blockquote", "br", "caption", "center",
    "cite", "code", "col", "colgroup", "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption",
    "figure", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "ins", "kbd", "li", "mark", "ol", "p",
    "pre", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody",
    "td", "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
})
COMMON = ["title", "dir", "lang", "align", "valign", "width", "height", "bgcolor"]
ATTRIBUTES = {
    "*": COMMON,
    "font": [*COMMON, "color", "face", "size"],
    "table": [*COMMON, "border", "cellpadding", "cellspacing", "summary"],
    "td": [*COMMON, "colspan", "rowspan", "nowrap"],
    "th": [*COMMON, "colspan", "rowspan", "nowrap", "scope"],
    "col": [*COMMON, "span"], "colgroup": [*COMMON, "span"],
    "ol": [*COMMON, "start", "type"], "li": [*COMMON, "value"],
}


def clean_html(text: str) -> str:
    """The mail's HTML with only the allowed tags and attributes; the rest as text or gone.

    >>> clean_html('<link rel=preconnect href="http://x/"><p onclick="a()">hi <a href="http://x/">there</a>'
    ...            '<iframe src="http://x/"></iframe><script>alert(1)</script><style>p{}</style>')
    '<p>hi <a>there</a></p>'
    """
    doc = html5lib.parse(text, treebuilder="etree", namespaceHTMLElements=False)
    for parent in list(doc.iter()):
        previous = None
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.lower() in DROPPED:
                parent.remove(child)
                if child.tail:  # the text after a dropped element stays, where it was
                    if previous is None:
                        parent.text = (parent.text or "") + child.tail
                    else:
                        previous.tail = (previous.tail or "") + child.tail
            else:
                previous = child
    body = doc.find("body")
    inner = html5lib.serialize(body, tree="etree", omit_optional_tags=False) if body is not None else ""
    cleaned: str = bleach.clean(inner, tags=TAGS, attributes=ATTRIBUTES, protocols=[], strip=True,
                                strip_comments=True)
    return cleaned


"""The HTML sanitizer on its own: hostile markup in, nothing that runs, loads, connects or
navigates out (what the browser test shows for a few, here for many)."""

from __future__ import annotations

import re

import pytest

from journal_sendmail.reader.web.sanitize import clean_html

HOSTILE = {
    "script": "<script>alert(1)</script>",
    "script-in-svg": "<svg><script>alert(1)</script></svg>",
    "svg-onload": "<svg onload=alert(1)>",
    "math-mxss": "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "noscript-mxss": '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "comment-break": "<!--><img src=x onerror=alert(1)>-->",
    "img-onerror": "<img src=x onerror=alert(1)>",
    "link-preconnect": '<link rel="preconnect" href="http://evil.example/">',
    "link-stylesheet": '<link rel="stylesheet" href="http://evil.example/s.css">',
    "meta-refresh": '<meta http-equiv="refresh" content="0;url=http://evil.example/">',
    "base": '<base href="http://evil.example/">',
    "iframe": '<iframe src="http://evil.example/"></iframe>',
    "iframe-srcdoc": '<iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>',
    "frameset": '<frameset><frame src="http://evil.example/"></frameset>',
    "object": '<object data="http://evil.example/x.swf"></object>',
    "embed": '<embed src="http://evil.example/x.swf">',
    "form": '<form action="http://evil.example/"><input name=q><button>go</button></form>',
    "javascript-link": '<a href="javascript:alert(1)">x</a>',
    "data-link": '<a href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">x</a>',
    "entity-javascript": '<a href="&#106;avascript:alert(1)">x</a>',
    "style-url": '<p style="background:url(http://evil.example/p.png)">x</p>',
    "style-element": "<style>@import url(http://evil.example/s.css); body{background:url(http://evil.example/b)}</style>",
    "background-attr": '<table background="http://evil.example/b.png"><tr><td>x</td></tr></table>',
    "video-poster": '<video poster="http://evil.example/p.png"></video>',
    "picture-source": '<picture><source srcset="http://evil.example/p.png"></picture>',
    "audio": '<audio src="http://evil.example/a.mp3" autoplay></audio>',
    "input-image": '<input type="image" src="http://evil.example/i.png">',
    "area": '<map><area href="http://evil.example/" shape=rect coords=0,0,9,9></map>',
    "formaction": '<button formaction="http://evil.example/">x</button>',
    "template": "<template><script>alert(1)</script></template>",
    "uppercase": "<SCRIPT>alert(1)</SCRIPT><IMG SRC=x ONERROR=alert(1)>",
    "unclosed": "<img src=x onerror=alert(1)//",
    "nested-tags": "<scr<script>ipt>alert(1)</scr</script>ipt>",
}
FORBIDDEN = re.compile(r"<\s*(script|style|link|meta|base|iframe|frame|frameset|object|embed|form|input|button|img|"
                       r"svg|math|video|audio|picture|source|area|template)\b|\son\w+\s*=|\b(href|src|srcset|srcdoc|"
                       r"action|formaction|poster|background|style|data)\s*=|evil\.example", re.I)


@pytest.mark.parametrize("name", list(HOSTILE), ids=list(HOSTILE))
def test_nothing_that_runs_loads_or_leaves(name: str) -> None:
    out = clean_html(f"<html><head></head><body><p>before</p>{HOSTILE[name]}<p>after</p></body></html>")
    assert not FORBIDDEN.search(out), out
    assert "<p>before</p>" in out


def test_mail_formatting_is_kept() -> None:
    html = ('<table border="1" cellpadding="2"><tr><th colspan="2">Disk</th></tr><tr><td>sda</td>'
            '<td><b>98%</b> <font color="red">full</font></td></tr></table><p>see <a href="https://x.example/">'
            "the graph</a></p><ul><li>one</li></ul><pre>  aligned</pre>")
    out = clean_html(html)
    for kept in ('<table border="1" cellpadding="2">', '<th colspan="2">', "<b>98%</b>", '<font color="red">',
                 "<a>the graph</a>", "<li>one</li>", "<pre>  aligned</pre>"):
        assert kept in out, (kept, out)


def test_text_after_a_dropped_element_stays_in_place() -> None:
    assert clean_html("<p>a<script>x</script>b<style>y</style>c</p>") == "<p>abc</p>"
    assert clean_html("<div><script>x</script>tail</div>") == "<div>tail</div>"

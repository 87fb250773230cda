"""User text as text: every value that comes from a row, a label, a note, a name or a group
reaches Markdown or HTML through these functions, so that it shows literally and never becomes
markup (no form, no style, no image that loads from another host, no list or heading made of a
response's own lines).

`md_text` is for a value inside our own Markdown (a table cell, a line); `verbatim_html` keeps a
response exactly as written (whitespace, indentation, numbered lines) in a `<pre>` block that a
Markdown renderer passes through untouched; `md_plain` reads `md_text`'s output back as plain text
(the HTML report turns the card's Markdown into HTML and escapes it once, itself).
"""

from __future__ import annotations

import html
import re
from typing import Any

MD_PUNCTUATION = "\\`*_{}[]()#!|~$:"
"""Markdown's ASCII punctuation that can start or end inline markup anywhere; each gets a backslash."""
_BLOCK_START = re.compile(r"^(\s*)([0-9]{1,9})([.)])|^(\s*)([-+=])")
"""A list item or a setext underline at the start of a value: its mark gets a backslash."""
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def md_text(value: Any, limit: int | None = None, newline: str = " ") -> str:
    """`value` as Markdown that renders as exactly its text: punctuation backslash-escaped, `<`, `>`
    and `&` as entities, control characters dropped, line breaks replaced by `newline` (a table
    cell or a list item holds one line), cut to `limit` characters first when given."""
    text = _CONTROL.sub("", "" if value is None else str(value))
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    out = "".join("\\" + c if c in MD_PUNCTUATION else c for c in text)
    out = _BLOCK_START.sub(lambda m: f"{m[1]}{m[2]}\\{m[3]}" if m[2] else f"{m[4]}\\{m[5]}", out)
    out = out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"\r\n|\r|\n", lambda _: newline, out)


def md_plain(markdown: str) -> str:
    """The text that `md_text` escaped, back as plain text (backslash escapes and entities undone)."""
    return html.unescape(_ESCAPED.sub(r"\1", markdown))


def verbatim_html(value: Any) -> str:
    """`value` shown exactly as written, whitespace and indentation kept, as an escaped `<pre>` block
    (a Markdown renderer passes an HTML block that starts with `<pre` through up to `</pre>`, blank
    lines included; the escaped text holds no `<` of its own)."""
    text = _CONTROL.sub("", "" if value is None else str(value))
    body = html.escape(text, quote=False)
    return f'<pre class="raft-verbatim" style="white-space: pre-wrap; overflow-wrap: anywhere;">{body}</pre>'

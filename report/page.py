"""``index.html``: one self-contained page (figures inlined as data URIs, no scripts, no network)."""
from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .tables import cell

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; vertical-align: top; }
th { background: #f0f0f0; } td.text, th.text { text-align: left; }
tr.average td { font-weight: bold; background: #fafafa; } tr.model td { background: #eaf4ea; font-weight: bold; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption, .note { color: #555; font-size: 0.9em; } .facts td { text-align: left; }
.warning { color: #a00000; font-weight: bold; }
"""


class Page:
    """Builds the page section by section."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, cls: str = "") -> None:
        attr = f' class="{cls}"' if cls else ""
        self.parts.append(f"<p{attr}>{html.escape(text)}</p>")

    def facts(self, pairs: Sequence[tuple[str, Any]]) -> None:
        rows = "".join(f"<tr><th class='text'>{html.escape(k)}</th><td>{html.escape(cell(v))}</td></tr>"
                       for k, v in pairs)
        self.parts.append(f"<table class='facts'>{rows}</table>")

    def table(self, rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]],
              text_columns: Sequence[str] = (), row_class: dict[str, str] | None = None,
              key: str = "", digits: int = 4) -> None:
        """``columns`` are (header, key); rows whose ``key`` value is in ``row_class`` get that class."""
        align = {k: "text" if k in text_columns else "" for _, k in columns}
        head = "".join(f"<th class='{align[k]}'>{html.escape(h)}</th>" for h, k in columns)
        body = []
        for r in rows:
            cls = (row_class or {}).get(str(r.get(key)), "")
            cells = "".join(f"<td class='{align[k]}'>{html.escape(cell(r.get(k), digits))}</td>" for _, k in columns)
            body.append(f"<tr class='{cls}'>{cells}</tr>")
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def figure(self, png: Path, caption: str) -> None:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        self.parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                          f"<figcaption>{html.escape(caption)} ({html.escape(png.name)})</figcaption></figure>")

    def render(self) -> str:
        return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head><body>"
                + "\n".join(self.parts) + "</body></html>\n")

"""One self-contained HTML page: plotly.js inline (from the plotly package), figures as JSON,
images as data URIs, so the file opens anywhere without network access."""

from __future__ import annotations

import base64
import html
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from dsd import __version__
from dsd.errors import DsdError

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0;
       background: #f6f7f9; color: #1d2330; }
header { background: #1d2330; color: white; padding: 18px 32px; }
header h1 { margin: 0; font-size: 22px; font-weight: 600; }
header p { margin: 4px 0 0; color: #b8c0d0; font-size: 13px; }
main { padding: 8px 32px 40px; max-width: 1500px; margin: auto; }
h2 { font-size: 17px; margin: 28px 0 10px; border-bottom: 1px solid #dde1e8;
     padding-bottom: 6px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr));
         gap: 12px; }
.card { background: white; border-radius: 8px; padding: 12px 14px;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.card .label { font-size: 12px; color: #5d6678; text-transform: uppercase;
               letter-spacing: .03em; }
.card .value { font-size: 22px; font-weight: 600; margin-top: 4px; }
.card .note { font-size: 12px; color: #5d6678; margin-top: 2px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr));
          gap: 14px; }
.chart { background: white; border-radius: 8px; box-shadow: 0 1px 2px rgba(0,0,0,.08);
         min-height: 340px; }
.note-box { background: #fff8e1; border-left: 4px solid #f0b400; padding: 10px 14px;
            border-radius: 4px; font-size: 13px; margin: 8px 0; }
table { border-collapse: collapse; background: white; font-size: 13px;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
th, td { padding: 5px 10px; border-bottom: 1px solid #eceef2; text-align: right; }
th { background: #eef1f5; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
.table-wrap { overflow: auto; max-height: 520px; }
.figures { display: grid; grid-template-columns: 1fr; gap: 14px; }
figure { margin: 0; background: white; border-radius: 8px; padding: 8px;
         box-shadow: 0 1px 2px rgba(0,0,0,.08); }
figure img { max-width: 100%; }
figcaption { font-size: 12px; color: #5d6678; }
details { margin-top: 10px; } pre { background: white; padding: 12px; overflow: auto; }
"""

CONFIG = {"displaylogo": False, "responsive": True}


class Page:
    """Sections of cards, charts, tables and images, rendered by `html()`."""

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self._body: list[str] = []
        self._figures: list[dict[str, Any]] = []
        self._open_grid: str | None = None

    @property
    def charts(self) -> int:
        return len(self._figures)

    def section(self, heading: str) -> None:
        self._close()
        self._body.append(f"<h2>{html.escape(heading)}</h2>")

    def cards(self, cards: list[tuple[str, str, str]]) -> None:
        """(label, value, note) per card."""
        self._close()
        items = "".join(
            f'<div class="card"><div class="label">{html.escape(label)}</div>'
            f'<div class="value">{html.escape(value)}</div>'
            + (f'<div class="note">{html.escape(note)}</div>' if note else "") + "</div>"
            for label, value, note in cards)
        self._body.append(f'<div class="cards">{items}</div>')

    def chart(self, figure: dict[str, Any] | None, missing: str = "") -> None:
        """A chart in the current grid; a note instead when there is nothing to draw."""
        if figure is None:
            if missing:
                self.note(missing)
            return
        self._grid("charts")
        ident = f"chart-{len(self._figures)}"
        self._figures.append({"id": ident, **figure})
        self._body.append(f'<div class="chart" id="{ident}"></div>')

    def note(self, text: str) -> None:
        self._close()
        self._body.append(f'<div class="note-box">{html.escape(text)}</div>')

    def table(self, columns: list[str], rows: list[list[Any]]) -> None:
        """Rows of values; numbers get one format per column (as `dsd experiment` prints)."""
        from dsd.experiments.registry import column_format

        self._close()
        formats = [column_format([row[i] for row in rows]) for i in range(len(columns))]
        head = "".join(f'<th class="{_align(rows, i)}">{html.escape(c)}</th>'
                       for i, c in enumerate(columns))
        body = "".join("<tr>" + "".join(
            f'<td class="{_align(rows, i)}">{html.escape(formats[i](v))}</td>'
            for i, v in enumerate(row)) + "</tr>" for row in rows)
        self._body.append(f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
                          f"<tbody>{body}</tbody></table></div>")

    def image(self, path: Path, caption: str) -> None:
        self._grid("figures")
        data = base64.b64encode(path.read_bytes()).decode()
        self._body.append(f'<figure><img alt="{html.escape(caption)}" '
                          f'src="data:image/png;base64,{data}">'
                          f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def details(self, summary: str, text: str) -> None:
        self._close()
        self._body.append(f"<details><summary>{html.escape(summary)}</summary>"
                          f"<pre>{html.escape(text)}</pre></details>")

    def _grid(self, kind: str) -> None:
        if self._open_grid != kind:
            self._close()
            self._body.append(f'<div class="{kind}">')
            self._open_grid = kind

    def _close(self) -> None:
        if self._open_grid is not None:
            self._body.append("</div>")
            self._open_grid = None

    def html(self) -> str:
        self._close()
        figures = json.dumps(_jsonable(self._figures), separators=(",", ":"),
                             ensure_ascii=False)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{STYLE}</style><script>{plotly_js()}</script></head><body>"
            f"<header><h1>{html.escape(self.title)}</h1>"
            f"<p>{html.escape(self.subtitle)}</p></header><main>{''.join(self._body)}</main>"
            f"<script>const FIGURES = {_script_safe(figures)};\n"
            f"const CONFIG = {json.dumps(CONFIG)};\n"
            "for (const f of FIGURES) { Plotly.newPlot(f.id, f.data, f.layout, CONFIG); }"
            "</script></body></html>\n")


def plotly_js() -> str:
    """plotly.js as the plotly package ships it (MIT licence, kept in the file's header)."""
    try:
        return resources.files("plotly").joinpath("package_data", "plotly.min.js").read_text(
            encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        raise DsdError("the report needs plotly.js from the plotly package: "
                       "pip install plotly") from None


def footer_note() -> str:
    return f"dsd {__version__}"


def _script_safe(text: str) -> str:
    return text.replace("</", "<\\/")  # no "</script>" inside the inline script


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _align(rows: list[list[Any]], i: int) -> str:
    return "text" if rows and isinstance(rows[0][i], str) else "num"

"""The report as one self-contained HTML page: inline CSS and SVG, no scripts or external files."""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["render_html"]

_WIDTH = 640
_HEIGHT = 200
_MARGIN = 64

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 0.95em; }
.ready { color: #176117; } .not-ready { color: #a11; }
svg text { font-size: 11px; fill: #444; }
"""


def render_html(data: dict[str, Any]) -> str:
    """Return the report from ``LogReport.to_dict()`` as an HTML document."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>shadowfn report</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<h1>shadowfn report</h1>",
        _summary(data),
        _functions_table(data["functions"]),
    ]
    for function in data["functions"]:
        parts.append(_function_section(function))
    parts.append(_malformed_section(data["malformed"]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4%}"


def _summary(data: dict[str, Any]) -> str:
    files = ", ".join(f"<code>{_escape(name)}</code>" for name in data["files"])
    time_range = data["time_range"]
    period = "" if time_range is None else f" from {_escape(time_range[0])} to {_escape(time_range[1])}"
    return (
        f'<p id="summary">{data["lines"]} lines in {files}{period}: {data["events"]} shadowfn events, '
        f"{data['other_lines']} other events, {data['malformed']['count']} malformed lines.</p>"
    )


def _functions_table(functions: list[dict[str, Any]]) -> str:
    header = (
        "<tr><th>function</th><th>sampled</th><th>matched</th><th>diverged</th><th>timeouts</th>"
        "<th>shed</th><th>errors</th><th>divergence rate</th><th>95% CI</th><th>distinct keys</th>"
        "<th>ready</th></tr>"
    )
    rows = []
    for f in functions:
        low, high = f["interval"]
        readiness = f["readiness"]
        if readiness is None:
            ready = "<td>-</td>"
        elif readiness["ready"]:
            ready = '<td class="ready">yes</td>'
        else:
            ready = '<td class="not-ready">no</td>'
        approx = "" if f["distinct_keys_exact"] else "~"
        rows.append(
            f'<tr><td><a href="#{_anchor(f["function"])}"><code>{_escape(f["function"])}</code></a></td>'
            + "".join(
                f'<td class="number">{f[name]}</td>'
                for name in ("sampled", "matched", "diverged", "timeouts", "shed")
            )
            + f'<td class="number">{f["compare_failed"] + f["internal_errors"]}</td>'
            + f'<td class="number">{_percent(f["divergence_rate"])}</td>'
            + f'<td class="number">{_percent(low)} to {_percent(high)}</td>'
            + f'<td class="number">{approx}{f["distinct_keys"]}</td>'
            + ready
            + "</tr>"
        )
    return f'<table id="functions">{header}{"".join(rows)}</table>'


def _anchor(name: str) -> str:
    return "fn-" + "".join(c if c.isalnum() else "-" for c in name)


def _function_section(function: dict[str, Any]) -> str:
    name = _escape(function["function"])
    parts = [f'<section id="{_anchor(function["function"])}"><h2><code>{name}</code></h2>']
    if not function["matches_logged"]:
        parts.append("<p>No <code>shadow.match</code> events: log at debug level to count matches.</p>")
    readiness = function["readiness"]
    if readiness is not None and readiness["unmet"]:
        reasons = "".join(f"<li>{_escape(reason)}</li>" for reason in readiness["unmet"])
        parts.append(f'<p class="not-ready">Not ready:</p><ul class="not-ready">{reasons}</ul>')
    elif readiness is not None:
        parts.append('<p class="ready">Ready: both thresholds are met.</p>')
    parts.append("<h3>Divergence rate over time</h3>")
    parts.append(_plot(function["timeline"]))
    parts.append("<h3>Diverging paths, worst first</h3>")
    if function["paths"]:
        rows = []
        for path in function["paths"]:
            examples = "<br>".join(
                f"<code>{_escape(e['key'])}</code>: <code>{_escape(_json(e['primary']))}</code> &rarr; "
                f"<code>{_escape(_json(e['candidate']))}</code>"
                for e in path["examples"]
            )
            kinds = ", ".join(f"{_escape(kind)} {count}" for kind, count in path["kinds"].items())
            share = "" if path["share"] is None else f"{path['share']:.1%}"
            rows.append(
                f'<tr><td><code>{_escape(path["path"])}</code></td><td class="number">{path["count"]}</td>'
                f'<td class="number">{share}</td><td>{kinds}</td><td>{examples}</td></tr>'
            )
        parts.append(
            '<table class="paths"><tr><th>path</th><th>divergences</th><th>share</th><th>kinds</th>'
            f"<th>examples (key: primary &rarr; candidate)</th></tr>{''.join(rows)}</table>"
        )
    else:
        parts.append("<p>No diverging paths.</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _plot(points: list[dict[str, Any]]) -> str:
    """Return an SVG line chart of the divergence rate per time bucket."""
    rated = [p for p in points if p["rate"] is not None]
    if not rated:
        return "<p>No timestamped comparisons to plot.</p>"
    top = max(max(p["rate"] for p in rated), 0.001)
    inner_width = _WIDTH - 2 * _MARGIN
    inner_height = _HEIGHT - 2 * _MARGIN
    first, last = rated[0]["start_unix"], rated[-1]["start_unix"]

    def x(i: int) -> float:
        if last == first:
            return _MARGIN + inner_width / 2
        return float(_MARGIN + inner_width * (rated[i]["start_unix"] - first) / (last - first))

    def y(rate: float) -> float:
        return float(_MARGIN + inner_height * (1 - rate / top))

    coordinates = " ".join(f"{x(i):.1f},{y(p['rate']):.1f}" for i, p in enumerate(rated))
    dots = "".join(
        f'<circle cx="{x(i):.1f}" cy="{y(p["rate"]):.1f}" r="2.5" fill="#c0392b">'
        f"<title>{_escape(p['start'])}: {p['diverged']}/{p['compared']} ({_percent(p['rate'])})</title></circle>"
        for i, p in enumerate(rated)
    )
    bottom = _HEIGHT - _MARGIN
    return (
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="divergence rate over time">'
        f'<line x1="{_MARGIN}" y1="{bottom}" x2="{_WIDTH - _MARGIN}" y2="{bottom}" stroke="#888"/>'
        f'<line x1="{_MARGIN}" y1="{_MARGIN}" x2="{_MARGIN}" y2="{bottom}" stroke="#888"/>'
        f'<text x="{_MARGIN - 6}" y="{_MARGIN + 4}" text-anchor="end">{_percent(top)}</text>'
        f'<text x="{_MARGIN - 6}" y="{bottom + 4}" text-anchor="end">0%</text>'
        f'<text x="{_MARGIN}" y="{_HEIGHT - 16}">{_escape(rated[0]["start"])}</text>'
        f'<text x="{_WIDTH - _MARGIN}" y="{_HEIGHT - 16}" text-anchor="end">{_escape(rated[-1]["start"])}</text>'
        f'<text x="{_WIDTH / 2}" y="{_HEIGHT - 2}" text-anchor="middle">'
        f"bucket {rated[0]['seconds']:g} s</text>"
        f'<polyline points="{coordinates}" fill="none" stroke="#c0392b" stroke-width="1.5"/>'
        f"{dots}</svg>"
    )


def _malformed_section(malformed: dict[str, Any]) -> str:
    if not malformed["count"]:
        return '<p id="malformed">No malformed lines.</p>'
    rows = "".join(
        f'<tr><td><code>{_escape(m["file"])}</code></td><td class="number">{m["line"]}</td>'
        f"<td>{_escape(m['reason'])}</td></tr>"
        for m in malformed["lines"]
    )
    return (
        f"<h2>Malformed lines</h2><p>{malformed['count']} malformed lines, "
        f"the first {len(malformed['lines'])} listed.</p>"
        f'<table id="malformed"><tr><th>file</th><th>line</th><th>reason</th></tr>{rows}</table>'
    )

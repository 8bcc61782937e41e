"""The API's docs page: rendered on the server from the OpenAPI document, no scripts to fetch."""

from __future__ import annotations

import html
import json
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ccc;margin-top:2rem}
.op{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}
.m{font-weight:bold;display:inline-block;width:4.5rem}
.get{color:#0a6}.post{color:#06c}
code,pre{background:#f5f5f5;padding:.1rem .3rem}pre{padding:.5rem;overflow:auto}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
"""


def _schema_name(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f'<a href="#schema-{html.escape(name)}">{html.escape(name)}</a>'
    return html.escape(str(schema.get("type", json.dumps(schema)[:60])))


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    out = [
        f'<div class="op"><span class="m {method}">{method.upper()}</span>'
        f"<code>{html.escape(path)}</code> {html.escape(op.get('summary', ''))}",
    ]
    if op.get("description"):
        out.append(f"<p>{html.escape(op['description'])}</p>")
    params = op.get("parameters", [])
    if params:
        out.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th></tr>")
        for p in params:
            out.append(
                f"<tr><td>{html.escape(p['name'])}</td><td>{html.escape(p['in'])}</td>"
                f"<td>{_schema_name(p.get('schema'))}</td><td>{p.get('required', False)}</td></tr>"
            )
        out.append("</table>")
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        out.append(f"<p>Body: {_schema_name(body.get('schema'))}</p>")
    answers = []
    for status, answer in op.get("responses", {}).items():
        content = answer.get("content", {}).get("application/json", {})
        answers.append(f"<li>{status}: {_schema_name(content.get('schema'))}</li>")
    out.append(f"<ul>{''.join(answers)}</ul></div>")
    return "".join(out)


def render(document: dict[str, Any]) -> str:
    """The whole page for an OpenAPI document (as a dict)."""
    info = document.get("info", {})
    title = html.escape(info.get("title", "API"))
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}"
        f"</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(info.get('title', 'API'))} {html.escape(info.get('version', ''))}</h1>",
        f"<p>{html.escape(info.get('description', ''))}</p>",
        '<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI '
        f"{html.escape(document.get('openapi', ''))}).</p>",
    ]
    by_tag: dict[str, list[str]] = {}
    for path, methods in document.get("paths", {}).items():
        for method, op in methods.items():
            tag = (op.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append(_operation(path, method, op))
    for tag, operations in by_tag.items():
        parts.append(f"<h2>{html.escape(tag)}</h2>{''.join(operations)}")
    parts.append("<h2>Schemas</h2>")
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        parts.append(
            f'<h3 id="schema-{html.escape(name)}">{html.escape(name)}</h3>'
            f"<pre>{html.escape(json.dumps(schema, indent=2))}</pre>"
        )
    parts.append("</body></html>")
    return "".join(parts)

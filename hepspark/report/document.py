"""A small report document written both as Markdown and as self-contained HTML.

Sections hold paragraphs (a paragraph of lines starting with ``- `` is a bullet list), an
optional image (a path relative to the report) and an optional table, in that order, so the
numbers sit under the plot they belong to.

>>> doc = Document("Scaling", [Section("Epoch time", ["Measured."], "plots/t.png",
...                                     Table(["N", "s"], [["1", "3.2"]]))])
>>> print(doc.to_markdown().splitlines()[0])
# Scaling
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    image: str | None = None
    table: Table | None = None
    level: int = 2


@dataclass
class Document:
    title: str
    sections: list[Section]

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for s in self.sections:
            out += [f"{'#' * s.level} {s.title}", ""]
            for paragraph in s.paragraphs:
                out += [paragraph, ""]
            if s.image:
                out += [f"![{s.title}]({s.image})", ""]
            if s.table and s.table.rows:
                out.append("| " + " | ".join(s.table.headers) + " |")
                out.append("|" + "|".join("---" for _ in s.table.headers) + "|")
                out += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |"
                        for row in s.table.rows]
                out.append("")
        return "\n".join(out)

    def to_html(self) -> str:
        e = html.escape
        body = [f"<h1>{e(self.title)}</h1>"]
        for s in self.sections:
            body.append(f"<h{s.level}>{e(s.title)}</h{s.level}>")
            for paragraph in s.paragraphs:
                lines = paragraph.splitlines()
                if lines and all(line.startswith("- ") for line in lines):
                    body.append("<ul>" + "".join(f"<li>{e(line[2:])}</li>" for line in lines)
                                + "</ul>")
                else:
                    body.append(f"<p>{e(paragraph)}</p>")
            if s.image:
                body.append(f'<p><img src="{e(s.image)}" alt="{e(s.title)}"></p>')
            if s.table and s.table.rows:
                head = "".join(f"<th>{e(h)}</th>" for h in s.table.headers)
                rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                               for row in s.table.rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        return (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{e(self.title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n"
        )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;"
    "color:#222}table{border-collapse:collapse;margin:1em 0;font-size:.9em}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
    "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
    "img{max-width:100%}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}"
)

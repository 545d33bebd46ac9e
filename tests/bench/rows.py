"""One row of the benchmark table, and the Markdown table BENCHMARKS.md keeps."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    value: float
    unit: str
    goal: str = ""
    met: bool | None = None
    note: str = ""
    command: str = ""


def format_table(rows: list[Row]) -> str:
    lines = [
        "| benchmark | figure | goal | met | note | command |",
        "|---|---:|---|---|---|---|",
    ]
    for row in rows:
        met = "" if row.met is None else ("yes" if row.met else "NO")
        value = f"{row.value:,.0f}" if row.value >= 100 else f"{row.value:,.3g}"
        figure = f"{value} {row.unit}"
        lines.append(
            f"| {row.name} | {figure} | {row.goal} | {met} | {row.note} | `{row.command}` |"
        )
    return "\n".join(lines)

"""The README renders and reads in order: its Markdown tables parse as GitHub renders them (a broken
row would show as raw `|` text), every product setting of cdk.json is in a settings table, and the
sections come in the order a newcomer needs them.

markdown-it is not a dependency, so tables are read by the rule GitHub Flavored Markdown states: a
header row, a delimiter row with as many cells, then the rows that follow without a blank line.
This parser is stricter in one way: a body row must have the header's number of cells (GitHub
would pad or cut it, hiding a lost or extra `|`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
DELIMITER_CELL = re.compile(r"^\s*:?-+:?\s*$")


@dataclass(frozen=True)
class Table:
    line: int  # 1-based, the header row's
    header: list[str]
    rows: list[list[str]]


def _cells(line: str) -> list[str]:
    """A row's cells: split at every `|` not escaped (a `|` inside backticks splits too, as on GitHub)."""
    text = line.strip()
    text = text.removeprefix("|")
    if text.endswith("|") and not text.endswith("\\|"):
        text = text[:-1]
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", text)]


def _is_delimiter(line: str, columns: int) -> bool:
    cells = _cells(line)
    return "-" in line and len(cells) == columns and all(DELIMITER_CELL.match(c) for c in cells)


def _outside_fences(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line that is not inside a fenced code block."""
    kept: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.split("\n"), start=1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
            fence = None
        elif fence is None:
            kept.append((number, line))
    return kept


def parse(text: str) -> tuple[list[Table], list[tuple[int, str]]]:
    """The tables, and the lines outside fences and tables that start with `|` (raw text on GitHub)."""
    lines = _outside_fences(text)
    tables: list[Table] = []
    stray: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        number, line = lines[i]
        header = _cells(line) if "|" in line else []
        consecutive = i + 1 < len(lines) and lines[i + 1][0] == number + 1
        if header and consecutive and _is_delimiter(lines[i + 1][1], len(header)):
            rows: list[list[str]] = []
            i += 2
            while i < len(lines) and lines[i][0] == number + 2 + len(rows) and lines[i][1].strip():
                if len(_cells(lines[i][1])) != len(header):
                    break
                rows.append(_cells(lines[i][1]))
                i += 1
            tables.append(Table(number, header, rows))
            continue
        if line.lstrip().startswith("|"):
            stray.append((number, line))
        i += 1
    return tables, stray


def _product_settings() -> list[str]:
    """cdk.json's context keys that are this app's settings (CDK's own feature flags start with @)."""
    context = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    return [key for key in context if not key.startswith("@")]


def test_no_line_outside_code_starts_with_a_pipe_without_belonging_to_a_table() -> None:
    _, stray = parse(README)
    assert stray == []


def _settings_tables() -> list[Table]:
    tables, _ = parse(README)
    return [t for t in tables if t.header[0] == "context key"]


def test_every_product_setting_of_cdk_json_is_in_a_settings_table_cell() -> None:
    cells = {cell for table in _settings_tables() for row in table.rows for cell in row}
    documented = set(re.findall(r"`([^`]+)`", " ".join(cells)))
    assert [key for key in _product_settings() if key not in documented] == []


def test_each_settings_namespace_has_its_own_table() -> None:
    """One table per namespace, so a section never runs on into the next one's rows."""
    namespaces = [{row[0].split(":")[0].strip("`") for row in t.rows} for t in _settings_tables()]
    owners = [n for n in namespaces if len(n) == 1]
    assert sorted(next(iter(n)) for n in owners) == ["bulkUpload", "capture", "currents", "import"]


def test_sections_come_in_reading_order() -> None:
    """What it is, the two commands, the sandbox, deploying, operating, settings, internals,
    benchmarks, security: other sections may come between, never out of this order."""
    headings = [line[3:] for _, line in _outside_fences(README) if line.startswith("## ")]
    order = [
        "How it fits together",
        "Two commands",
        "Try each pipeline in the sandbox",
        "Deploy to AWS",
        "Operate",
        "Settings",
        "How it works",
        "Benchmarks",
        "Security",
    ]
    assert [h for h in headings if h in order] == order


def test_the_two_commands_are_make_demo_and_make_test() -> None:
    section = README[README.index("## Two commands") :]
    block = section[section.index("```") : section.index("```", section.index("```") + 3)]
    commands = [line.split("#")[0].strip() for line in block.split("\n")[1:] if line.strip()]
    assert commands == ["make demo", "make test"]


def test_the_parser_finds_a_table_cut_by_a_blank_line() -> None:
    broken = "| key | value |\n|---|---|\n| `a:b` | 1 |\n\n| `a:c` | 2 |\n```\n| code |\n```\n"
    tables, stray = parse(broken)
    assert [t.rows for t in tables] == [[["`a:b`", "1"]]]
    assert stray == [(5, "| `a:c` | 2 |")]


def test_the_parser_refuses_a_row_with_a_lost_pipe() -> None:
    tables, stray = parse("| a | b |\n|---|---|\n| 1 | 2 |\n| 3 |\n")
    assert [t.rows for t in tables] == [[["1", "2"]]]
    assert stray == [(4, "| 3 |")]

"""The README's event table is the contract a log shipper reads: it must list every event in
ops/events.schema.json, and nothing else."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.helpers import SCHEMA_PATH

README = Path(__file__).resolve().parents[2] / "README.md"


def schema_events() -> set[str]:
    schema = json.loads(SCHEMA_PATH.read_text())
    return {rule["if"]["properties"]["event"]["const"] for rule in schema["allOf"]}


def readme_events() -> list[str]:
    text = README.read_text()
    section = text[text.index("\n## Events\n") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"^\| `([a-z_]+\.[a-z_.]+)` \|", section, re.M)


def test_the_readme_event_table_lists_every_event_of_the_schema_once_and_no_other():
    listed = readme_events()
    assert len(listed) == len(set(listed)), "an event is listed twice"
    assert set(listed) - schema_events() == set(), "in the README, not in the schema"
    assert schema_events() - set(listed) == set(), "in the schema, not in the README"


def test_the_readme_event_table_gives_each_event_the_fields_the_schema_requires():
    schema = json.loads(SCHEMA_PATH.read_text())
    common = set(schema["required"])
    text = README.read_text()
    for rule in schema["allOf"]:
        name = rule["if"]["properties"]["event"]["const"]
        row = re.search(rf"^\| `{re.escape(name)}` \|[^|]*\|([^|]*)\|$", text, re.M)
        assert row, name
        for required in set(rule["then"].get("required", [])) - common:
            assert f"`{required}`" in row.group(1), f"{name}: {required} not in the README"

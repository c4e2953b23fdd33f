"""docs/architecture.md stays true: every package and module it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
# A box's first line names a package and, after a colon, modules or subpackages in it.
_BOX = re.compile(r'\["([^"]+)"\]|\[\("([^"]+)"\)\]')
_NAMED = re.compile(r"^((?:bot|handlers|storage)[\w/]*)(?::\s*(.+))?$")
_PATH = re.compile(r"`((?:bot|handlers|storage|tests|scripts|docs)/[\w/.<>-]*)`")


def _exists(path: str) -> bool:
    target = ROOT / path.rstrip("/")
    return target.exists() or target.with_suffix(".py").exists()


def diagram() -> str:
    """The Mermaid block of the document."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"```mermaid\n(.*?)```", text, re.DOTALL)
    assert match, "docs/architecture.md has no mermaid diagram"
    return match.group(1)


def named_in_diagram(block: str) -> list[str]:
    """Every path a box of the diagram names."""
    found: list[str] = []
    for box in _BOX.finditer(block):
        label = (box.group(1) or box.group(2)).split("<br/>")[0]
        named = _NAMED.match(label)
        if not named:
            continue
        base, parts = named.groups()
        found += [f"{base}/{part.strip()}" for part in parts.split(",")] if parts else [base]
    return found


def test_every_box_of_the_diagram_names_what_exists() -> None:
    named = named_in_diagram(diagram())
    assert "bot/jobs/service" in named and "handlers/images" in named
    assert [path for path in named if not _exists(path)] == []


def test_the_diagram_check_sees_a_missing_module() -> None:
    assert named_in_diagram('a["bot/jobs: nowhere<br/>x"]') == ["bot/jobs/nowhere"]
    assert not _exists("bot/jobs/nowhere")


def test_every_path_in_the_text_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    paths = [p for p in _PATH.findall(text) if "<" not in p]
    assert len(paths) > 20
    assert [path for path in paths if not _exists(path)] == []


def test_every_bot_package_is_in_the_layer_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    packages = sorted(p.parent.name for p in (ROOT / "bot").glob("*/__init__.py"))
    assert [name for name in packages if f"`bot/{name}/`" not in text] == []


def test_the_diagram_is_one_mermaid_flowchart_with_quoted_labels() -> None:
    block = diagram()
    assert block.lstrip().startswith("flowchart ")
    # Unquoted labels with parentheses or commas break GitHub's renderer.
    for line in block.splitlines()[1:]:
        for label in re.findall(r"\w\[([^\]]*)\]", line):
            assert label.startswith(('"', '("')), line

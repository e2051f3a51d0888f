"""Every Python code block of the user guide runs (in order, sharing one namespace per page)."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ["user_guide.md"]


def _blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


@pytest.mark.parametrize("name", PAGES)
def test_guide_code_blocks_run(name, capsys):
    blocks = _blocks(DOCS / name)
    assert blocks, f"{name} has no python blocks"
    namespace: dict = {"__name__": "__guide__"}
    for index, block in enumerate(blocks):
        try:
            exec(compile(block, f"{name}[block {index}]", "exec"), namespace)
        except Exception as error:  # pragma: no cover - the message is the point
            raise AssertionError(f"{name} block {index} failed: {error!r}\n{block}") from error
    assert "rows must sum to 1" in capsys.readouterr().out

"""Every Python code block of the documentation pages runs (in order, sharing one namespace per page)."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
# page -> strings its blocks must print (evidence that the page's points were actually made)
PAGES = {
    "user_guide.md": ("rows must sum to 1",  # the bad-transitions example raises with the field's name
                      "learned (3, 2, 2) (5, 3, 2) (5, 3, 2)",
                      "ma-irl from a recording: 3 iterations"),  # learned reward tables and policies come out
    "simulators.md": (
        "seed 2: match: 6 steps, 2 agents",  # the corridor's JAX port agrees with its PettingZoo twin
        "MISMATCH (step 2, agent 'robot', reward",  # a port missing r_ld is caught where it goes wrong
        "mpe2 simple_adversary: match: 10 steps, 3 agents",  # gsiirl's MPE game agrees with mpe2
        "(33,) (33,)",  # an MLP expert model: θe and μ_e(θe) have the model's 8 · (2 + 2) + 1 parameters
    ),
}


def _blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_guide_code_blocks_run(name, capsys):
    blocks = _blocks(DOCS / name)
    assert blocks, f"{name} has no python blocks"
    namespace: dict = {"__name__": "__guide__"}
    for index, block in enumerate(blocks):
        try:
            exec(compile(block, f"{name}[block {index}]", "exec"), namespace)
        except Exception as error:  # pragma: no cover - the message is the point
            raise AssertionError(f"{name} block {index} failed: {error!r}\n{block}") from error
    printed = capsys.readouterr().out
    for marker in PAGES[name]:
        assert marker in printed, f"{name}: expected {marker!r} in the printed output"

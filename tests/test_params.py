"""Every parameter set under notebooks/params/ names parameters the notebooks have: a misspelt or renamed key would
otherwise be injected silently and change nothing."""

import ast
import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def parameters(notebook: Path) -> dict:
    """name -> value of the assignments in the notebook's cell tagged `parameters`."""
    cells = json.loads(notebook.read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", []))
    return {node.targets[0].id: ast.literal_eval(node.value) if not isinstance(node.value, ast.Call) else
            {k.arg: ast.literal_eval(k.value) for k in node.value.keywords}
            for node in ast.parse(source).body if isinstance(node, ast.Assign)}


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks" / "params").glob("*.yaml")), ids=lambda p: p.name)
def test_every_key_is_a_notebook_parameter_of_the_same_shape(path):
    known = {}
    for notebook in NOTEBOOKS:
        known.update(parameters(notebook))
    for key, value in yaml.safe_load(path.read_text()).items():
        assert key in known, f"{path.name}: {key!r} is no notebook's parameter"
        if isinstance(known[key], dict) and known[key]:  # a recipe dict is replaced whole: give every key
            assert isinstance(value, dict) and set(value) == set(known[key]), \
                f"{path.name}: {key} must give {sorted(known[key])}"

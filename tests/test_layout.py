"""The package's layout: the pipeline's stages import only earlier stages; reporting and tools are never imported
by a stage; no module grows past what one reader holds in mind."""

import ast
from pathlib import Path

import lwadapter

PACKAGE = Path(lwadapter.__file__).parent
STAGES = ["runtime", "results", "sequences", "data", "corpus", "checkpoints", "models", "metrics", "evaluate",
          "train", "transfer", "pretrain", "compact", "scoring", "selection", "healing", "compare", "scenarios",
          "runner"]


def imported(path: Path) -> set[str]:
    """lwadapter modules a file imports ('report.figures', 'models', ...), at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lwadapter"):
            base = node.module.removeprefix("lwadapter").lstrip(".")
            names |= {f"{base}.{a.name}".strip(".") if not base or base in ("report", "bench") else base
                      for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name.removeprefix("lwadapter.") for a in node.names if a.name.startswith("lwadapter.")}
    return names


def test_every_stage_module_is_placed_in_the_order():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == set(STAGES), "add a new module to STAGES where it belongs in the flow (or to report/ bench/)"


def test_stages_import_only_earlier_stages():
    for i, stage in enumerate(STAGES):
        later = [m for m in imported(PACKAGE / f"{stage}.py") if m.split(".")[0] not in STAGES[:i + 1]]
        assert not later, f"lwadapter/{stage}.py imports {later}, which come later in the flow (or are report/bench)"


def test_reporting_never_imports_the_tools():
    for path in (PACKAGE / "report").glob("*.py"):
        assert not [m for m in imported(path) if m.startswith("bench")], f"{path} imports from lwadapter.bench"


def test_modules_stay_small():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert not {p: n for p, n in sizes.items() if n > 560}, "split a module that grows past ~550 lines"

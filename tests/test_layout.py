"""The package's layout: the pipeline's stages import only earlier stages; reporting and tools are never imported
by a stage; no module grows past what one reader holds in mind."""

import ast
from pathlib import Path

import lwadapter

PACKAGE = Path(lwadapter.__file__).parent
STAGES = ["numerics", "runtime", "results", "sequences", "raw_files", "readers", "data", "corpus", "checkpoints", "models",
          "metrics", "evaluate", "train", "recorded", "transfer", "pretrain", "compact", "layer_gradients", "score_ranks",
          "scoring", "selection", "healing", "item_factors", "lora_recommender", "compare", "scenarios", "cold_items", "reexecution",
          "runner"]


def imported(path: Path) -> set[str]:
    """lwadapter modules a file imports ('report.figures', 'models', ...), at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lwadapter"):
            base = node.module.removeprefix("lwadapter").lstrip(".")
            names |= {f"{base}.{a.name}".strip(".") if not base or base in ("report", "bench", "study") else base
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
    assert not {p: n for p, n in sizes.items() if n > 350}, "split a module that grows past ~350 lines"


STUDY = ["base_models", "llm_teachers", "layer_scoring", "layer_selection", "adapter_healing", "evaluation"]  # 02 (x2)-06


def test_study_steps_import_stages_and_earlier_steps_only():
    assert {p.stem for p in (PACKAGE / "study").glob("*.py")} - {"__init__"} == set(STUDY)
    for i, step in enumerate(STUDY):
        for module in imported(PACKAGE / "study" / f"{step}.py"):
            first = module.split(".")[0]
            assert first in STAGES or module in {f"study.{s}" for s in STUDY[:i]}, \
                f"lwadapter/study/{step}.py imports {module}: a step uses the stages and earlier steps only"

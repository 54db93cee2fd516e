"""Parameters: every set under notebooks/params/ names parameters the notebooks have, and the runner stops on a
misspelt or incomplete one before any notebook runs (papermill would inject it silently and change nothing)."""

from pathlib import Path

import pytest
import yaml

from lwadapter import runner

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks" / "params").glob("*.yaml")), ids=lambda p: p.name)
def test_every_parameter_set_passes_the_runners_check(path):
    runner.check_parameters(yaml.safe_load(path.read_text()), path.name)


def test_the_parameters_cell_is_read_with_its_recipe_dicts():
    params = runner.notebook_parameters(ROOT / "notebooks" / "02_base_models.ipynb")
    assert params["dataset"] == "ml-100k" and params["parameter_set"] == "ci"
    assert params["train"]["lr"] == 1e-3 and params["depths"] == [2, 8, 32]


def test_a_misspelt_parameter_stops_the_run_before_any_notebook(tmp_path, monkeypatch):
    executed = []
    monkeypatch.setattr(runner.pm, "execute_notebook", lambda *a, **k: executed.append(a))
    bad = tmp_path / "p.yaml"
    bad.write_text("datset: ml-100k\n")
    with pytest.raises(SystemExit, match=r"p.yaml: unknown parameter 'datset'; did you mean 'dataset'\?"):
        runner.main(["01", "--params", str(bad)])
    with pytest.raises(SystemExit, match="unknown parameter 'sed'; did you mean 'seed'"):
        runner.run(["01"], {"sed": 1})
    with pytest.raises(SystemExit, match=r"\['seed'\] change what the notebooks' default set computes"):
        runner.run(["01"], {"seed": 1})  # would otherwise write over the CI set's results
    assert executed == []


def test_a_partial_recipe_or_inplace_with_parameters_is_refused(monkeypatch):
    monkeypatch.setattr(runner.pm, "execute_notebook", lambda *a, **k: pytest.fail("nothing may run"))
    with pytest.raises(SystemExit, match="train replaces the recipe whole: give every key"):
        runner.run(["02"], {"train": {"lr": 1e-2}})
    runner.check_parameters({"heal": {"epochs": 20, "batch_size": 32, "lr": 2e-3, "warmup_steps": 20, "patience": 3,
                                      "precision": "auto"}})  # every key given, one the recipe also takes added
    with pytest.raises(SystemExit, match="--inplace stores the notebooks' own defaults"):
        runner.run(["01"], {"dataset": "amazon-electronics"}, inplace=True)


def test_executed_copies_go_to_the_parameter_sets_folder(monkeypatch):
    calls = []
    monkeypatch.setattr(runner.pm, "execute_notebook", lambda nb, out, **k: calls.append((out, k["parameters"])))
    runner.run(["01"], {"parameter_set": "mine", "dataset": "amazon-electronics"})
    out, parameters = calls[0]
    assert Path(out).parent == runner.EXECUTED_DIR / "mine" / "amazon-electronics"
    assert parameters["parameter_set"] == "mine"

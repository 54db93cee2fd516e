"""Recipe search: grid values from the command line are typed as a user means them; the defaults are notebook 02's."""

from lwadapter.bench.tuning import MODEL, TRAIN, parse_value, with_combination
from lwadapter.runner import notebook_parameters, notebooks


def test_grid_values_parse_numbers_yaml_leaves_as_strings():
    assert parse_value("1e-3") == 0.001 and isinstance(parse_value("1e-3"), float)
    assert parse_value("64") == 64 and parse_value("0.1") == 0.1
    assert parse_value("cosine") == "cosine" and parse_value("null") is None


def test_defaults_are_notebook_02s_recipe():
    """Every value the search starts from is the default of notebook 02's parameters cell (the architecture: its
    first of `archs`), so a grid varies notebook 02's recipe and nothing else."""
    params = notebook_parameters(notebooks(["02"])[0])
    assert MODEL == {"arch": params["archs"][0], **params["model"]}
    assert TRAIN == params["train"]


def test_a_combination_sets_spec_keys_nested_keys_and_recipe_keys():
    model, train = {"path": "m", "lora": {"rank": 16, "alpha": 32.0}}, {"lr": 1e-3}
    spec, recipe = with_combination(model, train, {"lora.item_dim": 32, "path": "n", "lr": 2e-3})
    assert spec == {"path": "n", "lora": {"rank": 16, "alpha": 32.0, "item_dim": 32}} and recipe == {"lr": 2e-3}
    assert model == {"path": "m", "lora": {"rank": 16, "alpha": 32.0}} and train == {"lr": 1e-3}  # untouched

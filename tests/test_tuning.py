"""Recipe search: grid values from the command line are typed as a user means them; the defaults are notebook 02's."""

from lwadapter.bench.tuning import MODEL, TRAIN, parse_value
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

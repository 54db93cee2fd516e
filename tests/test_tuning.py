"""Recipe search: grid values from the command line are typed as a user means them."""

from lwadapter.bench.tuning import MODEL, TRAIN, parse_value


def test_grid_values_parse_numbers_yaml_leaves_as_strings():
    assert parse_value("1e-3") == 0.001 and isinstance(parse_value("1e-3"), float)
    assert parse_value("64") == 64 and parse_value("0.1") == 0.1
    assert parse_value("cosine") == "cosine" and parse_value("null") is None


def test_grid_keys_are_notebook_02_spec_keys():
    assert {"dropout", "hidden", "tie_embeddings"} <= set(MODEL)
    assert {"lr", "batch_size", "patience", "warmup_steps", "decay", "lr_floor"} <= set(TRAIN)

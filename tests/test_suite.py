"""Suite files: every shipped suite loads; every bad input gets a message naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import MetabenchError
from bench.suite import PROFILES, available_suites, load_suite

BASE = """
dataset = "omniglot"
split = "vinyals"
task = "classification"
n_way = 5
k_shot = 1
n_query = 15
n_test_episodes = 600
seeds = [0]
target_score = 0.9

[methods.protonet]
lr = 0.001

[methods.scratch]
steps = 10

[profiles.smoke]
n_test_episodes = 10
[profiles.smoke.methods.protonet]
meta_steps = 5

[profiles.standard]
[profiles.paper]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


def expect_error(tmp_path: Path, text: str, *fragments: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(MetabenchError) as info:
        load_suite(path, "smoke")
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("name", sorted(available_suites()))
@pytest.mark.parametrize("profile", PROFILES)
def test_shipped_suites_load(name, profile):
    suite = load_suite(name, profile)
    assert suite.name == name and suite.profile == profile and suite.methods


def test_base_loads_and_profile_overrides(tmp_path):
    suite = load_suite(write(tmp_path, BASE), "smoke")
    assert suite.n_test_episodes == 10
    assert suite.method("protonet").params.meta_steps == 5
    assert suite.method("protonet").params.lr == 0.001
    assert load_suite(write(tmp_path, BASE), "standard").n_test_episodes == 600


def test_unknown_top_level_key_suggests(tmp_path):
    msg = expect_error(tmp_path, BASE.replace("n_query =", "n_qeury ="), "'n_qeury'", "n_query")
    assert "did you mean" in msg


def test_unknown_hyperparameter_suggests(tmp_path):
    expect_error(
        tmp_path,
        BASE.replace("lr = 0.001", "lrr = 0.001"),
        "'methods.protonet.lrr'",
        "did you mean 'lr'",
    )


def test_unknown_profile_hyperparameter(tmp_path):
    expect_error(
        tmp_path,
        BASE.replace("meta_steps = 5", "meta_stpes = 5"),
        "'profiles.smoke.methods.protonet.meta_stpes'",
        "meta_steps",
    )


def test_wrong_type(tmp_path):
    expect_error(tmp_path, BASE.replace("n_way = 5", 'n_way = "five"'), "'n_way'", "int", "five")


def test_bool_is_not_a_count(tmp_path):
    expect_error(tmp_path, BASE.replace("k_shot = 1", "k_shot = true"), "'k_shot'")


def test_wrong_hyperparameter_type(tmp_path):
    expect_error(
        tmp_path, BASE.replace("steps = 10", 'steps = "ten"'), "'methods.scratch.steps'", "int"
    )


@pytest.mark.parametrize("key", ["n_way", "k_shot", "n_query", "n_test_episodes"])
def test_non_positive_counts(tmp_path, key):
    line = next(ln for ln in BASE.splitlines() if ln.startswith(f"{key} ="))
    expect_error(tmp_path, BASE.replace(line, f"{key} = 0"), f"'{key}'", "positive")


def test_non_positive_hyperparameter(tmp_path):
    expect_error(
        tmp_path, BASE.replace("lr = 0.001", "lr = -1.0"), "'methods.protonet.lr'", "positive"
    )


def test_n_way_larger_than_classes_in_split(tmp_path):
    expect_error(tmp_path, BASE.replace("n_way = 5", "n_way = 1000"), "'n_way'", "688")


def test_too_many_samples_per_class(tmp_path):
    expect_error(tmp_path, BASE.replace("n_query = 15", "n_query = 20"), "'k_shot + n_query'", "20")


def test_unknown_method(tmp_path):
    expect_error(
        tmp_path,
        BASE.replace("[methods.scratch]", "[methods.scrach]"),
        "methods.scrach",
        "did you mean 'scratch'",
    )


def test_unknown_dataset(tmp_path):
    expect_error(
        tmp_path, BASE.replace('"omniglot"', '"omniglott"'), "'dataset'", "did you mean 'omniglot'"
    )


def test_unknown_split(tmp_path):
    expect_error(tmp_path, BASE.replace('"vinyals"', '"vinyal"'), "'split'", "vinyals")


def test_missing_profile(tmp_path):
    expect_error(tmp_path, BASE.replace("[profiles.paper]", ""), "'profiles.paper'", "required")


def test_missing_required_key(tmp_path):
    expect_error(tmp_path, BASE.replace("seeds = [0]", ""), "'seeds'", "required")


def test_protonet_is_classification_only(tmp_path):
    text = (
        BASE.replace('"omniglot"', '"sinusoid"')
        .replace('"vinyals"', '"default"')
        .replace('"classification"', '"regression"')
        .replace("n_way = 5", "n_way = 1")
    )
    expect_error(tmp_path, text, "'methods.protonet'", "classification")


def test_invalid_choice(tmp_path):
    expect_error(
        tmp_path,
        BASE.replace("steps = 10", 'steps = 10\noptimizer = "adagrad"'),
        "'methods.scratch.optimizer'",
        "adam",
    )


def test_syntax_error(tmp_path):
    expect_error(tmp_path, BASE + "\n[broken", "TOML")


def test_unknown_suite_name_suggests():
    with pytest.raises(MetabenchError, match="did you mean 'omniglot-5w1s'"):
        load_suite("omniglot-5w1", "smoke")


def test_precision_defaults_to_fp32_and_is_set_per_profile(tmp_path):
    text = BASE.replace("[profiles.standard]", '[profiles.standard]\nprecision = "bf16"')
    assert load_suite(write(tmp_path, text), "standard").precision == "bf16"
    assert load_suite(write(tmp_path, text), "smoke").precision == "fp32"


def test_unknown_precision(tmp_path):
    text = BASE.replace("[profiles.smoke]", '[profiles.smoke]\nprecision = "fp16"')
    expect_error(tmp_path, text, "'profiles.smoke.precision'", "bf16", "'fp16'")


def test_duplicate_seeds_are_refused_naming_the_file_and_key(tmp_path):
    expect_error(
        tmp_path, BASE.replace("seeds = [0]", "seeds = [0, 1, 0]"), "'seeds'", "0 listed twice"
    )


def test_seeds_beyond_the_ledgers_range_are_refused(tmp_path):
    huge = BASE.replace("seeds = [0]", "seeds = [0, 99999999999999999999]")
    expect_error(tmp_path, huge, "'seeds'", "0..9223372036854775807")
    assert load_suite(write(tmp_path, BASE.replace("seeds = [0]", f"seeds = [{2**63 - 1}]")))


def test_a_directory_given_as_a_suite_says_so(tmp_path):
    with pytest.raises(
        MetabenchError, match=f"^{tmp_path}: expected a suite TOML file, found a directory"
    ):
        load_suite(tmp_path, "smoke")

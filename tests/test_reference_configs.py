"""The reference system's 154 training configs (tests/data/reference-configs/) load here unchanged (issue 21): the
accepted count only goes up, and every accepted one renders a Taskcluster graph and a local plan."""

import pytest

from translations_taskgraph.reference_configs import FOLDER, check, config_files

# Raise this as features land; issue 21 asks for at least 150 (three stay refused: two Snakemake-era configs
# and one with a typo'd provider).
ACCEPTED_AT_LEAST = 151


@pytest.fixture(scope="module")
def result():
    return check()


def test_all_154_configs_are_kept_with_their_provenance():
    assert len(config_files()) == 154


def test_the_accepted_count_does_not_go_down(result):
    accepted, refused = result
    assert len(accepted) >= ACCEPTED_AT_LEAST, sorted(set().union(*refused.values()))


def test_a_refused_config_says_why_in_lines_naming_keys_or_features(result):
    _, refused = result
    assert all(found and all(line for line in found) for found in refused.values())
    snakemake = [found for path, found in refused.items() if "snakemake" in path.parts]
    assert len(snakemake) == 2


@pytest.mark.e2e
def test_every_accepted_config_renders_a_graph_and_a_local_plan(result):
    from localrun.__main__ import render
    from translations_taskgraph.training_config import load_training_config

    accepted, _ = result
    # A spread of them (each render takes seconds; `task check-reference-configs -- --render` renders all),
    # plus one of each feature that reshapes the graph.
    features = {
        "configs/iberian/glen-init-esen.yml",  # a teacher initialized from a pretrained model
        "configs/redistill/en-ar.yml",  # the student alone, from an earlier run's distilled corpus
        "configs/cjk/en-zh_hant.yml",  # split vocabularies, a script subtag
        "configs/iberian/engl-scielo.yml",  # Hugging Face datasets
        "tests/fixtures/config.pytest.enzh_hant.yml",  # nfc
    }
    chosen = set(accepted[:: max(1, len(accepted) // 8)])
    chosen |= {path for path in accepted if str(path.relative_to(FOLDER)) in features}
    assert len(chosen) >= 5 + 8
    for path in sorted(chosen):
        _, plan, _ = render(load_training_config(path))
        assert plan["order"], path

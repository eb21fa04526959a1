"""Config files read strictly: duplicate keys, tabs and broken YAML name the file, line and fix."""

import pytest
from workflow_helpers import REPO

from cnnreg.configfiles import ConfigFileError, check_config_files

VALID = """\
defaults:
  lr: 1.0e-4
studies:
  task1:
    set: {lr: 1.0e-4, epochs: 50}
    grid: {batch_norm: [false, true]}
"""


def check_text(tmp_path, text, name="config.yaml"):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigFileError) as error:
        check_config_files([tmp_path / "good.yaml", path])
    return path, str(error.value)


@pytest.fixture(autouse=True)
def good_file(tmp_path):
    (tmp_path / "good.yaml").write_text(VALID)


def test_shipped_and_valid_config_files_pass(tmp_path):
    check_config_files([REPO / "config" / "config.yaml", REPO / "config" / "demo.yaml", tmp_path / "good.yaml"])
    (tmp_path / "merge.yaml").write_text("base: &b {lr: 1, epochs: 2}\nother:\n  <<: *b\n  lr: 3\n")
    check_config_files([str(tmp_path / "merge.yaml")])  # a merge key's entries may be overridden


def test_duplicate_top_level_key(tmp_path):
    path, message = check_text(tmp_path, VALID + "defaults:\n  lr: 0.1\n")
    assert message.startswith(f"config file {path}, line 7, column 1: key 'defaults' at the top level is given twice")
    assert "(first on line 1)" in message and "keep one of them" in message


def test_duplicate_nested_key_names_its_key_path(tmp_path):
    text = VALID.replace("    grid:", "    set: {epochs: 80}\n    grid:")
    path, message = check_text(tmp_path, text)
    assert message.startswith(f"config file {path}, line 6, column 5: key 'set' under studies.task1 is given twice")
    assert "(first on line 5)" in message


def test_duplicate_key_in_a_flow_mapping_inside_a_list(tmp_path):
    text = VALID + "    variants:\n      - {}\n      - {dropout: 0.1, dropout: 0.4}\n"
    _, message = check_text(tmp_path, text)
    assert "line 9, column 24: key 'dropout' under studies.task1.variants[1] is given twice" in message


def test_tab_indentation_says_use_spaces(tmp_path):
    path, message = check_text(tmp_path, VALID.replace("  task1:", "\ttask1:"))
    assert message.startswith(f"config file {path}, line 4, column 1: found a tab character")
    assert "tabs are not allowed for indentation in YAML; indent with spaces" in message


def test_unclosed_bracket_names_where_it_opened(tmp_path):
    path, message = check_text(tmp_path, VALID.replace("epochs: 50}", "epochs: 50"))
    assert message.startswith(f"config file {path}, line 6, column 9: expected ',' or '}}'")
    assert "(while parsing a flow mapping that starts on line 5, column 10)" in message
    assert "unclosed bracket" in message


def test_json_is_read_as_json_and_checked_for_duplicates(tmp_path):
    (tmp_path / "tabs.json").write_text('{\n\t"threads": 1,\n\t"defaults": {"lr": 0.1}\n}\n')
    check_config_files([tmp_path / "tabs.json"])  # valid JSON, tabs and all, as Snakemake reads it
    path, message = check_text(tmp_path, '{"threads": 1, "threads": 2}', name="twice.json")
    assert message.startswith(f"config file {path}: key 'threads' is given twice in one JSON object")

"""Config files read strictly, so that a typo stops the workflow with the file, line and column.

Snakemake reads a config file as JSON, else as YAML, and keeps the last of two equal keys without a
word: a study written twice, or a ``set`` given twice, silently loses its first half. Its message for
broken YAML names no file. `check_config_files` reads the files the same way, but rejects a key given
twice in one mapping and says where each problem is and how to fix it.
"""

import json
from pathlib import Path

import yaml

MERGE_TAG = "tag:yaml.org,2002:merge"


class ConfigFileError(ValueError):
    """A config file that cannot be read unambiguously; the message names the file and the fix."""


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one YAML mapping."""


class StrictLoader(yaml.SafeLoader):
    """A safe YAML loader whose mappings reject a key given twice (merge keys ``<<`` aside)."""

    def construct_document(self, node):
        self.root = node
        return super().construct_document(node)

    def construct_mapping(self, node, deep=False):
        _reject_duplicate_keys(self, node)
        return super().construct_mapping(node, deep=deep)


def _reject_duplicate_keys(loader, node):
    """Raise `DuplicateKeyError` at the second of two equal scalar keys of the mapping ``node``."""
    first = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
            continue
        key = loader.construct_object(key_node)
        if key in first:
            path = _key_path(loader.root, node, set()).lstrip(".")
            where = f"under {path}" if path else "at the top level"
            raise DuplicateKeyError(
                problem=f"key '{key}' {where} is given twice (first on line {first[key].line + 1})",
                problem_mark=key_node.start_mark,
            )
        first[key] = key_node.start_mark


def _key_path(node, target, visited):
    """The key path from ``node`` down to the node ``target`` (``studies.task1.variants[0]``), or None."""
    if node is target:
        return ""
    if id(node) in visited or isinstance(node, yaml.ScalarNode):
        return None
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        children = [(f".{key.value}", value) for key, value in node.value]
    else:
        children = [(f"[{i}]", item) for i, item in enumerate(node.value)]
    for step, child in children:
        below = _key_path(child, target, visited)
        if below is not None:
            return step + below
    return None


def check_config_files(paths):
    """Read every config file strictly; raise on the first one Snakemake would misread or reject.

    Parameters
    ----------
    paths : iterable of str or Path
        The config files, e.g. Snakemake's ``workflow.configfiles`` (``configfile:`` and
        ``--configfile``).

    Raises
    ------
    ConfigFileError
        For a key given twice in one mapping (JSON or YAML), a tab used for indentation or any other
        YAML syntax error; the message names the file, the line and column, and the fix.
    """
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        try:
            json.loads(text, object_pairs_hook=_unique_json_pairs(path))
            continue
        except json.JSONDecodeError:
            pass  # not JSON: read as YAML, as Snakemake does
        try:
            yaml.load(text, Loader=StrictLoader)
        except yaml.MarkedYAMLError as error:
            raise ConfigFileError(_yaml_message(path, error)) from None


def _unique_json_pairs(path):
    def pairs(items):
        keys = [key for key, _ in items]
        for key in keys:
            if keys.count(key) > 1:
                raise ConfigFileError(
                    f"config file {path}: key '{key}' is given twice in one JSON object, and only the last "
                    "would be used; keep one of them"
                )
        return dict(items)

    return pairs


def _yaml_message(path, error):
    mark = error.problem_mark
    problem = error.problem
    if isinstance(error, DuplicateKeyError):
        fix = "only the last would be used; keep one of them (merge their entries if both are wanted)"
    elif "'\\t'" in problem:
        problem, fix = "found a tab character", "tabs are not allowed for indentation in YAML; indent with spaces"
    else:
        fix = "fix the YAML syntax (often an unclosed bracket or quote, or an unquoted value with ': ')"
    if error.context_mark is not None:
        problem += f" ({error.context} that starts on line {error.context_mark.line + 1}, column "
        problem += f"{error.context_mark.column + 1})"
    return f"config file {path}, line {mark.line + 1}, column {mark.column + 1}: {problem}; {fix}"

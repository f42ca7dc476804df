"""sme.schema: what JSON Schema alone lets through (a trailing newline, NaN, non-text keys, depth) is refused
with the file and the field named."""

from __future__ import annotations

import pytest

from sme.errors import ConfigError
from sme.schema import _end_anchored, check_values, load_yaml, validate

NAME = {"type": "object", "properties": {"name": {"type": "string", "pattern": r"^[a-z]+$"},
                                         "price": {"type": "string", "pattern": r"^\d+\$"}}}


@pytest.mark.parametrize("pattern, anchored", [
    (r"^[a-z]+$", r"^[a-z]+\Z"),
    (r"^\d+\$", r"^\d+\$"),          # an escaped dollar is a dollar sign, not the end
    (r"^\d+\\$", r"^\d+\\\Z"),       # an escaped backslash, then the end
    (r"^(aws|sme):", r"^(aws|sme):"),
])
def test_a_trailing_dollar_means_the_end_of_the_text(pattern, anchored):
    assert _end_anchored(pattern) == anchored


def test_a_value_ending_in_a_newline_does_not_match():
    validate({"name": "churn"}, NAME, "f.yaml")
    with pytest.raises(ConfigError, match=r"f.yaml: name: str 'churn\\n' is not valid"):
        validate({"name": "churn\n"}, NAME, "f.yaml")
    validate({"price": "12$"}, NAME, "f.yaml")


@pytest.mark.parametrize("data, field, words", [
    ({"a": {"b": [1.0, float("nan")]}}, "a.b[1]", "nan is not a usable number"),
    ({"a": float("-inf")}, "a", "-inf"),
    ({"a": {1: "x"}}, "a.1", "a key must be text, got int 1"),
    ({"a": {None: "x"}}, "a.None", "got NoneType"),
    ({"a": {"b\x00c": {2: 3}}}, "a.'b\\x00c'.2", "a key must be text"),
    ({"a": b"bytes"}, "a", "a YAML bytes is not valid here"),
])
def test_values_no_config_file_means_are_refused_with_their_field(data, field, words):
    with pytest.raises(ConfigError) as info:
        check_values(data, "f.yaml")
    assert info.value.field == field and words in info.value.message


def test_depth_and_size_are_bounded():
    deep: list = []
    node = deep
    for _ in range(40):
        node.append([])
        node = node[0]
    with pytest.raises(ConfigError, match="nested more than 32 levels"):
        check_values({"x": deep}, "f.yaml")
    with pytest.raises(ConfigError, match="more than 100,000 values"):
        check_values({"x": list(range(100_001))}, "f.yaml")
    check_values({"x": list(range(1000)), "y": {"z": [[[1.5, "a", None, True]]]}}, "f.yaml")


def test_a_string_too_long_is_shown_short_with_its_length():
    schema = {"type": "object", "properties": {"v": {"type": "string", "maxLength": 5}}}
    with pytest.raises(ConfigError) as info:
        validate({"v": "x" * 500}, schema, "f.yaml")
    assert "500 characters; at most 5 are allowed" in info.value.message and len(info.value.message) < 140


def test_yaml_files_that_are_not_config_files(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("x: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested more than 32 levels"):
        load_yaml(deep)
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    with pytest.raises(Exception, match="symlink loop") as info:
        load_yaml(loop)
    assert info.value.status == 2
    with pytest.raises(Exception, match="not a regular file"):
        load_yaml("/dev/null")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(Exception, match="not UTF-8"):
        load_yaml(latin)

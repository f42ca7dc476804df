"""Validating YAML config files against a JSON schema, with errors a person can act on.

Each error names the file, the field (dotted path) and what would be valid. Unknown keys are errors.
A schema property may carry ``x-hint``: the fix to print when that field is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sme.errors import ConfigError, UserError


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise UserError(f"{p}: no such file", hint="check the path given with -c/--config") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise UserError(f"{p}: cannot read the file ({exc.__class__.__name__}: {exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(str(p), "", f"not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(str(p), "", f"expected a mapping of fields at the top, got {type(data).__name__}")
    return data


def field_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validate(data: Any, schema: dict[str, Any], source: str) -> None:
    """Raise ConfigError for the first (most relevant) schema violation."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(list(e.absolute_path)), str(e.path)))
    if not errors:
        return
    err = jsonschema.exceptions.best_match(errors)
    hint = err.schema.get("x-hint") if isinstance(err.schema, dict) else None
    # descend into anyOf/oneOf to the most specific reason, keeping the outer field's hint
    while err.context:
        err = jsonschema.exceptions.best_match(err.context)
        if isinstance(err.schema, dict) and err.schema.get("x-hint"):
            hint = err.schema["x-hint"]
    raise _to_config_error(err, source, hint)


def _to_config_error(err: Any, source: str, outer_hint: str | None = None) -> ConfigError:
    path = list(err.absolute_path)
    field = field_path(path)
    hint = (err.schema.get("x-hint") if isinstance(err.schema, dict) else None) or outer_hint
    kind = err.validator
    if kind == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        valid = ", ".join(sorted(err.schema.get("properties", {})))
        name = field_path(path + [extra[0]]) if extra else field
        return ConfigError(source, name, f"unknown field; valid fields here: {valid}",
                           hint=hint or "remove it or fix its spelling")
    if kind == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        sub = err.schema.get("properties", {}).get(missing, {})
        return ConfigError(source, field_path(path + [missing]), "is required",
                           hint=sub.get("description") or sub.get("x-hint"))
    if kind == "type":
        expected = err.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return ConfigError(source, field, f"expected {_article(expected)}, got {_show(err.instance)}",
                           hint=hint)
    if kind == "enum":
        choices = ", ".join(str(c) for c in err.validator_value)
        return ConfigError(source, field, f"{_show(err.instance)} is not one of: {choices}", hint=hint)
    if kind == "pattern":
        return ConfigError(source, field, f"{_show(err.instance)} is not valid",
                           hint=hint or f"expected text matching {err.validator_value}")
    if kind == "const" and hint:
        return ConfigError(source, field, f"{_show(err.instance)} is not valid", hint=hint)
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems",
                "minLength", "maxLength", "uniqueItems"):
        return ConfigError(source, field, err.message, hint=hint)
    return ConfigError(source, field, err.message, hint=hint)


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}"

"""Validating YAML config files against a JSON schema, with errors a person can act on.

Each error names the file, the field (dotted path) and what would be valid. Unknown keys are errors.
A schema property may carry ``x-hint``: the fix to print when that field is wrong.

Before the schema sees a file, ``check_values`` refuses what JSON Schema lets through or crashes on:
keys that are not text, NaN and infinity (they pass every ``minimum``), YAML-only types (dates, binary,
sets) and structures deeper or larger than any config file needs. A schema ``pattern`` must match the
whole text: ``$`` in a pattern means the end of the text, never "before a trailing newline" as in ``re``.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

from sme.errors import ConfigError, UserError

MAX_FILE_BYTES = 10 << 20  # a config file is a few kB; this refuses /dev/zero and logs given by mistake
MAX_DEPTH = 32  # sme's files nest 6 levels at most
MAX_VALUES = 100_000


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    p = Path(path)
    text = _read_text(p)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(str(p), "", f"not valid YAML{where}: {problem}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(str(p), "", f"nested more than {MAX_DEPTH} levels deep",
                          hint="a config file needs only a few levels; check the brackets") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(str(p), "", f"expected a mapping of fields at the top, got {type(data).__name__}")
    check_values(data, str(p))
    return data


def _read_text(p: Path) -> str:
    try:
        info = p.stat()
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{p}: not a regular file", hint="give the path of a YAML file with -c/--config")
        if info.st_size > MAX_FILE_BYTES:
            raise UserError(f"{p}: {info.st_size:,} bytes is too large for a config file "
                            f"(at most {MAX_FILE_BYTES >> 20} MB)", hint="check the path given with -c/--config")
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{p}: no such file", hint="check the path given with -c/--config") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{p}: not UTF-8 text (byte {exc.start})", hint="save the file as UTF-8") from None
    except OSError as exc:
        raise UserError(f"{p}: cannot read the file ({os_reason(exc)})",
                        hint="give the path of a readable YAML file with -c/--config") from None


def os_reason(exc: OSError) -> str:
    """An OSError in words: the symlink loop case gets a name, the others their strerror."""
    if exc.errno == errno.ELOOP:
        return "a symlink loop: the path links back to itself"
    return exc.strerror or str(exc)


def check_values(data: Any, source: str) -> None:
    """Refuse what no sme file means and what JSON Schema would crash on or let through (see the top)."""
    stack: list[tuple[list[Any], Any]] = [([], data)]
    seen = 0
    while stack:
        path, value = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ConfigError(source, "", f"holds more than {MAX_VALUES:,} values",
                              hint="a config file is small; put large payloads in a file (payload.file)")
        if len(path) > MAX_DEPTH:
            raise ConfigError(source, field_path(path[:MAX_DEPTH]), f"is nested more than {MAX_DEPTH} levels deep",
                              hint="a config file needs only a few levels; check the brackets")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ConfigError(source, field_path(path + [str(key)]),
                                      f"a key must be text, got {type(key).__name__} {key!r}",
                                      hint=f"quote it: '{key}'")
                stack.append((path + [key], item))
        elif isinstance(value, list):
            stack.extend((path + [i], item) for i, item in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(source, field_path(path), f"{value} is not a usable number", hint="give a finite number")
        elif not isinstance(value, (str, int, float, bool)) and value is not None:
            raise ConfigError(source, field_path(path), f"a YAML {type(value).__name__} is not valid here",
                              hint="quote it to make it text")


def field_path(parts: Any) -> str:
    out = ""
    for part in parts:
        if not isinstance(part, int) and not str(part).isprintable():
            part = repr(str(part))  # a NUL or newline in a key must not break the message's line
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validate(data: Any, schema: dict[str, Any], source: str) -> None:
    """Raise ConfigError for the first (most relevant) schema violation."""
    import jsonschema

    check_values(data, source)
    validator = _validator_class()(schema)
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


def _validator_class():  # type: ignore[no-untyped-def]
    """Draft 2020-12 with ``pattern`` anchored at the true end of the text (``re.search`` lets "x$" match
    "x\\n": a name, region or subnet id ending in a newline would pass)."""
    import jsonschema

    def pattern(validator, patrn, instance, schema):  # type: ignore[no-untyped-def]
        if validator.is_type(instance, "string") and not re.search(_end_anchored(patrn), instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")

    return jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": pattern})


def _end_anchored(patrn: str) -> str:
    """A trailing, unescaped ``$`` becomes ``\\Z`` (the end of the text, newline or not)."""
    if patrn.endswith("$") and (len(patrn) - len(patrn[:-1].rstrip("\\")) - 1) % 2 == 0:
        return patrn[:-1] + r"\Z"
    return patrn


def _to_config_error(err: Any, source: str, outer_hint: str | None = None) -> ConfigError:
    path = list(err.absolute_path)
    field = field_path(path)
    hint = (err.schema.get("x-hint") if isinstance(err.schema, dict) else None) or outer_hint
    kind = err.validator
    if "propertyNames" in err.absolute_schema_path:  # the instance is a key of the object at `path`
        return ConfigError(source, field, f"the key {err.instance!r} is not valid", hint=hint)
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
    if kind in ("const", "not") and hint:
        return ConfigError(source, field, f"{_show(err.instance)} is not valid", hint=hint)
    if kind in ("maxLength", "minLength") and isinstance(err.instance, str):
        bound = "at most" if kind == "maxLength" else "at least"
        return ConfigError(source, field, f"{_show(err.instance)} has {len(err.instance)} characters; "
                           f"{bound} {err.validator_value} are allowed", hint=hint)
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems",
                "uniqueItems"):
        return ConfigError(source, field, err.message, hint=hint)
    return ConfigError(source, field, err.message, hint=hint)


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"

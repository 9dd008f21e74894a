"""botocore service model loading and request validation.

botocore's ParamValidator checks types, required members, unknown members and
minimum lengths/values.  Real DataSync also enforces the model's maximum
lengths, regular-expression patterns and enums, so :func:`validate` adds those
checks on top (the report lines mimic botocore's wording). The S3 side (``s3api``)
checks its requests against botocore's S3 model the same way.
"""

from __future__ import annotations

import re
import sys
import threading
import unicodedata

import botocore.model
import botocore.session
import botocore.validate

_MODELS: dict[str, botocore.model.ServiceModel] = {}
_MODEL_LOCK = threading.Lock()


def service_model(service: str = "datasync") -> botocore.model.ServiceModel:
    """botocore's model of a service, loaded once: DataSync's, or S3's (``s3api``)."""
    with _MODEL_LOCK:
        if service not in _MODELS:
            _MODELS[service] = botocore.session.get_session().get_service_model(service)
        return _MODELS[service]


# --- Java/Smithy regex -> Python re -----------------------------------------
_CAT_RANGES: dict[str, str] = {}
_CAT_LOCK = threading.Lock()


def _category_class_body(cat: str) -> str:
    """Character-class body (ranges) for a Unicode general category like Zs or L."""
    with _CAT_LOCK:
        if cat in _CAT_RANGES:
            return _CAT_RANGES[cat]
        ranges: list[tuple[int, int]] = []
        start: int | None = None
        prev = 0  # the last code point of the current range; read only once start is set
        for cp in range(sys.maxunicode + 1):
            c = unicodedata.category(chr(cp))
            ok = c == cat if len(cat) == 2 else c[0] == cat
            if ok:
                if start is None:
                    start = prev = cp
                elif cp == prev + 1:
                    prev = cp
                else:
                    ranges.append((start, prev))
                    start = prev = cp
        if start is not None:
            ranges.append((start, prev))

        def esc(cp):
            return f"\\U{cp:08x}"

        body = "".join(esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in ranges)
        _CAT_RANGES[cat] = body
        return body


_PCLASS = re.compile(r"\\p\{([A-Za-z]{1,2})\}")
_COMPILED: dict[str, re.Pattern | None] = {}  # None: not checkable


def compile_pattern(pat: str) -> re.Pattern | None:
    if pat in _COMPILED:
        return _COMPILED[pat]
    py = pat.replace("\\z", "\\Z")
    # the "any printable/any char" class used for free text
    py = py.replace(r"[\p{L}\p{M}\p{Z}\p{S}\p{N}\p{P}\p{C}]", r"[\s\S]")
    py = _PCLASS.sub(lambda m: _category_class_body(m.group(1)), py)
    try:
        rx = re.compile(py)
    except re.error:
        rx = None  # cannot check this pattern; accept anything
    _COMPILED[pat] = rx
    return rx


def _check_max_length(value, meta: dict, name: str, errors: list) -> None:
    if "max" in meta and len(value) > meta["max"]:
        errors.append(f"Invalid length for parameter {name}, value: {len(value)}, "
                      f"valid max length: {meta['max']}")


def _extra_checks(value, shape, name, errors: list[str]) -> None:
    """What botocore's validator leaves to the service: lengths, enums, patterns and maxima,
    checked by the shape's type, all the way down."""
    check = _CHECKS_BY_TYPE.get(shape.type_name)
    if check is not None:
        check(value, shape, name, errors)


def _check_structure(value, shape, name, errors: list[str]) -> None:
    if isinstance(value, dict):
        for key, v in value.items():
            if key in shape.members:
                _extra_checks(v, shape.members[key], f"{name}.{key}", errors)


def _check_list(value, shape, name, errors: list[str]) -> None:
    if isinstance(value, list):
        _check_max_length(value, shape.metadata, name, errors)
        for i, v in enumerate(value):
            _extra_checks(v, shape.member, f"{name}[{i}]", errors)


def _check_map(value, shape, name, errors: list[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _extra_checks(v, shape.value, f"{name}.{k}", errors)


def _check_string(value, shape, name, errors: list[str]) -> None:
    if not isinstance(value, str):
        return
    _check_max_length(value, shape.metadata, name, errors)
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        errors.append(f"Invalid value for parameter {name}, value: {value!r}, valid values: {', '.join(enum)}")
    pat = shape.metadata.get("pattern")
    rx = compile_pattern(pat) if pat else None
    if rx is not None and not rx.search(value):
        errors.append(f"Invalid value for parameter {name}, value: {value!r}, does not match pattern: {pat}")


def _check_number(value, shape, name, errors: list[str]) -> None:
    meta = shape.metadata
    if isinstance(value, int) and not isinstance(value, bool) and "max" in meta and value > meta["max"]:
        errors.append(f"Invalid value for parameter {name}, value: {value}, valid max value: {meta['max']}")


_CHECKS_BY_TYPE = {"structure": _check_structure, "list": _check_list, "map": _check_map, "string": _check_string,
                   "integer": _check_number, "long": _check_number}


def validate(params, input_shape) -> str | None:
    """Return a validation report (str) or None when the params are valid."""
    if input_shape is None:
        if params:
            return "Unknown parameters: operation takes no input"
        return None
    if not isinstance(params, dict):
        return "Invalid type for request body: expected a JSON object"
    report = botocore.validate.ParamValidator().validate(params, input_shape)
    lines = []
    if report.has_errors():
        lines.append(report.generate_report())
    extra: list[str] = []
    try:
        _extra_checks(params, input_shape, "input", extra)
    except Exception:  # a type error botocore already reported
        pass
    if extra:
        if not lines:
            lines.append("Parameter validation failed:")
        lines.extend(extra)
    return "\n".join(lines) if lines else None

"""What a runtime setting is: its definition and the validators that build one.

Each setting is one ``AppSettingDefinition``: its key, a description, a default (computed
at read time, so a default taken from Django settings follows them), a validator that
turns JSON into its normalised stored form, and a builder that turns that into the typed
value callers get from ``app_setting()``. Apps declare their definitions in their own
``app_settings.py``; ``registry`` collects them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from marqetfi.core.errors import InvalidSetting
from marqetfi.core.formats import canonical_decimal, decimal_digits

T_co = TypeVar("T_co", covariant=True)

MAX_SETTING_DIGITS = 36


class Invalid(Exception):
    """Validation errors keyed by the path of the offending entry (``""`` for the whole value)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


Validator = Callable[[Any], Any]


def invalid(message: str) -> Invalid:
    return Invalid({"": [message]})


def _prefixed(errors: dict[str, list[str]], prefix: str) -> dict[str, list[str]]:
    return {f"{prefix}.{path}" if path else prefix: messages for path, messages in errors.items()}


def int_between(low: int, high: int) -> Validator:
    def validate(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid("Expected a whole number.")
        if not low <= value <= high:
            raise invalid(f"Expected a number from {low} to {high}.")
        return value

    return validate


def decimal_between(low: Decimal, high: Decimal, *, places: int, exclusive: bool = False) -> Validator:
    """Decimal amounts travel as strings (whole numbers as JSON integers are accepted); never floats."""

    def validate(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise invalid('Expected a decimal number as a string, e.g. "12.5".')
        text = str(value)
        if not canonical_decimal(text) or sum(decimal_digits(text)) > MAX_SETTING_DIGITS:
            raise invalid('Expected a decimal number as a string of digits, e.g. "12.5".')
        number = Decimal(text)
        if (low < number < high) if exclusive else (low <= number <= high):
            exponent = number.as_tuple().exponent
            if isinstance(exponent, int) and -exponent > places:
                raise invalid(f"Expected at most {places} decimal places.")
            return format(number.normalize(), "f")
        bounds = f"between {low} and {high}" if exclusive else f"from {low} to {high}"
        raise invalid(f"Expected a number {bounds}.")

    return validate


def choice(choices: tuple[str, ...]) -> Validator:
    def validate(value: Any) -> str:
        if not isinstance(value, str) or value.upper() not in choices:
            raise invalid(f"Expected one of {', '.join(choices)}.")
        return value.upper()

    return validate


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid("Expected true or false.")
    return value


def text(max_length: int) -> Validator:
    def validate(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise invalid("Expected a non-empty string.")
        if len(value) > max_length:
            raise invalid(f"Expected at most {max_length} characters.")
        return value.strip()

    return validate


def origin(value: Any) -> str:
    """``scheme://host[:port]`` as browsers send it in ``Origin``; compared lower-cased."""
    message = 'Expected an origin like "https://app.example.com" (no path, no trailing slash).'
    if not isinstance(value, str):
        raise invalid(message)
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise invalid(message) from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "@" in parts.netloc
        or parts.path
        or parts.query
        or parts.fragment
    ):
        raise invalid(message)
    return f"{parts.scheme}://{parts.netloc}".lower()


_RATE = re.compile(r"^[1-9][0-9]{0,6}/(s|sec|second|m|min|minute|h|hour|d|day)$")


def rate(value: Any) -> str | None:
    """A DRF rate, ``<requests>/<period>``; null means the scope is not limited at all."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RATE.match(value.strip()):
        raise invalid(
            'Expected a rate like "120/min" (period s, sec, second, m, min, minute, h, hour, d, day).'
        )
    return value.strip()


_SCOPE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


def scope(value: str) -> None:
    if not _SCOPE.match(value):
        raise invalid("Expected a throttle scope name: lower-case letters, digits, _ . -")


def list_of(item: Validator, *, max_items: int) -> Validator:
    def validate(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise invalid("Expected a list.")
        if len(value) > max_items:
            raise invalid(f"Expected at most {max_items} entries.")
        cleaned: list[Any] = []
        errors: dict[str, list[str]] = {}
        for index, entry in enumerate(value):
            try:
                normalised = item(entry)
            except Invalid as exc:
                errors.update(_prefixed(exc.errors, str(index)))
            else:
                if normalised not in cleaned:
                    cleaned.append(normalised)
        if errors:
            raise Invalid(errors)
        return cleaned

    return validate


def mapping_of(check_key: Callable[[str], None], item: Validator) -> Validator:
    """An open object: any key that passes ``check_key``, every value checked by ``item``."""

    def validate(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise invalid("Expected an object.")
        cleaned: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for key, entry in value.items():
            try:
                check_key(key)
                cleaned[key] = item(entry)
            except Invalid as exc:
                errors.update(_prefixed(exc.errors, key))
        if errors:
            raise Invalid(errors)
        return cleaned

    return validate


def record(
    fields: Mapping[str, Validator], check: Callable[[dict[str, Any]], dict[str, list[str]]] | None = None
) -> Validator:
    """A closed object: exactly ``fields``; ``check`` adds rules across fields."""

    def validate(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise invalid("Expected an object.")
        cleaned: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for key in value.keys() - fields.keys():
            errors[str(key)] = [f"Unknown field. Fields: {', '.join(fields)}."]
        for key, field_validator in fields.items():
            if key not in value:
                errors[key] = ["This field is required."]
                continue
            try:
                cleaned[key] = field_validator(value[key])
            except Invalid as exc:
                errors.update(_prefixed(exc.errors, key))
        if not errors and check is not None:
            errors = check(cleaned)
        if errors:
            raise Invalid(errors)
        return cleaned

    return validate


def merged(base: Any, override: Any) -> Any:
    """``override`` laid over ``base``, object by object; anything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{key: merged(base.get(key), value) for key, value in override.items()}}
    return override


def picked(value: Any, entries: Any) -> Any:
    """The parts of ``value`` that ``entries`` names, object by object."""
    if isinstance(value, dict) and isinstance(entries, dict):
        return {key: picked(value[key], entry) for key, entry in entries.items() if key in value}
    return value


@dataclass(frozen=True)
class AppSettingDefinition(Generic[T_co]):
    """One runtime setting.

    ``default`` returns the JSON form and is called at read time. ``validate`` turns a
    complete JSON value into its stored form (raising ``Invalid``); ``build`` turns the
    stored form into what ``app_setting()`` returns. With ``merge``, the setting is an
    object read as the default with the stored entries laid over it, and a write may send
    only the entries it changes. ``apply``, if set, acts on the running process whenever
    the value in effect there changes.
    """

    key: str
    description: str
    default: Callable[[], Any]
    validate: Validator
    build: Callable[[Any], T_co]
    merge: bool = False
    apply: Callable[[Any], None] | None = None

    def clean(self, value: Any, *, stored: Any = None) -> Any:
        """The stored form of ``value``; with ``merge``, of ``value`` laid over ``stored``.

        A merged setting stores only the entries an operator set, so the others keep
        following their default; the whole value in effect is what gets validated.
        """
        try:
            if self.merge and isinstance(value, dict):
                entries = merged(stored or {}, value)
                return picked(self.validate(merged(self.default(), entries)), entries)
            return self.validate(value)
        except Invalid as exc:
            errors = {path or "value": messages for path, messages in exc.errors.items()}
            raise InvalidSetting(
                f"Invalid value for {self.key}.", details={"key": self.key, "errors": errors}
            ) from None

    def effective_json(self, stored: Any = None) -> Any:
        """The JSON form in effect given the stored value (``None``: no row, the default)."""
        if stored is None:
            return self.default()
        return merged(self.default(), stored) if self.merge else stored

    def value(self, stored: Any = None) -> T_co:
        return self.build(self.effective_json(stored))

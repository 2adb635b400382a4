"""What a valid /users/track object is, and which array of the request it belongs to.

Reasons name the field and the rule, never the value: values may be personal data and reasons go
into reports and logs.
"""

from __future__ import annotations

import re
from collections.abc import Container
from datetime import datetime
from typing import Any


class Kind:
    """The request array an object belongs in (plain strings: they are on the hot path)."""

    ATTRIBUTES = "attributes"
    EVENT = "events"
    PURCHASE = "purchases"
    ALL = (ATTRIBUTES, EVENT, PURCHASE)


PRIMARY_IDENTIFIERS = ("external_id", "braze_id", "user_alias")
SECONDARY_IDENTIFIERS = ("email", "phone")  # identify the user only when no primary one is given

# Braze documents "ISO 8601 or yyyy-MM-dd'T'HH:mm:ss:SSSZ", and every example it gives is the
# extended calendar form. Python's fromisoformat also takes week dates (2026-W01-1) and the basic
# form (20260101); those are not what Braze documents, so the shape is checked first and
# fromisoformat only checks that the numbers make a real date.
_ISO_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}"  # calendar date, extended form
    r"(?:T\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?"  # optional time: minutes at least, seconds, fraction
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"  # optional UTC offset
)
_BRAZE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}):\d{3}(?:Z|[+-]\d{2}:?\d{2})")


class Invalid(Exception):
    """The object cannot be sent; ``reason`` says which field breaks which rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def classify(obj: Any) -> str:
    """Return the object's kind, or raise :class:`Invalid`.

    An object is a purchase when it has ``product_id`` and a purchase field (``currency`` or
    ``price``), an event when it has ``name`` and ``time``, and otherwise an attributes object.
    ``name`` and ``product_id`` alone are ordinary custom attributes (Braze's own Cloud Data
    Ingestion samples set a ``name``), so they must not turn an attributes object into a broken
    event or purchase. Once an object is a purchase or an event, every rule of that kind applies:
    ``{"product_id", "price"}`` without a currency is a reject, not an attributes update.
    """
    if type(obj) is not dict:
        raise Invalid(f"element is a JSON {_json_type(obj)}, not an object")
    external_id = obj.get("external_id")
    # Fast path for the common case: a plain external_id and nothing else identifying.
    if type(external_id) is not str or not external_id or "braze_id" in obj or "user_alias" in obj:
        _check_identifier(obj)
    if "product_id" in obj and ("currency" in obj or "price" in obj):
        _check_purchase(obj)
        return Kind.PURCHASE
    if "name" in obj and "time" in obj:
        _check_event(obj)
        return Kind.EVENT
    return Kind.ATTRIBUTES


def check(obj: Any, kind: str, made_times: Container[str] = ()) -> None:
    """Check an object of a kind fixed by its folder (no guessing from its keys); raise
    :class:`Invalid`. An attributes object may hold any custom attribute, ``name``, ``time`` and
    ``product_id`` among them.

    ``made_times`` names the fields whose string values a typed reader wrote itself from a
    timestamp column, in a form that is valid by construction (a Parquet or Avro timestamp as
    ISO 8601 UTC): their form is not checked again. A field not named there, or whose value is not
    a string, is checked as always."""
    if type(obj) is not dict:
        raise Invalid(f"element is a JSON {_json_type(obj)}, not an object")
    external_id = obj.get("external_id")
    if type(external_id) is not str or not external_id or "braze_id" in obj or "user_alias" in obj:
        _check_identifier(obj)
    if kind == Kind.PURCHASE:
        _check_purchase(obj, made_times)
    elif kind == Kind.EVENT:
        _check_event(obj, made_times)
    else:
        _check_attribute_dates(obj, made_times)


def _check_identifier(obj: dict[str, Any]) -> None:
    present = [k for k in PRIMARY_IDENTIFIERS if obj.get(k) is not None]
    if len(present) > 1:
        raise Invalid(f"more than one identifier ({', '.join(present)}); give exactly one")
    if present:
        key = present[0]
        value = obj[key]
        if key == "user_alias":
            if not (
                isinstance(value, dict)
                and isinstance(value.get("alias_name"), str)
                and isinstance(value.get("alias_label"), str)
            ):
                raise Invalid("user_alias: must be an object with string alias_name and alias_label")
        elif not isinstance(value, str) or not value:
            raise Invalid(f"{key}: must be a non-empty string")
        return
    for key in SECONDARY_IDENTIFIERS:
        value = obj.get(key)
        if value is not None:
            if not isinstance(value, str) or not value:
                raise Invalid(f"{key}: must be a non-empty string")
            return
    raise Invalid("no identifier: one of external_id, braze_id, user_alias, email or phone is required")


def _check_event(obj: dict[str, Any], made_times: Container[str] = ()) -> None:
    name = obj.get("name")
    if type(name) is not str or not name:
        raise Invalid("name: must be a non-empty string")
    if "time" not in made_times or type(obj.get("time")) is not str:
        _check_time(obj)
    props = obj.get("properties")
    if props is not None and type(props) is not dict:
        raise Invalid("properties: must be an object")


def _check_purchase(obj: dict[str, Any], made_times: Container[str] = ()) -> None:
    product_id = obj.get("product_id")
    if type(product_id) is not str or not product_id:
        raise Invalid("product_id: must be a non-empty string")
    currency = obj.get("currency")
    if type(currency) is not str or len(currency) != 3 or not currency.isascii() or not currency.isupper():
        raise Invalid("currency: must be a three-letter ISO 4217 code in capitals (USD, EUR)")
    if type(obj.get("price")) not in (int, float):  # bool is not a number here
        raise Invalid("price: must be a number")
    quantity = obj.get("quantity")
    if quantity is not None and (type(quantity) is not int or not 1 <= quantity <= 100):
        raise Invalid("quantity: must be an integer from 1 to 100")
    if "time" not in made_times or type(obj.get("time")) is not str:
        _check_time(obj)
    _check_properties(obj)


def _check_time(obj: dict[str, Any], key: str = "time") -> None:
    """An event's or purchase's ``time`` (or an attributes object's session date): ISO 8601 or
    Braze's ``yyyy-MM-dd'T'HH:mm:ss:SSSZ``. Without an offset Braze reads the time as UTC, as
    Braze's own Cloud Data Ingestion samples write it (``2024-04-02T14:34:08``)."""
    value = obj.get(key)
    if value is None:
        raise Invalid(f"{key}: is required")
    if type(value) is not str:
        raise Invalid(f"{key}: must be an ISO 8601 string")
    if _ISO_TIME.fullmatch(value):
        text = value.replace(",", ".")
    elif braze := _BRAZE_TIME.fullmatch(value):
        text = braze.group(1)
    else:
        raise Invalid(f"{key}: is not an ISO 8601 datetime (yyyy-MM-ddTHH:mm:ss with an optional offset)")
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{key}: is not a real date and time") from None


_SESSION_DATES = ("date_of_first_session", "date_of_last_session")
_DOB = re.compile(r"\d{4}-\d{2}-\d{2}")


def _check_attribute_dates(obj: dict[str, Any], made_times: Container[str] = ()) -> None:
    """The standard attributes Braze documents as dates: ``dob`` as ``YYYY-MM-DD``, the session
    dates as event times. null unsets them. Custom attributes are not checked: a string in any
    form is a string attribute to Braze."""
    dob = obj.get("dob")
    if dob is not None:
        if type(dob) is not str or not _DOB.fullmatch(dob):
            raise Invalid("dob: must be a date written YYYY-MM-DD")
        try:
            datetime.strptime(dob, "%Y-%m-%d")
        except ValueError:
            raise Invalid("dob: is not a real date") from None
    for key in _SESSION_DATES:
        value = obj.get(key)
        if value is not None and not (key in made_times and type(value) is str) and not _session_date(value):
            raise Invalid(
                f"{key}: must be a date in a form Braze documents (ISO 8601, yyyy-MM-dd HH:mm:ss, "
                "yyyy-MM-dd, MM/dd/yyyy or ddd MM dd HH:mm:ss.TZD YYYY)"
            )


_SESSION_FORMS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%m/%d/%Y")
_SESSION_LONG = re.compile(r"[A-Za-z]{3} \d{2} \d{2} \d{2}:\d{2}:\d{2}\.\S+ \d{4}")


def _session_date(value: Any) -> bool:
    """Whether a session date is in one of the forms Braze's user attributes object lists."""
    if type(value) is not str:
        return False
    try:
        _check_time({"t": value}, "t")
        return True
    except Invalid:
        pass
    for form in _SESSION_FORMS:
        try:
            datetime.strptime(value, form)
            return True
        except ValueError:
            continue
    return bool(_SESSION_LONG.fullmatch(value))


def _check_properties(obj: dict[str, Any]) -> None:
    props = obj.get("properties")
    if props is not None and not isinstance(props, dict):
        raise Invalid("properties: must be an object")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "value"

"""Kinds by folder, and Braze Cloud Data Ingestion rows made into /users/track objects.

Under the incoming prefix, the folder a file lies in fixes the kind of every row in it:

- ``attributes/``, ``events/``, ``purchases/``: that kind, never guessed from the row's keys;
- ``dry-run/`` before any of these (or alone): read, checked and counted, nothing sent;
- ``catalogs/<catalog_name>/``: items of that catalog, sent to its asynchronous item endpoints
  (PUT replaces or creates an item; a row with ``DELETED`` true deletes it);
- ``user-deletes/``: identifier-only rows sent to ``/users/delete`` (only where the setting allows);
- anywhere else (files directly under the prefix): each object's kind is inferred from its keys.

In a kind folder a row is a Braze object, or a Cloud Data Ingestion (CDI) row: identifier
column(s) in any letter case (``EXTERNAL_ID``, ``ALIAS_NAME`` + ``ALIAS_LABEL``, ``BRAZE_ID``,
``EMAIL``, ``PHONE``) and ``PAYLOAD``, the Braze object without its identifier as a JSON string
(or a JSON object, in JSON files). Reasons name columns and rules, never values.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from .columnar import TypedRow
from .endpoints import CATALOG_DELETE, CATALOG_UPSERT
from .objects import Invalid, Kind, _json_type, check
from .ports import Group, UnreadableInput
from .reader import Element

FOLDER_KINDS = {"attributes": Kind.ATTRIBUTES, "events": Kind.EVENT, "purchases": Kind.PURCHASE}
DRY_RUN = "dry-run"
CATALOGS = "catalogs"
USER_DELETES = "user-deletes"
# Braze's rule for catalog names and item ids: letters, digits, hyphens and underscores, up to 250.
_BRAZE_NAME = re.compile(r"[A-Za-z0-9_-]{1,250}")

# CDI's identifier columns (casefolded) and what each becomes in a Braze object.
CDI_IDENTIFIERS = ("external_id", "braze_id", "email", "phone")
CDI_ALIAS = ("alias_name", "alias_label")
CDI_PAYLOAD = "payload"
CDI_IGNORED = ("updated_at",)  # a warehouse table's sync column: file storage syncs do not use it
CDI_COLUMNS = frozenset((*CDI_IDENTIFIERS, *CDI_ALIAS, CDI_PAYLOAD, *CDI_IGNORED))
_PRIMARY = ("external_id", "braze_id", "user_alias")


@dataclass(frozen=True, slots=True)
class Route:
    """What a file's folder says about it."""

    kind: str | None = None  # a Kind; None: inferred per object, as for files directly under incoming/
    dry_run: bool = False
    refused: str | None = None  # why files in this folder are not imported
    catalog: str | None = None  # catalogs/<name>/: the catalog its items go to
    user_deletes: bool = False  # user-deletes/: identifiers of users to delete

    @property
    def group(self) -> Group:
        """The endpoint group the folder's rows go to (whose rate limit the run shares)."""
        if self.catalog is not None:
            return Group.CATALOG
        return Group.USER_DELETE if self.user_deletes else Group.TRACK


def route_for(relative_key: str) -> Route:
    """The route of a key relative to the incoming prefix (``events/day-1.jsonl``). Empty and ``.``
    segments are no folders (``incoming//events/``); a folder written near a reserved name
    (``Events``, ``User-Deletes``, a look-alike hyphen) is refused: a guess could send a dry run or
    a delete file as attributes."""
    parts = [p for p in relative_key.split("/")[:-1] if p not in ("", ".")]  # the folders, not the file
    if parts and parts[0] != DRY_RUN and _loose(parts[0]) == _loose(DRY_RUN):
        return Route(None, False, _near(parts[0], DRY_RUN))
    dry_run = bool(parts) and parts[0] == DRY_RUN
    if dry_run:
        parts = parts[1:]
    # dry-run/ counts only first: a deeper one (user-deletes/dry-run/) would be a real run, so refuse it.
    if any(_loose(p) == _loose(DRY_RUN) for p in parts):
        return Route(None, dry_run, "a dry-run/ folder counts only directly under the incoming prefix "
                     "(incoming/dry-run/<folder>/...); move the file there; nothing was sent")  # fmt: skip
    if not parts:
        return Route(None, dry_run)
    top = parts[0]
    near = next((name for name in RESERVED if top != name and _loose(top) == _loose(name)), None)
    if near is not None:
        return Route(None, dry_run, _near(top, near))
    if top == USER_DELETES:
        return Route(None, dry_run, user_deletes=True)
    if top == CATALOGS:
        if len(parts) < 2:
            return Route(None, dry_run, "a catalog's file lies in catalogs/<catalog name>/ (the folder names the "
                         "catalog); nothing was sent")  # fmt: skip
        name = parts[1]
        if not _BRAZE_NAME.fullmatch(name):
            return Route(None, dry_run, f"the folder {name!r} under catalogs/ is no Braze catalog name (letters, "
                         "digits, hyphens and underscores, up to 250); nothing was sent", catalog=None)  # fmt: skip
        return Route(None, dry_run, catalog=name)
    return Route(FOLDER_KINDS.get(top), dry_run)


RESERVED = (*FOLDER_KINDS, DRY_RUN, CATALOGS, USER_DELETES)


def _loose(name: str) -> str:
    """A folder name as compared with the reserved ones: NFKC, case-folded, letters and digits only
    (dashes, underscores, spaces and dots dropped), without a plural's final ``s``: ``User_Deletes``,
    ``userdeletes``, ``user delete``, ``dry_run`` and ``catalog`` are all near a reserved name."""
    text = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in text if c.isalnum()).removesuffix("s")


def _near(folder: str, reserved: str) -> str:
    return (
        f"the folder {folder!r} is written like {reserved}/ but is not it (names are exact, lower case, with "
        f"a plain hyphen); move the file under {reserved}/ or rename the folder; nothing was sent"
    )


def shaped(elements: Iterable[Element], kind: str) -> Iterator[Element]:
    """Every element as an object of ``kind`` (CDI rows merged), or a reject saying why not.

    A Parquet or Avro row (:class:`TypedRow`) says what its reader knows of every row: that none
    can be a CDI row (no PAYLOAD column), and which times it wrote itself (not matched again)."""
    for element in elements:
        if element.error is None and not element.skipped:
            value = element.value
            try:
                if isinstance(element, TypedRow):
                    if element.may_be_cdi and type(value) is dict and is_cdi_row(value):
                        value = from_cdi_row(value)  # its fields come from the payload: all checked
                        check(value, kind)
                    else:
                        check(value, kind, element.made_times)
                else:
                    value = as_object(value, kind)
                element.kind, element.value = kind, value
            except Invalid as exc:
                element.value = None
                element.error = exc.reason
                element.error_source = "validation"
        yield element


def for_route(elements: Iterable[Element], route: Route) -> Iterable[Element]:
    """The elements as the route's folder makes them (JSON rows; CSV rows are made by their reader)."""
    if route.catalog is not None:
        return catalog_rows(elements)
    if route.user_deletes:
        return converted(elements, delete_identifier)
    if route.kind is not None:
        return shaped(elements, route.kind)
    return elements


def converted(elements: Iterable[Element], convert: Callable[[Any], tuple[str, Any]]) -> Iterator[Element]:
    """Every element made by ``convert`` into (kind, what to send), or a reject saying why not."""
    for element in elements:
        _convert(element, convert)
        yield element


def _convert(element: Element, convert: Callable[[Any], tuple[str, Any]]) -> None:
    """Make a readable element into (kind, what to send) by ``convert``, or a reject saying why not."""
    if element.error is None and not element.skipped:
        try:
            element.kind, element.value = convert(element.value)
        except Invalid as exc:
            element.value = None
            element.error = exc.reason
            element.error_source = "validation"


# -- catalogs ---------------------------------------------------------------------------------

CDI_CATALOG_COLUMNS = frozenset(("id", "payload", "deleted", *CDI_IGNORED))
_TRUE = frozenset(("true", "t", "yes", "y", "1"))
_FALSE = frozenset(("false", "f", "no", "n", "0", ""))


def catalog_rows(elements: Iterable[Element]) -> Iterator[Element]:
    """The rows of a catalog's folder as (upsert or delete, the item). A Parquet or Avro file is
    read one way for all its rows, decided by its columns as a CSV file's header decides it
    (:func:`csv_types.catalog_schema`): with PAYLOAD or DELETED, a Cloud Data Ingestion file (any
    other column refused); else one of item fields. A row is never read by its own keys there: a
    null column is left out of the row, which would make rows of one file read differently."""
    readings: dict[type, Callable[[Any], tuple[str, Any]]] = {}
    for element in elements:
        if isinstance(element, TypedRow) and element.columns is not None:
            convert = readings.get(type(element))
            if convert is None:
                convert = readings[type(element)] = _catalog_reading(element.columns)
        else:
            convert = catalog_item
        _convert(element, convert)
        yield element


def _catalog_reading(columns: tuple[str, ...]) -> Callable[[Any], tuple[str, Any]]:
    """How every row of a file with these columns is read, or the file refused as a CSV header is."""
    from .csv_types import CatalogCdiSchema, HeaderError, catalog_schema  # csv_types imports this module

    try:
        schema = catalog_schema(list(columns))
    except HeaderError as exc:
        raise UnreadableInput(0, f"{exc}; nothing of the file was sent") from None
    return catalog_cdi_row if isinstance(schema, CatalogCdiSchema) else catalog_fields


def catalog_fields(value: Any) -> tuple[str, dict[str, Any]]:
    """(CATALOG_UPSERT, the item) of a row of item fields."""
    if type(value) is not dict:
        raise Invalid(f"a catalog item is a JSON object, not a JSON {_json_type(value)}")
    _check_item_id(value.get("id"), "id")
    return CATALOG_UPSERT, value


def catalog_item(value: Any) -> tuple[str, dict[str, Any]]:
    """(CATALOG_UPSERT or CATALOG_DELETE, the item) a row of a catalog's folder stands for: a Braze
    item object (``id`` and its fields), or a CDI row (``ID``, ``PAYLOAD``, optional ``DELETED``,
    any letter case). Raises :class:`Invalid`.

    An item object whose only fields are ``payload`` or ``deleted`` reads as a CDI row."""
    if type(value) is not dict:
        raise Invalid(f"a catalog item is a JSON object, not a JSON {_json_type(value)}")
    if (
        value
        and all(type(k) is str and k.casefold() in CDI_CATALOG_COLUMNS for k in value)
        and any(k.casefold() in ("payload", "deleted") for k in value)
    ):
        return catalog_cdi_row(value)
    item_id = value.get("id")
    _check_item_id(item_id, "id")
    return CATALOG_UPSERT, value


def catalog_cdi_row(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(CATALOG_UPSERT or CATALOG_DELETE, the item) of a CDI catalog row: ``ID``, ``PAYLOAD`` and
    ``DELETED`` in any letter case (``UPDATED_AT`` ignored). Raises :class:`Invalid`."""
    columns: dict[str, tuple[str, Any]] = {}
    for column, value in row.items():
        name = column.casefold()
        if name in columns:
            raise Invalid(f"{columns[name][0]} and {column}: the same column twice, in different letter case")
        columns[name] = (column, value)
    if "id" not in columns:
        raise Invalid("no ID: a catalog row names its item by an ID column")
    id_column, item_id = columns["id"]
    _check_item_id(item_id, id_column)
    if "deleted" in columns and _deleted(*columns["deleted"]):
        return CATALOG_DELETE, {"id": item_id}
    payload = _payload_object(columns.get("payload", ("PAYLOAD", None))[1])
    written = payload.get("id")
    if written is not None and written != item_id:
        raise Invalid(f"PAYLOAD: its id and the row's {id_column} name different items")
    return CATALOG_UPSERT, {"id": item_id, **{k: v for k, v in payload.items() if k != "id"}}


def _check_item_id(item_id: Any, column: str) -> None:
    if item_id is None or item_id == "":
        raise Invalid(f"{column}: missing; every catalog item needs an id")
    if type(item_id) is not str:
        raise Invalid(f"{column}: must be a string, not a JSON {_json_type(item_id)}")
    if not _BRAZE_NAME.fullmatch(item_id):
        raise Invalid(f"{column}: a catalog item id is letters, digits, hyphens and underscores, up to 250")


def _deleted(column: str, value: Any) -> bool:
    if value is None or type(value) is bool:
        return bool(value)
    if type(value) is int and value in (0, 1):
        return bool(value)
    if type(value) is str and value.strip().casefold() in _TRUE | _FALSE:
        return value.strip().casefold() in _TRUE
    raise Invalid(f"{column}: must be true or false")


# -- user deletes -----------------------------------------------------------------------------

# A Braze identifier (CDI column, casefolded) -> the /users/delete array it goes in.
DELETE_ARRAY_OF = {
    "external_id": "external_ids",
    "braze_id": "braze_ids",
    "user_alias": "user_aliases",
    "email": "email_addresses",
    "phone": "phone_numbers",
}
_DELETE_ONLY = "a delete row carries only its identifier"


def delete_identifier(value: Any) -> tuple[str, Any]:
    """(the /users/delete array, the identifier) of a row of ``user-deletes/``: a Braze object with
    exactly one identifier (``external_id``, ``braze_id``, ``user_alias``, ``email`` or ``phone``),
    or a CDI row of identifier column(s) with no (or an empty) PAYLOAD. Raises :class:`Invalid`."""
    if type(value) is not dict:
        raise Invalid(f"a delete row is a JSON object, not a JSON {_json_type(value)}")
    ids: dict[str, tuple[str, Any]] = {}
    for column, cell in value.items():
        name = column.casefold() if type(column) is str else column
        if name == CDI_PAYLOAD:
            if cell not in (None, "", {}, "{}"):
                raise Invalid(f"{column}: {_DELETE_ONLY}; this row has a payload")
            continue
        if name in CDI_IGNORED or cell is None or cell == "":
            continue
        if name not in (*CDI_IDENTIFIERS, *CDI_ALIAS, "user_alias"):
            raise Invalid(f"{column}: {_DELETE_ONLY} (external_id, braze_id, user_alias, email or phone)")
        if name in ids:
            raise Invalid(f"{ids[name][0]} and {column}: the same column twice, in different letter case")
        ids[name] = (column, cell)
    if "user_alias" in ids:
        column, alias = ids.pop("user_alias")
        if ids:
            raise Invalid(f"more than one identifier ({column}, {', '.join(c for c, _ in ids.values())}): "
                          "a row names its user by one identifier")  # fmt: skip
        if (
            type(alias) is not dict
            or set(alias) != {"alias_name", "alias_label"}
            or not all(type(v) is str and v for v in alias.values())
        ):
            raise Invalid(f"{column}: a user alias is an object of alias_name and alias_label, both strings")
        return "user_aliases", alias
    key, identifier = _identifier(ids)
    if key == "user_alias":
        if not all(identifier.values()):
            raise Invalid("ALIAS_NAME and ALIAS_LABEL: a user alias needs both")
    elif identifier == "":
        raise Invalid(f"{ids[key][0]}: is empty")
    return DELETE_ARRAY_OF[key], identifier


def as_object(value: Any, kind: str) -> dict[str, Any]:
    """The Braze object a row of a ``kind`` folder stands for; raises :class:`Invalid`."""
    if type(value) is dict and is_cdi_row(value):
        value = from_cdi_row(value)
    check(value, kind)
    obj: dict[str, Any] = value
    return obj


def is_cdi_row(row: dict[str, Any]) -> bool:
    """A row holding PAYLOAD and otherwise only CDI's identifier columns (any letter case).

    A Braze object with a custom attribute called ``payload`` and nothing else but its identifier
    reads as a CDI row in a kind folder: put such objects in a file directly under incoming/."""
    has_payload = False
    for key in row:
        name = key.casefold() if type(key) is str else key
        if name not in CDI_COLUMNS:
            return False
        has_payload = has_payload or name == CDI_PAYLOAD
    return has_payload


def from_cdi_row(row: dict[str, Any]) -> dict[str, Any]:
    """One Braze object from a CDI row: the identifier column(s), then the payload's fields."""
    ids: dict[str, tuple[str, Any]] = {}  # casefolded column -> (column as written, value)
    payload: Any = None
    for column, value in row.items():
        name = column.casefold()
        if name == CDI_PAYLOAD:
            payload = value
        elif name in CDI_IGNORED or value is None or value == "":
            continue  # an empty cell: no identifier of that type on this row
        elif name in ids:
            raise Invalid(f"{ids[name][0]} and {column}: the same column twice, in different letter case")
        else:
            ids[name] = (column, value)
    obj = _payload_object(payload)
    key, identifier = _identifier(ids)
    for other in _PRIMARY:
        if other != key and obj.get(other) is not None:
            raise Invalid(
                f"PAYLOAD: its {other} and the row's identifier column may name different users; "
                "give the user by one identifier"
            )
    if key == "phone" and obj.get("email") is not None:
        # Without a primary identifier Braze finds the user by email before phone.
        raise Invalid(
            "PAYLOAD: its email would identify the user in place of the row's PHONE; give the user by one identifier"
        )
    written = obj.pop(key, None)
    if written is not None and written != identifier:
        raise Invalid(f"PAYLOAD: its {key} and the row's identifier column name different users")
    return {key: identifier, **obj}


def _payload_object(payload: Any) -> dict[str, Any]:
    if payload is None or payload == "":
        raise Invalid("PAYLOAD: is empty; it must be a JSON object")
    if type(payload) is str:
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise Invalid("PAYLOAD: is not valid JSON; it must be a JSON object") from None
    if type(payload) is not dict:
        raise Invalid(f"PAYLOAD: is a JSON {_json_type(payload)}; it must be a JSON object")
    return payload


def _identifier(ids: dict[str, tuple[str, Any]]) -> tuple[str, Any]:
    """The row's one identifier as (Braze key, value); raises :class:`Invalid`."""
    names = [ids[n][0] for n in (*CDI_IDENTIFIERS, *CDI_ALIAS) if n in ids]
    alias = [n for n in CDI_ALIAS if n in ids]
    kinds = [n for n in CDI_IDENTIFIERS if n in ids] + (["user_alias"] if alias else [])
    if not kinds:
        raise Invalid(
            "no identifier: one of EXTERNAL_ID, BRAZE_ID, EMAIL, PHONE, or ALIAS_NAME with ALIAS_LABEL is required"
        )
    if len(kinds) > 1:
        raise Invalid(f"more than one identifier ({', '.join(names)}): a row names its user by one identifier")
    if alias and len(alias) == 1:
        raise Invalid("ALIAS_NAME and ALIAS_LABEL: a user alias needs both")
    for name in (kinds[0],) if not alias else CDI_ALIAS:
        column, value = ids[name]
        if type(value) is not str:
            raise Invalid(f"{column}: must be a string")
    if alias:
        return "user_alias", {"alias_name": ids["alias_name"][1], "alias_label": ids["alias_label"][1]}
    return kinds[0], ids[kinds[0]][1]

"""Kinds by folder, and Braze Cloud Data Ingestion rows made into /users/track objects.

Under the incoming prefix, the folder a file lies in fixes the kind of every row in it:

- ``attributes/``, ``events/``, ``purchases/``: that kind, never guessed from the row's keys;
- ``dry-run/`` before any of these (or alone): read, checked and counted, nothing sent;
- ``catalogs/`` and ``user-deletes/``: other Braze endpoints, not imported by this version (a run
  there stops at once with that reason, sending nothing, rather than guessing kinds);
- anywhere else (files directly under the prefix): each object's kind is inferred from its keys.

In a kind folder a row is a Braze object, or a Cloud Data Ingestion (CDI) row: identifier
column(s) in any letter case (``EXTERNAL_ID``, ``ALIAS_NAME`` + ``ALIAS_LABEL``, ``BRAZE_ID``,
``EMAIL``, ``PHONE``) and ``PAYLOAD``, the Braze object without its identifier as a JSON string
(or a JSON object, in JSON files). Reasons name columns and rules, never values.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from .objects import Invalid, Kind, _json_type, check
from .reader import Element

FOLDER_KINDS = {"attributes": Kind.ATTRIBUTES, "events": Kind.EVENT, "purchases": Kind.PURCHASE}
DRY_RUN = "dry-run"
NOT_YET = ("catalogs", "user-deletes")  # Braze endpoints this version does not send to

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
    if not parts:
        return Route(None, dry_run)
    top = parts[0]
    near = next((name for name in RESERVED if top != name and _loose(top) == _loose(name)), None)
    if near is not None:
        return Route(None, dry_run, _near(top, near))
    if top in NOT_YET:
        return Route(
            None,
            dry_run,
            f"files under {top}/ go to Braze's {'catalog' if top == 'catalogs' else '/users/delete'} "
            "endpoints, which this version of the importer does not send to; nothing was sent",
        )
    return Route(FOLDER_KINDS.get(top), dry_run)


RESERVED = (*FOLDER_KINDS, DRY_RUN, *NOT_YET)


def _loose(name: str) -> str:
    """A folder name as compared with the reserved ones: NFKC, case-folded, every dash a hyphen."""
    text = unicodedata.normalize("NFKC", name).casefold().strip()
    return "".join("-" if unicodedata.category(c) == "Pd" else c for c in text)


def _near(folder: str, reserved: str) -> str:
    return (
        f"the folder {folder!r} is written like {reserved}/ but is not it (names are exact, lower case, with "
        f"a plain hyphen); move the file under {reserved}/ or rename the folder; nothing was sent"
    )


def shaped(elements: Iterable[Element], kind: str) -> Iterator[Element]:
    """Every element as an object of ``kind`` (CDI rows merged), or a reject saying why not."""
    for element in elements:
        if element.error is None and not element.skipped:
            try:
                element.value = as_object(element.value, kind)
            except Invalid as exc:
                element.value = None
                element.error = exc.reason
                element.error_source = "validation"
            else:
                element.kind = kind
        yield element


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

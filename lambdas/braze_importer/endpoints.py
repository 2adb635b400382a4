"""Braze's endpoints as the engine sends to them: which endpoint and body array each row goes to,
which rows must keep their file order, how a failed row is written to replay the same way, and
what an endpoint's answers mean (objects refused, objects already gone, a stop for the whole run).

The engine pumps rows to a :class:`Destination` and knows no endpoint's rules itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .ports import TRACK, USERS_DELETE, BrazeAnswer, Endpoint, Group, catalog_items

if TYPE_CHECKING:
    from .engine import Batch, Item

# Kinds of rows in a catalog's folder (the array of every catalog request is ``items``).
CATALOG_UPSERT = "catalog_upsert"  # PUT: creates or replaces the item, so a resent batch is harmless
CATALOG_DELETE = "catalog_delete"  # DELETE: the item's ``{"id"}``
# The arrays of /users/delete, one identifier type per request, and the identifier each holds.
DELETE_ARRAYS = ("external_ids", "braze_ids", "user_aliases", "email_addresses", "phone_numbers")
_IDENTIFIER_OF = dict(zip(DELETE_ARRAYS, ("external_id", "braze_id", "user_alias", "email", "phone"), strict=True))


class Destination:
    """/users/track: objects of several kinds in one request (attributes, events, purchases), no
    order kept between them (Braze keeps none either), objects refused by array and index."""

    group = Group.TRACK
    mixes_arrays = True  # one request may carry several arrays

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The endpoints a report names even when nothing was sent to them (the first one only)."""
        return (TRACK,)

    def route(self, kind: str, obj: Any) -> tuple[Endpoint, str, str | None]:
        """(endpoint, the body's array, the ordering key or None) of an object of ``kind``: rows
        with the same key reach Braze in file order."""
        return TRACK, kind, None

    def replayable(self, item: Item) -> dict[str, Any]:
        """The failed file's line for an item: a row that, copied back into the folder it came
        from, is sent the same way again: the object as read (not the delta sent of it: a replay
        is diffed against the records as they are then)."""
        obj: dict[str, Any] = item.element.value
        return obj

    def refused(self, batch: Batch, answer: BrazeAnswer) -> dict[int, str]:
        """The objects Braze's ``errors[]`` names as refused, by element index, with its reason."""
        refused: dict[int, str] = {}
        for error in _errors(answer):
            if "input_array" in error:
                item = batch.locate(str(error.get("input_array", "")), _int(error.get("index")))
                if item is not None:
                    refused[item.index] = str(error.get("type") or "rejected by Braze")
        return refused

    def absent(self, batch: Batch, answer: BrazeAnswer) -> set[int]:
        """Objects the answer names as already gone, which settles them (a delete's target)."""
        return set()

    def stop(self, batch: Batch, answer: BrazeAnswer) -> tuple[str, dict[str, Any]] | None:
        """(stop reason, error) when the answer means no request of the run can succeed."""
        return None


class CatalogDestination(Destination):
    """A catalog's asynchronous item endpoints: PUT replaces or creates items, DELETE deletes
    them; 50 a request, never both in one. Rows with the same item id reach Braze in file order.
    Braze names refused items by id (``parameters`` / ``parameter_values``); a DELETE of an item
    it does not have is done; a 404 that names no item is a catalog that does not exist."""

    group = Group.CATALOG
    mixes_arrays = False

    def __init__(self, catalog: str) -> None:
        self.catalog = catalog
        self.put = catalog_items(catalog, "PUT")
        self.delete = catalog_items(catalog, "DELETE")

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return (self.put, self.delete)

    def route(self, kind: str, obj: Any) -> tuple[Endpoint, str, str | None]:
        return (self.delete if kind == CATALOG_DELETE else self.put), "items", str(obj["id"])

    def replayable(self, item: Item) -> dict[str, Any]:
        # A delete's item is its bare {"id"}: as a row that alone would replace the item with an empty one.
        return {"ID": item.obj["id"], "DELETED": True} if item.endpoint.method == "DELETE" else dict(item.obj)

    def refused(self, batch: Batch, answer: BrazeAnswer) -> dict[int, str]:
        refused: dict[int, str] = {}
        for error in _errors(answer):
            if _not_found(batch, error):
                continue
            reason = _catalog_reason(error)
            for item in _named_items(batch, error):
                refused.setdefault(item.index, reason)
        return refused

    def absent(self, batch: Batch, answer: BrazeAnswer) -> set[int]:
        return {
            item.index for error in _errors(answer) if _not_found(batch, error) for item in _named_items(batch, error)
        }

    def stop(self, batch: Batch, answer: BrazeAnswer) -> tuple[str, dict[str, Any]] | None:
        if answer.status != 404 or self.absent(batch, answer):
            return None
        message = (
            f"Braze has no catalog named {self.catalog!r} ({braze_message(answer, 'not found (404)')}); the "
            "importer never creates a catalog: create it in Braze with the fields of its items, then resume the run"
        )
        return "catalog_not_found", {"message": message}


class UserDeleteDestination(Destination):
    """/users/delete: up to 50 identifiers of one type a request (the array is the row's kind)."""

    group = Group.USER_DELETE
    mixes_arrays = False

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return (USERS_DELETE,)

    def route(self, kind: str, obj: Any) -> tuple[Endpoint, str, str | None]:
        return USERS_DELETE, kind, None

    def replayable(self, item: Item) -> dict[str, Any]:
        return {_IDENTIFIER_OF[item.kind]: item.obj}  # {"external_id": "u1"}, not the bare "u1"


def _errors(answer: BrazeAnswer) -> list[dict[str, Any]]:
    errors = answer.body.get("errors")
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _named_items(batch: Batch, error: dict[str, Any]) -> list[Item]:
    """The items of a catalog request an error names by id."""
    params, values = error.get("parameters"), error.get("parameter_values")
    if not isinstance(params, list) or not isinstance(values, list):
        return []
    ids = {str(v) for p, v in zip(params, values, strict=False) if p in ("id", "item_id", "items")}
    if not ids and "id" in params:  # one "id" parameter naming several values
        ids = {str(v) for v in values}
    return [item for item in batch.items if item.key in ids]


def _not_found(batch: Batch, error: dict[str, Any]) -> bool:
    return batch.endpoint.method == "DELETE" and "not-found" in str(error.get("id", ""))


def _catalog_reason(error: dict[str, Any]) -> str:
    code, message = error.get("id"), error.get("message")
    text = " ".join(str(part) for part in (code, message) if part)
    return text or "rejected by Braze"


def braze_message(answer: BrazeAnswer, default: str) -> str:
    """A reason from Braze's answer: its first error, or its message, else ``default``."""
    errors = _errors(answer)
    if errors and errors[0].get("type"):
        return f"Braze: {errors[0]['type']}"
    if errors and errors[0].get("id"):
        return f"Braze: {_catalog_reason(errors[0])}"
    message = answer.body.get("message")
    return f"Braze: {message}" if isinstance(message, str) and message else default


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1

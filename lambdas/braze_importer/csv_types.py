"""From a CSV row to a /users/track attributes object: the identifier column, then every other
cell typed with the rules of Braze's own CSV importer, or cast per column.

Inference (no cast for the column):

- an empty cell: the attribute is left out (no data point spent)
- ``null`` in any case: JSON null, which unsets the attribute
- an integer: int, unless it has a leading zero (``007`` stays a string; ``0`` is 0)
- a decimal: float, unless its integer part has a leading zero (``00.5`` stays a string)
- ``true`` / ``false`` in any case: boolean
- ``[...]`` that reads as a list literal of strings, numbers and booleans: an array
- anything else: the string as written

Identifier values, ``email`` and ``phone`` are always strings as written. Reasons name the column
and the rule, never the value (values may be personal data).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pipeline_common.names import loose_name

from .objects import Invalid
from .rows import (
    CDI_ALIAS,
    CDI_COLUMNS,
    CDI_IDENTIFIERS,
    CDI_IGNORED,
    CDI_PAYLOAD,
    catalog_cdi_row,
    catalog_item,
    delete_identifier,
)

# In the order they are looked for; the first one in the header identifies the user.
IDENTIFIER_COLUMNS = ("external_id", "braze_id", "user_alias_name", "email", "phone")
ALIAS_COLUMNS = ("user_alias_name", "user_alias_label")
ID_KINDS = ("external_id", "braze_id", "email", "phone")  # a configured identifier column named so sends as that
_ALWAYS_STRING = frozenset(("email", "phone"))
CAST_TYPES = ("string", "integer", "float", "boolean")

_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_MISSING = object()
_CACHE_SIZE = 1 << 16
_INT_RANGE = (-(1 << 63), 1 << 64)
_INFINITE = (float("inf"), float("-inf"))


def typed(cells: list[str], width: int, row_of: Callable[[list[str]], Any]) -> tuple[Any, str | None]:
    """The row's value by the header's schema (None: nothing but its identifier), or why it has none."""
    if len(cells) != width:
        return None, f"row has {len(cells)} fields, the header has {width}"
    try:
        return row_of(cells), None
    except Invalid as exc:
        return None, exc.reason


class HeaderError(ValueError):
    """The header cannot be imported: no identifier column, a column without a name, a repeat."""


def infer(cell: str) -> Any:
    """The typed value of a non-empty cell."""
    first = cell[0]
    if cell.isdigit() and cell.isascii() and len(cell) < 19:  # the common number: a plain integer
        return int(cell) if first != "0" or len(cell) == 1 else cell
    if first in "-0123456789":
        if _INT.fullmatch(cell):
            if len(cell) < 19:
                return int(cell)
            value = int(cell) if len(cell) < 4000 else None
            # Beyond 64 bits a number cannot be sent as one: keep the digits as written.
            return value if value is not None and _INT_RANGE[0] <= value < _INT_RANGE[1] else cell
        if _FLOAT.fullmatch(cell):
            number = float(cell)
            return number if number not in _INFINITE else cell
        return cell
    if len(cell) in (4, 5):
        low = cell.lower()
        if low == "true":
            return True
        if low == "false":
            return False
        if low == "null":
            return None
    if first == "[" and cell[-1] == "]":
        return _list_literal(cell)
    return cell


def _list_literal(cell: str) -> Any:
    try:
        value = ast.literal_eval(cell)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return cell
    # Only what Braze can take: 64-bit integers and finite numbers (a bigger one stays written).
    if type(value) is list and all(
        type(v) in (str, bool)
        or (type(v) is int and _INT_RANGE[0] <= v < _INT_RANGE[1])
        or (type(v) is float and v not in _INFINITE and v == v)
        for v in value
    ):
        return value
    return cell


def _to_integer(value: Any) -> Any:
    if value is None or type(value) is int:
        return value
    if type(value) is float:
        number = int(value)  # toward zero: 3.7 -> 3, -3.7 -> -3
        if not _INT_RANGE[0] <= number < _INT_RANGE[1]:
            raise ValueError("integer")
        return number
    if type(value) is bool:
        return int(value)
    if type(value) is str and _NUMBER.fullmatch(value) and len(value) < 19:
        return int(value.partition(".")[0])  # 007 -> 7, 00.5 -> 0
    raise ValueError("integer")


def _to_float(value: Any) -> Any:
    if value is None or type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    if type(value) is str and _NUMBER.fullmatch(value) and float(value) not in _INFINITE:
        return float(value)
    raise ValueError("float")


def _to_boolean(value: Any) -> Any:
    if value is None or type(value) is bool:
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise ValueError("boolean")


_CASTS: dict[str, Callable[[Any], Any]] = {"integer": _to_integer, "float": _to_float, "boolean": _to_boolean}


def parse_cast_spec(spec: str) -> dict[str, str]:
    """``zip=string,one_or_zero=boolean`` -> ``{"zip": "string", "one_or_zero": "boolean"}``."""
    casts: dict[str, str] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        column, sep, kind = part.partition("=")
        column, kind = column.strip(), kind.strip().lower()
        if not sep or not column:
            raise ValueError(f"type cast {part!r}: write column=type")
        if kind not in CAST_TYPES:
            raise ValueError(f"type cast for {column!r}: the type must be one of {', '.join(CAST_TYPES)}")
        if column in casts:
            raise ValueError(f"type cast for {column!r} is given twice")
        casts[column] = kind
    return casts


@dataclass(frozen=True, slots=True)
class Schema:
    """How the cells of a row become an object, decided once from the header."""

    columns: tuple[str, ...]
    identifier: str  # external_id, braze_id, email, phone or user_alias
    id_positions: tuple[int, ...]  # one position, or (name, label) for a user alias
    attributes: tuple[tuple[int, str, str | None], ...]  # (position, name, cast or "string" or None)
    kinded: ClassVar[bool] = False  # a row is its object, of the file's one kind
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_header(
        cls,
        columns: list[str],
        casts: Mapping[str, str] | None = None,
        *,
        id_column: str | None = None,
        ignore: Collection[str] = (),
    ) -> Schema:
        """``id_column`` names the column that identifies the user instead of the first identifier
        column found (its values go as that identifier when it is named like one, else as
        ``external_id``); ``ignore`` lists columns never sent (CI360's ``identity_id``)."""
        casts = casts or {}
        names = tuple(columns)
        for i, name in enumerate(names):
            if not name:
                raise HeaderError(f"column {i + 1} of the header has no name")
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise HeaderError(f"column {name!r} appears twice in the header")
            seen.add(name)
        # However the producer wrote the name (case, spaces, underscores, invisible characters).
        loose_ignore = {loose_name(c) for c in ignore}
        skipped = {i for i, c in enumerate(names) if c != id_column and loose_name(c) in loose_ignore}
        seen -= {names[i] for i in skipped}
        taken: tuple[str, ...]
        if id_column is not None:
            if id_column not in seen:
                raise HeaderError(f"the header has no {id_column} column, the configured identifier column")
            identifier = id_column if id_column in ID_KINDS else "external_id"
            ident, taken = id_column, (id_column,)
        else:
            if ("user_alias_name" in seen) != ("user_alias_label" in seen):
                raise HeaderError("a user alias needs both user_alias_name and user_alias_label columns")
            if "external_id" in seen and "braze_id" in seen:
                raise HeaderError("the header has both external_id and braze_id: keep one identifier column")
            found = next((c for c in IDENTIFIER_COLUMNS if c in seen), None)
            if found is None:
                raise HeaderError(
                    "the header has no identifier column: add external_id, braze_id, email, phone, "
                    "or user_alias_name with user_alias_label"
                )
            ident = found
            if ident == "user_alias_name":
                identifier, taken = "user_alias", ALIAS_COLUMNS
            else:
                identifier, taken = ident, (ident,)
        id_positions = tuple(names.index(c) for c in taken)
        attributes = []
        for i, name in enumerate(names):
            if i in id_positions or i in skipped:
                continue
            if name in ("external_id", "braze_id", "user_alias", *ALIAS_COLUMNS):
                # Only one identifier may reach Braze: a second kind is not an attribute.
                raise HeaderError(f"the header has both {ident} and {name}: keep one identifier column")
            attributes.append((i, name, "string" if name in _ALWAYS_STRING else casts.get(name)))
        return cls(names, identifier, id_positions, tuple(attributes))

    def row(self, cells: list[str]) -> dict[str, Any] | None:
        """The object for a row, None when it holds nothing but the identifier; raises
        :class:`Invalid` when the identifier is empty or a cast does not apply."""
        if self.identifier == "user_alias":
            name, label = cells[self.id_positions[0]], cells[self.id_positions[1]]
            if not name or not label:
                raise Invalid("no identifier: user_alias_name and user_alias_label are both required")
            obj: dict[str, Any] = {"user_alias": {"alias_name": name, "alias_label": label}}
        else:
            ident = cells[self.id_positions[0]]
            if not ident:
                raise Invalid(f"no identifier: {self.identifier} is empty")
            obj = {self.identifier: ident}
        cache = self._cache
        for i, name, cast in self.attributes:
            cell = cells[i]
            if not cell:
                continue
            if cast is None:
                # Columns repeat their values (tiers, flags, cities): each distinct cell is typed once.
                value = cache.get(cell, _MISSING)
                if value is _MISSING:
                    value = infer(cell)
                    if type(value) is not list:  # a list is mutable: never shared between objects
                        if len(cache) >= _CACHE_SIZE:
                            cache.clear()
                        cache[cell] = value
                obj[name] = value
            elif cast == "string":
                obj[name] = cell
            elif cast == "integer" and _NUMBER.fullmatch(cell):
                # From the written digits, not through a float: 9007199254740993.5 -> 9007199254740993.
                number = int(cell.partition(".")[0])
                if not _INT_RANGE[0] <= number < _INT_RANGE[1]:
                    raise Invalid(f"{name}: cannot be cast to integer (beyond 64 bits)")
                obj[name] = number
            else:
                try:
                    obj[name] = _CASTS[cast](infer(cell))
                except ValueError:
                    raise Invalid(f"{name}: cannot be cast to {cast}") from None
        return obj if len(obj) > 1 else None


# Braze Cloud Data Ingestion's columns (compared casefolded), as the folder rules define them:
# identifiers, PAYLOAD, and a warehouse table's UPDATED_AT, which a file sync does not use.
_CDI_IDS = frozenset((*CDI_IDENTIFIERS, *CDI_ALIAS))


def is_cdi_header(columns: list[str]) -> bool:
    """A header with a PAYLOAD column (any letter case): a Cloud Data Ingestion file."""
    return any(c.casefold() == CDI_PAYLOAD for c in columns)


@dataclass(frozen=True, slots=True)
class CdiSchema:
    """A Cloud Data Ingestion CSV: each row is its non-empty cells by column name, untyped (the
    identifier is a string as written, PAYLOAD a JSON string), made into a Braze object by the
    folder's rules (``rows.from_cdi_row``)."""

    columns: tuple[str, ...]
    kinded: ClassVar[bool] = False

    @classmethod
    def from_header(cls, columns: list[str]) -> CdiSchema:
        seen: set[str] = set()
        for i, name in enumerate(columns):
            if not name:
                raise HeaderError(f"column {i + 1} of the header has no name")
            folded = name.casefold()
            if folded in seen:
                raise HeaderError(f"column {name!r} appears twice in the header (letter case aside)")
            seen.add(folded)
            if folded not in CDI_COLUMNS:
                raise HeaderError(
                    f"column {name!r}: a Cloud Data Ingestion file (it has a PAYLOAD column) holds only "
                    "identifier columns (EXTERNAL_ID, BRAZE_ID, EMAIL, PHONE, ALIAS_NAME with ALIAS_LABEL) "
                    "and PAYLOAD; put other fields inside PAYLOAD"
                )
        _check_identifier_columns(seen, "the header has PAYLOAD but no identifier column")
        return cls(tuple(columns))

    def row(self, cells: list[str]) -> dict[str, Any]:
        # An empty PAYLOAD stays: the row is a reject saying so, never an identifier sent alone.
        return {
            name: cell for name, cell in zip(self.columns, cells, strict=True) if cell or name.casefold() == CDI_PAYLOAD
        }


def _names(columns: list[str]) -> set[str]:
    """The header's casefolded names; raises :class:`HeaderError` for a nameless or repeated column."""
    seen: set[str] = set()
    for i, name in enumerate(columns):
        if not name:
            raise HeaderError(f"column {i + 1} of the header has no name")
        folded = name.casefold()
        if folded in seen:
            raise HeaderError(f"column {name!r} appears twice in the header (letter case aside)")
        seen.add(folded)
    return seen


_CATALOG_CDI = frozenset(("id", CDI_PAYLOAD, "deleted", *CDI_IGNORED))
_CATALOG_HEADER = (
    "a catalog CSV is either Braze Cloud Data Ingestion's (ID, PAYLOAD with the item's fields as a JSON "
    "object, optional DELETED and UPDATED_AT) or one of item fields (id, then one column per field)"
)


def catalog_schema(columns: list[str], casts: Mapping[str, str] | None = None) -> CatalogCdiSchema | CatalogSchema:
    """The schema of a CSV file in ``catalogs/<name>/``: a CDI file when the header has PAYLOAD or
    DELETED (any letter case), else one column per item field."""
    seen = _names(columns)
    if "id" not in seen:
        raise HeaderError(f"the header has no ID column: {_CATALOG_HEADER}")
    if seen & {CDI_PAYLOAD, "deleted"}:
        return CatalogCdiSchema.from_header(columns, seen)
    return CatalogSchema.from_header(columns, casts)


@dataclass(frozen=True, slots=True)
class CatalogCdiSchema:
    """A Cloud Data Ingestion catalog CSV: each row is (upsert or delete, the item), by the same
    rules as a JSON row (``rows.catalog_cdi_row``): ``ID`` a string as written, ``PAYLOAD`` a
    JSON object, ``DELETED`` true or false (empty: false)."""

    columns: tuple[str, ...]
    kinded: ClassVar[bool] = True  # a row is (kind, what to send): each row says whether it upserts or deletes

    @classmethod
    def from_header(cls, columns: list[str], seen: set[str]) -> CatalogCdiSchema:
        for name in columns:
            if name.casefold() not in _CATALOG_CDI:
                raise HeaderError(
                    f"column {name!r}: a Cloud Data Ingestion catalog file (it has a PAYLOAD or DELETED column) "
                    "holds only ID, PAYLOAD, DELETED and UPDATED_AT; put the item's fields inside PAYLOAD, or drop "
                    "PAYLOAD and DELETED and give one column per field"
                )
        return cls(tuple(columns))

    def row(self, cells: list[str]) -> tuple[str, dict[str, Any]]:
        # Every cell stays, empty ones too: an empty ID or PAYLOAD is a reject saying so.
        return catalog_cdi_row(dict(zip(self.columns, cells, strict=True)))


@dataclass(frozen=True, slots=True)
class CatalogSchema:
    """A catalog CSV of item fields: ``id`` (any letter case) a string as written, every other
    non-empty cell typed as an attribute's (or cast per column): the fields are typed by an
    attributes :class:`Schema` whose identifier is the id column."""

    columns: tuple[str, ...]
    fields: Schema
    kinded: ClassVar[bool] = True

    @classmethod
    def from_header(cls, columns: list[str], casts: Mapping[str, str] | None = None) -> CatalogSchema:
        casts = casts or {}
        id_position = next(i for i, name in enumerate(columns) if name.casefold() == "id")
        attributes = tuple(
            (i, name, "string" if name in _ALWAYS_STRING else casts.get(name))
            for i, name in enumerate(columns)
            if i != id_position
        )
        # The id goes under the key "", which no column has (a nameless column is refused), so a
        # field named like an identifier (external_id) stays a field.
        return cls(tuple(columns), Schema(tuple(columns), "", (id_position,), attributes))

    def row(self, cells: list[str]) -> tuple[str, dict[str, Any]]:
        item_id = cells[self.fields.id_positions[0]]
        item = {"id": item_id}
        fields = self.fields.row(cells) if item_id else None  # no id: the reject says so
        if fields is not None:
            del fields[""]
            item.update(fields)
        return catalog_item(item)


_DELETE_COLUMNS = frozenset((*CDI_IDENTIFIERS, *CDI_ALIAS, CDI_PAYLOAD, *CDI_IGNORED))


@dataclass(frozen=True, slots=True)
class DeleteSchema:
    """A CSV file in ``user-deletes/``: identifier column(s) in any letter case (EXTERNAL_ID,
    BRAZE_ID, EMAIL, PHONE, ALIAS_NAME with ALIAS_LABEL), and CDI's PAYLOAD and UPDATED_AT,
    allowed; each row is (the /users/delete array, the identifier) by the JSON rows' rules
    (``rows.delete_identifier``): one identifier a row, PAYLOAD empty."""

    columns: tuple[str, ...]
    kinded: ClassVar[bool] = True

    @classmethod
    def from_header(cls, columns: list[str]) -> DeleteSchema:
        seen = _names(columns)
        for name in columns:
            if name.casefold() not in _DELETE_COLUMNS:
                raise HeaderError(
                    f"column {name!r}: a user-deletes file holds only identifier columns (EXTERNAL_ID, BRAZE_ID, "
                    "EMAIL, PHONE, ALIAS_NAME with ALIAS_LABEL), one of them filled on each row; remove the others"
                )
        _check_identifier_columns(seen, "the header has no identifier column")
        return cls(tuple(columns))

    def row(self, cells: list[str]) -> tuple[str, Any]:
        return delete_identifier({name: cell for name, cell in zip(self.columns, cells, strict=True) if cell})


def _check_identifier_columns(seen: set[str], missing: str) -> None:
    """A CDI or user-deletes header (casefolded names) names a user: an identifier column, and both
    halves of an alias when it has either."""
    if not seen & _CDI_IDS:
        raise HeaderError(f"{missing}: add EXTERNAL_ID, BRAZE_ID, EMAIL, PHONE, or ALIAS_NAME with ALIAS_LABEL")
    if ("alias_name" in seen) != ("alias_label" in seen):
        raise HeaderError("a user alias needs both ALIAS_NAME and ALIAS_LABEL columns")

"""A local Braze REST API with the limits and failures of the real one, and the state Braze would hold.

Run it as ``python -m sandbox.braze_emulator --port 0 [--config JSON]``: it prints ``READY <port>``
when it listens. It behaves like Braze where the importer can tell the difference.

Every API endpoint
------------------
- ``Authorization: Bearer <key>``, else 401; a body over ``max_body_bytes`` gets 413;
- ``X-RateLimit-Limit/-Remaining/-Reset`` on every answer, from the endpoint's own group, and
  429 past the group's window (a fixed window; Reset is the window's end in UNIX seconds),
  optionally with ``Retry-After`` or ``X-Ratelimit-Retry-After`` (``retry_after_header``). Groups:

  ==================  =====================================  ====================================
  group               endpoints                              default (settings)
  ==================  =====================================  ====================================
  ``track``           ``POST /users/track``                  3,000 per 3 s (``rate_limit``,
                                                             ``rate_window_seconds``)
  ``catalog_items``   ``POST/PUT/PATCH/DELETE                16,000 per 60 s
                      /catalogs/{name}/items``               (``catalog_rate_limit``,
                                                             ``catalog_rate_window_seconds``)
  ``catalog_list``    ``GET /catalogs``                      50 per 60 s
                                                             (``catalog_list_rate_limit``,
                                                             ``catalog_list_rate_window_seconds``)
  ``users_delete``    ``POST /users/delete``                 20,000 per 60 s (``delete_rate_limit``,
                                                             ``delete_rate_window_seconds``)
  ==================  =====================================  ====================================

- another sender in the same workspace (``foreign_share``, 0 to 1) uses that share of every
  ``track`` window, spread evenly over it (the other groups have no foreign sender);
- faults: ``latency_ms`` before every answer, and a ``script`` of outcomes for the next requests
  (``ok``, ``500``, ``502``, ``503``, ``429``, ``401``, ``drop_before``, ``drop_after``) or seeded
  ``rates`` of the same. Script and rates are one stream shared by every API endpoint, taken in
  the order the requests arrive. ``drop_before`` closes the connection without applying anything;
  ``drop_after`` applies the request and then closes the connection without an answer.

``POST /users/track``
---------------------
At most 75 objects combined (50 with ``batch_rule: combined_50``, 75 per array with
``batch_rule: per_array``), else 400 ``Max Input Length Exceeded``. Invalid objects are listed in
``errors`` as ``{"type", "input_array", "index"}`` with 201 and the valid ones are applied; a
request with no valid object gets 400. Every accepted object is recorded in order (``record``,
``GET /_emulator/objects``) and applied to the user profiles (``profiles``) as Braze would:

- the user is found by ``external_id``, else ``braze_id``, else ``user_alias`` (``alias_name`` +
  ``alias_label``), else ``email`` (case-insensitive), else ``phone`` (the first of these the
  object carries decides; the others on the object are not used to look up). An unknown
  ``external_id``, ``email`` or ``phone`` creates a profile unless ``_update_existing_only`` is true;
  an unknown ``user_alias`` creates an alias-only profile only with ``_update_existing_only: false``
  (Braze's default for aliases is update-only); an unknown ``braze_id`` never creates one (Braze
  assigns them; the emulator's are ``emu-<n>``). When several profiles share an email or phone,
  the most recently updated one is used. An object that finds no profile and may not create one
  is counted in ``unmatched`` and changes nothing;
- attributes: a value sets the attribute; ``null`` removes it; ``{"inc": n}`` adds ``n`` to a number
  (from 0 when absent or not a number); an array is stored with duplicates dropped (first kept)
  and cut to ``max_array_length`` (default 25, Braze's default), ``{"add": [...], "remove": [...]}``
  removes, then appends each added value (an existing one moves to the end), dropping the oldest
  past ``max_array_length``; an object replaces the stored one unless the attributes object has
  ``"_merge_objects": true``, then it is deep-merged (a nested ``null`` removes that key); a
  ``null`` at any depth of a stored object is an absent key (an emptied object stays, ``{}``); an
  array of objects takes ``{"$add": [...]}``, ``{"$remove": [{"$identifier_key": k,
  "$identifier_value": v}]}`` and ``{"$update": [{"$identifier_key": k, "$identifier_value": v,
  "$new_object": {...}}]}``. ``email`` and ``phone`` attributes re-index the profile; a
  ``user_alias`` on an object found by another identifier adds that alias if no other profile has
  it. The identifiers themselves are not attributes;
- events and purchases are appended to the profile's ``events`` / ``purchases`` lists (the object
  without its identifiers) and counted per event name / product id. With ``record: false`` (what
  the benchmarks use) only the counts are kept, so memory does not grow with every event.

Catalogs
--------
Catalogs exist only by the ``catalogs`` setting, never through the API:
``{"catalogs": {"<name>": {"description": "...", "fields": [{"name": "id", "type": "string"},
{"name": "price", "type": "number"}, ...]}}}`` (the first field must be ``id`` of type ``string``;
types ``string``, ``number``, ``boolean``, ``time``, ``object``, ``array``). Setting ``catalogs``
again keeps the items of catalogs that stay and drops those of catalogs that go.

- ``GET /catalogs``: ``{"catalogs": [{"name", "description", "fields", "num_items",
  "updated_at"}], "message": "success"}``;
- ``POST`` (create), ``PUT`` (create or replace), ``PATCH`` (edit existing; ``{"$add": [...],
  "$remove": [...]}`` on array fields) and ``DELETE`` ``/catalogs/{name}/items`` with
  ``{"items": [...]}``: 202 ``{"message": "success"}``; 404 with ``catalog-not-found`` for a catalog
  that does not exist; 400 ``{"errors": [{"id", "message", "parameters", "parameter_values"}],
  "message": "Invalid Request"}`` when any item is bad, and then nothing of the request is
  applied. Error ids as Braze documents them: ``item-array-invalid``,
  ``request-includes-too-many-items`` (over 50), ``items-missing-ids``, ``ids-not-strings``,
  ``ids-too-large`` (over 250 characters), ``invalid-ids`` (other than letters, digits, ``-``, ``_``),
  ``ids-not-unique``, ``invalid-fields`` (a field the catalog does not have),
  ``invalid-keys-in-value-object`` (``.`` or ``$`` in a key inside an object value),
  ``too-deep-nesting-in-value-object`` (over 50 levels), ``items-too-large`` (an item over 5,000
  characters as JSON, its id excluded), ``unable-to-coerce-value`` (a value that is not of its
  field's type: numbers are JSON numbers, not strings; times are ISO 8601 strings; arrays hold at
  most 100 strings). One entry per error id, naming the offending items as ``parameters: ["id", ...]``
  and ``parameter_values: [<item id>, ...]`` (one ``"id"`` per item; the positions of items with
  no usable id are not named, as in Braze's ``items-missing-ids`` example).

Where the docs are silent, the emulator chooses: the bulk endpoints are asynchronous in Braze,
so a conflict with stored items is not an error in the answer: creating an id that exists, or
editing / deleting one that does not, is accepted with 202, changes nothing for that item and is
listed under ``failures`` of ``GET /_emulator/catalogs/{name}`` (``item-already-exists`` /
``item-not-found``, the ids Braze's synchronous endpoints use). Fields an item leaves out are
absent (Braze's create asks for every field; the emulator does not enforce it); ``null`` is
accepted for every field and clears it. ``PATCH`` replaces each field it gives whole (an object
field is not merged). ``DELETE`` reads only the items' ids. ``$add`` appends
values not already in the array, after ``$remove``. Times are checked with Python's ISO 8601
parser (``2024-04-02``, ``2024-04-02T14:34:08``, ``...Z``, ``...+00:00``). Geolocation fields are
not emulated.

``POST /users/delete``
----------------------
Exactly one of ``external_ids``, ``braze_ids``, ``email_addresses``, ``phone_numbers`` (strings)
or ``user_aliases`` (``{"alias_name", "alias_label"}``), at most 50, else 400 with a ``message``.
Answers 201 ``{"deleted": n, "message": "success"}`` where ``n`` is the number of identifiers
queued for deletion (Braze: "number of user ids queued for deletion"; identifiers of no known
user count too, since Braze does not look them up before queueing). Every profile an identifier
names is removed (for an email or phone: every profile that has it); ``users_deleted`` in
``/_emulator/state`` counts the profiles removed.

Settings (``--config`` at start, ``POST /_emulator/config`` later; defaults)
---------------------------------------------------------------------------
``api_key`` ("sandbox-braze-key"), ``batch_rule`` ("combined"), ``max_objects`` (75),
``max_body_bytes`` (4 MiB), the rate limits above, ``retry_after_header`` (""), ``foreign_share``
(0), ``latency_ms`` (0), ``script`` ([]), ``rates`` ({}), ``seed`` (7), ``record`` (true),
``profiles`` (true: apply ``/users/track`` to profiles), ``max_array_length`` (25), ``catalogs`` ({}).
An unknown setting or a bad value is refused with 400 and changes nothing.

Control API (loopback only)
---------------------------
- ``POST /_emulator/config``: settings as JSON (any of the ``Config`` fields), 400 on a bad one;
- ``POST /_emulator/reset``: default settings, and no objects, users, catalogs or counts;
- ``GET /_emulator/state``: ``{"requests", "stored", "statuses", "endpoints", "users",
  "unmatched", "users_deleted", "catalog_items"}``: ``requests`` counts every API request,
  ``endpoints`` per endpoint (``users/track``, ``users/delete``, ``GET catalogs``, ``POST
  catalogs/items`` and so on), ``statuses`` per answer status (and ``dropped``), ``stored`` the
  accepted ``/users/track`` objects, ``users`` the profiles held, ``catalog_items`` the items per
  catalog;
- ``GET /_emulator/objects``: every accepted ``/users/track`` object, ``[{"array", "object"}]``;
- ``GET /_emulator/users``: ``{"users": [profile, ...]}``, all or those matching one of
  ``?external_id=``, ``?braze_id=``, ``?email=``, ``?phone=``, ``?alias_name=&alias_label=``; a profile
  is ``{"braze_id", "external_id", "user_aliases", "email", "phone", "attributes", "events",
  "purchases", "event_counts", "purchase_counts"}``;
- ``GET /_emulator/catalogs``: ``{"catalogs": {name: {"fields", "num_items"}}}``;
- ``GET /_emulator/catalogs/{name}``: ``{"name", "fields", "items": [...by id], "failures": [...]}``,
  404 for an unknown catalog.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

try:
    import orjson
    from aiohttp import web
except ModuleNotFoundError as missing:  # run by a Python without the project's packages
    if __name__ != "__main__":
        raise
    print(
        f"error: No module named {missing.name!r}: run it with .venv/bin/python (make demo or make test creates .venv)",
        file=sys.stderr,
    )
    sys.exit(2)

OUTCOMES = ("ok", "500", "502", "503", "429", "401", "drop_before", "drop_after")
BATCH_RULES = ("combined", "combined_50", "per_array")
ARRAYS = ("attributes", "events", "purchases")
IDENTIFIERS = ("external_id", "braze_id", "user_alias", "email", "phone")
# Keys of a /users/track object that steer how it is applied, not attributes of the user.
CONTROL_KEYS = frozenset({"_update_existing_only", "_merge_objects", "push_token_import"})
NOT_ATTRIBUTES = frozenset({"external_id", "braze_id", "user_alias"}) | CONTROL_KEYS
CATALOG_FIELD_TYPES = ("string", "number", "boolean", "time", "object", "array")
CATALOG_MAX_ITEMS = 50
CATALOG_MAX_ID_LENGTH = 250
CATALOG_MAX_ITEM_CHARS = 5000
CATALOG_MAX_NESTING = 50
CATALOG_MAX_ARRAY = 100
CATALOG_ID = re.compile(r"[A-Za-z0-9_-]+")
DELETE_KEYS = ("external_ids", "user_aliases", "braze_ids", "email_addresses", "phone_numbers")
DELETE_MAX = 50


@dataclass
class Config:
    api_key: str = "sandbox-braze-key"
    batch_rule: str = "combined"
    max_objects: int = 75
    max_body_bytes: int = 4 * 1024 * 1024
    rate_limit: int = 3000
    rate_window_seconds: float = 3.0
    catalog_rate_limit: int = 16_000
    catalog_rate_window_seconds: float = 60.0
    catalog_list_rate_limit: int = 50
    catalog_list_rate_window_seconds: float = 60.0
    delete_rate_limit: int = 20_000
    delete_rate_window_seconds: float = 60.0
    # Also answer a 429 with this header (seconds until the window ends): "Retry-After", or
    # "X-Ratelimit-Retry-After" as on Braze's monthly-active-user contracts. Empty: neither.
    retry_after_header: str = ""
    foreign_share: float = 0.0  # of every /users/track window, used by another sender at an even pace
    latency_ms: float = 0.0
    script: list[str] = field(default_factory=list)
    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 7
    # Keep every accepted /users/track object (GET /_emulator/objects) and every event and purchase
    # on its profile. False (benchmarks): memory stays bounded by the number of users.
    record: bool = True
    profiles: bool = True  # apply /users/track objects to per-user profiles
    max_array_length: int = 25
    catalogs: dict[str, Any] = field(default_factory=dict)

    def update(self, data: dict[str, Any]) -> None:
        if not isinstance(data, dict):
            raise ValueError("settings must be a JSON object")
        share = data.get("foreign_share", 0.0)
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0.0 <= share < 1.0:
            raise ValueError("foreign_share must be a number, at least 0 and less than 1")
        for key, value in data.items():
            if not hasattr(self, key):
                raise ValueError(f"unknown setting {key!r}")
            default = getattr(Config(), key)
            if isinstance(default, bool):
                fits = isinstance(value, bool)
            elif isinstance(default, int | float):
                fits = _is_number(value) and (isinstance(value, int) or isinstance(default, float))
            else:
                fits = isinstance(value, type(default))
            if not fits:
                raise ValueError(f"{key} must be of type {type(default).__name__}")
        if any(not _is_number(rate) or not 0 <= rate <= 1 for rate in data.get("rates", {}).values()):
            raise ValueError("rates must be numbers from 0 to 1 (the share of requests each fault takes)")
        if sum(data.get("rates", {}).values()) > 1:
            raise ValueError("rates must add up to at most 1 (the share of requests that get a fault)")
        if data.get("batch_rule", "combined") not in BATCH_RULES:
            raise ValueError(f"batch_rule must be one of {', '.join(BATCH_RULES)}")
        for key in ("latency_ms", "max_objects", "max_body_bytes", "max_array_length"):
            if key in data and _is_number(data[key]) and data[key] < (0 if key == "latency_ms" else 1):
                raise ValueError(f"{key} must be a number, at least {0 if key == 'latency_ms' else 1}")
        for key in ("rate_limit", "catalog_rate_limit", "catalog_list_rate_limit", "delete_rate_limit"):
            if key in data and (not _is_number(data[key]) or data[key] < 0):
                raise ValueError(f"{key} must be a number, at least 0")
        for key in (
            "rate_window_seconds",
            "catalog_rate_window_seconds",
            "catalog_list_rate_window_seconds",
            "delete_rate_window_seconds",
        ):
            if key in data and (not _is_number(data[key]) or data[key] <= 0):
                raise ValueError(f"{key} must be a number above 0")
        if "catalogs" in data:
            data = {**data, "catalogs": _checked_catalogs(data["catalogs"])}
        for outcome in [*data.get("script", []), *data.get("rates", {})]:
            if outcome not in OUTCOMES:
                raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
        for key, value in data.items():
            setattr(self, key, value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _checked_catalogs(catalogs: Any) -> dict[str, Any]:
    """The ``catalogs`` setting, checked: name -> {"description", "fields": [{"name", "type"}]}."""
    if not isinstance(catalogs, dict):
        raise ValueError("catalogs must be an object of catalog name -> {fields}")
    out: dict[str, Any] = {}
    for name, spec in catalogs.items():
        if not CATALOG_ID.fullmatch(name) or len(name) > CATALOG_MAX_ID_LENGTH:
            raise ValueError(f"catalog name {name!r}: letters, digits, '-' and '_' only")
        fields = spec.get("fields") if isinstance(spec, dict) else None
        if not isinstance(fields, list) or not fields:
            raise ValueError(f"catalog {name!r}: fields must be a non-empty list of {{name, type}}")
        if fields[0] != {"name": "id", "type": "string"}:
            raise ValueError(f'catalog {name!r}: the first field must be {{"name": "id", "type": "string"}}')
        seen: set[str] = set()
        for item in fields:
            if not isinstance(item, dict) or set(item) != {"name", "type"} or not isinstance(item["name"], str):
                raise ValueError(f"catalog {name!r}: every field is {{name, type}}")
            if item["type"] not in CATALOG_FIELD_TYPES:
                raise ValueError(
                    f"catalog {name!r}: field {item['name']!r} has type {item['type']!r}; "
                    f"expected one of {', '.join(CATALOG_FIELD_TYPES)}"
                )
            if item["name"] in seen:
                raise ValueError(f"catalog {name!r}: field {item['name']!r} given twice")
            seen.add(item["name"])
        description = spec.get("description", "")
        if not isinstance(description, str):
            raise ValueError(f"catalog {name!r}: description must be a string")
        out[name] = {"description": description, "fields": [dict(f) for f in fields]}
    return out


class Window:
    """One rate-limit group: a fixed window of ``limit`` requests per ``seconds``."""

    def __init__(self) -> None:
        self.start = 0.0
        self.count = 0

    def take(self, limit: int, seconds: float, foreign_share: float = 0.0) -> tuple[dict[str, str], bool]:
        now = time.time()
        if now >= self.start + seconds:
            self.start = math.floor(now / seconds) * seconds
            self.count = 0
        self.count += 1
        foreign = math.floor(foreign_share * limit * (now - self.start) / seconds)
        used = self.count + foreign
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - used)),
            "X-RateLimit-Reset": f"{self.start + seconds:.3f}",
        }
        return headers, used > limit


class Emulator:
    def __init__(self) -> None:
        self.config = Config()
        self.reset()

    def reset(self) -> None:
        self.random = random.Random(self.config.seed)
        self.objects: list[dict[str, Any]] = []
        self.stored = 0
        self.requests = 0
        self.statuses: dict[str, int] = {}
        self.endpoints: dict[str, int] = {}
        self.windows = {group: Window() for group in ("track", "catalog_items", "catalog_list", "users_delete")}
        self.users = Users()
        self.users_deleted = 0
        self.catalog_items: dict[str, dict[str, dict[str, Any]]] = {}
        self.catalog_failures: dict[str, list[dict[str, Any]]] = {}
        self.catalog_updated: dict[str, str] = {}
        self._sync_catalogs()

    # -- what every API endpoint does first --------------------------------------------------

    async def _admit(self, request: web.Request, group: str, name: str) -> tuple[bytes, dict[str, str], str]:
        """Count, read, wait, rate-limit, fault and authenticate a request.

        Returns the body, the rate-limit headers and the outcome still to honour (``ok`` or
        ``drop_after``); raises an ``_Answer`` when the request ends here.
        """
        self.requests += 1
        self.endpoints[name] = self.endpoints.get(name, 0) + 1
        body = await request.read()
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)
        headers, limited = self._rate_limit(group)
        outcome = self._next_outcome()
        if outcome == "drop_before":
            self._drop(request)
        if limited or outcome == "429":
            headers = dict(headers)
            if self.config.retry_after_header:
                left = max(0.0, float(headers["X-RateLimit-Reset"]) - time.time())
                headers[self.config.retry_after_header] = str(math.ceil(left))
            raise _Answer(self._answer(429, {"message": "Too Many Requests"}, headers))
        if outcome in ("500", "502", "503"):
            raise _Answer(self._answer(int(outcome), {"message": "Internal Server Error"}, headers))
        auth = request.headers.get("Authorization", "")
        if outcome == "401" or auth != f"Bearer {self.config.api_key}":
            raise _Answer(self._answer(401, {"message": "Invalid API key"}, headers))
        if len(body) > self.config.max_body_bytes:
            raise _Answer(self._answer(413, {"message": "Request Entity Too Large"}, headers))
        return body, headers, outcome

    def _rate_limit(self, group: str) -> tuple[dict[str, str], bool]:
        c = self.config
        window = self.windows[group]
        if group == "track":
            return window.take(c.rate_limit, c.rate_window_seconds, c.foreign_share)
        if group == "catalog_items":
            return window.take(c.catalog_rate_limit, c.catalog_rate_window_seconds)
        if group == "catalog_list":
            return window.take(c.catalog_list_rate_limit, c.catalog_list_rate_window_seconds)
        return window.take(c.delete_rate_limit, c.delete_rate_window_seconds)

    def _next_outcome(self) -> str:
        if self.config.script:
            return self.config.script.pop(0)
        roll = self.random.random()
        for outcome, rate in self.config.rates.items():
            if roll < rate:
                return outcome
            roll -= rate
        return "ok"

    def _finish(
        self, request: web.Request, outcome: str, status: int, body: dict[str, Any], headers: dict[str, str]
    ) -> web.Response:
        """The answer to a request that was applied (``drop_after``: no answer at all)."""
        if outcome == "drop_after":
            self._drop(request)
        return self._answer(status, body, headers)

    def _answer(self, status: int, body: Any, headers: dict[str, str]) -> web.Response:
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)

    def _drop(self, request: web.Request) -> NoReturn:
        self.statuses["dropped"] = self.statuses.get("dropped", 0) + 1
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("connection dropped by fault injection")

    # -- /users/track --------------------------------------------------------------------------

    async def track(self, request: web.Request) -> web.StreamResponse:
        try:
            body, limit_headers, outcome = await self._admit(request, "track", "users/track")
        except _Answer as stop:
            return stop.response
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._answer(400, {"message": "Invalid JSON"}, limit_headers)
        if not isinstance(payload, dict):
            return self._answer(400, {"message": "Invalid JSON"}, limit_headers)
        arrays = {name: payload.get(name) or [] for name in ARRAYS}
        if any(not isinstance(v, list) for v in arrays.values()):
            return self._answer(400, {"message": "attributes, events and purchases must be arrays"}, limit_headers)
        if self._too_many(arrays):
            return self._answer(400, {"message": "Max Input Length Exceeded"}, limit_headers)
        errors = []
        accepted = []
        for name, objects in arrays.items():
            for index, obj in enumerate(objects):
                problem = _object_problem(name, obj)
                if problem:
                    errors.append({"type": problem, "input_array": name, "index": index})
                else:
                    accepted.append((name, obj))
        if not accepted and errors:
            return self._answer(400, {"message": "No valid objects", "errors": errors}, limit_headers)
        self._store(accepted)
        answer: dict[str, Any] = {"message": "success"}
        if errors:
            answer["errors"] = errors
        return self._finish(request, outcome, 201, answer, limit_headers)

    def _too_many(self, arrays: dict[str, list[Any]]) -> bool:
        if self.config.batch_rule == "per_array":
            return any(len(v) > self.config.max_objects for v in arrays.values())
        limit = min(50, self.config.max_objects) if self.config.batch_rule == "combined_50" else self.config.max_objects
        return sum(len(v) for v in arrays.values()) > limit

    def _store(self, accepted: list[tuple[str, Any]]) -> None:
        self.stored += len(accepted)
        if self.config.record:
            self.objects.extend({"array": name, "object": obj} for name, obj in accepted)
        if self.config.profiles:
            self.users.apply(accepted, self.config.max_array_length, self.config.record)

    # -- /users/delete -------------------------------------------------------------------------

    async def delete_users(self, request: web.Request) -> web.StreamResponse:
        try:
            body, limit_headers, outcome = await self._admit(request, "users_delete", "users/delete")
        except _Answer as stop:
            return stop.response
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._answer(400, {"message": "Invalid JSON"}, limit_headers)
        problem = _delete_problem(payload)
        if problem:
            return self._answer(400, {"message": problem}, limit_headers)
        key = next(k for k in DELETE_KEYS if payload.get(k))
        identifiers: list[Any] = payload[key]
        self.users_deleted += self.users.delete(key, identifiers)
        return self._finish(request, outcome, 201, {"deleted": len(identifiers), "message": "success"}, limit_headers)

    # -- catalogs ------------------------------------------------------------------------------

    def _sync_catalogs(self) -> None:
        """Give every configured catalog an item store; drop the stores of catalogs no longer set."""
        names = set(self.config.catalogs)
        for gone in set(self.catalog_items) - names:
            del self.catalog_items[gone]
            self.catalog_failures.pop(gone, None)
            self.catalog_updated.pop(gone, None)
        for name in names - set(self.catalog_items):
            self.catalog_items[name] = {}
            self.catalog_failures[name] = []
            self.catalog_updated[name] = _now()

    async def list_catalogs(self, request: web.Request) -> web.StreamResponse:
        try:
            _, limit_headers, outcome = await self._admit(request, "catalog_list", "GET catalogs")
        except _Answer as stop:
            return stop.response
        catalogs = [
            {
                "name": name,
                "description": spec["description"],
                "fields": spec["fields"],
                "num_items": len(self.catalog_items[name]),
                "updated_at": self.catalog_updated[name],
            }
            for name, spec in sorted(self.config.catalogs.items())
        ]
        return self._finish(request, outcome, 200, {"catalogs": catalogs, "message": "success"}, limit_headers)

    async def catalog_items_(self, request: web.Request) -> web.StreamResponse:
        method = request.method
        try:
            body, limit_headers, outcome = await self._admit(request, "catalog_items", f"{method} catalogs/items")
        except _Answer as stop:
            return stop.response
        name = request.match_info["catalog_name"]
        spec = self.config.catalogs.get(name)
        if spec is None:
            error = _catalog_error("catalog-not-found", "Could not find catalog", ["catalog_name"], [name])
            return self._answer(404, {"errors": [error], "message": "Invalid Request"}, limit_headers)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        items = payload.get("items") if isinstance(payload, dict) else None
        errors = _catalog_errors(method, items, {f["name"]: f["type"] for f in spec["fields"]})
        if errors:
            return self._answer(400, {"errors": errors, "message": "Invalid Request"}, limit_headers)
        assert isinstance(items, list)
        self._apply_items(name, method, items)
        return self._finish(request, outcome, 202, {"message": "success"}, limit_headers)

    def _apply_items(self, name: str, method: str, items: list[dict[str, Any]]) -> None:
        stored = self.catalog_items[name]
        failures = self.catalog_failures[name]
        for item in items:
            item_id = item["id"]
            if method == "DELETE":
                if stored.pop(item_id, None) is None:
                    failures.append({"method": method, "id": item_id, "error": "item-not-found"})
            elif method == "POST":
                if item_id in stored:
                    failures.append({"method": method, "id": item_id, "error": "item-already-exists"})
                else:
                    stored[item_id] = _without_nulls(item)
            elif method == "PUT":
                stored[item_id] = _without_nulls(item)
            else:  # PATCH
                current = stored.get(item_id)
                if current is None:
                    failures.append({"method": method, "id": item_id, "error": "item-not-found"})
                    continue
                for key, value in item.items():
                    if value is None:
                        current.pop(key, None)
                    elif isinstance(value, dict) and ("$add" in value or "$remove" in value):
                        current[key] = _edit_array(current.get(key) or [], value)
                    else:
                        current[key] = value
        self.catalog_updated[name] = _now()

    # -- control -------------------------------------------------------------------------------

    async def set_config(self, request: web.Request) -> web.Response:
        try:
            self.config.update(await request.json())
        except (ValueError, TypeError) as exc:
            return web.json_response({"message": str(exc)}, status=400)
        self.random = random.Random(self.config.seed)
        self._sync_catalogs()
        return web.json_response({"ok": True})

    async def state(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": self.requests,
                "stored": self.stored,
                "statuses": self.statuses,
                "endpoints": self.endpoints,
                "users": len(self.users.profiles),
                "unmatched": self.users.unmatched,
                "users_deleted": self.users_deleted,
                "catalog_items": {name: len(items) for name, items in self.catalog_items.items()},
            }
        )

    async def objects_(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.objects), content_type="application/json")

    async def users_(self, request: web.Request) -> web.Response:
        try:
            found = self.users.find(dict(request.query))
        except ValueError as exc:
            return web.json_response({"message": str(exc)}, status=400)
        return web.Response(body=orjson.dumps({"users": found}), content_type="application/json")

    async def catalogs_state(self, request: web.Request) -> web.Response:
        out = {
            name: {"fields": spec["fields"], "num_items": len(self.catalog_items[name])}
            for name, spec in self.config.catalogs.items()
        }
        return web.Response(body=orjson.dumps({"catalogs": out}), content_type="application/json")

    async def catalog_state(self, request: web.Request) -> web.Response:
        name = request.match_info["catalog_name"]
        if name not in self.config.catalogs:
            return web.json_response({"message": f"no catalog {name!r}"}, status=404)
        items = [self.catalog_items[name][k] for k in sorted(self.catalog_items[name])]
        body = {
            "name": name,
            "fields": self.config.catalogs[name]["fields"],
            "items": items,
            "failures": self.catalog_failures[name],
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def reset_(self, request: web.Request) -> web.Response:
        self.config = Config()
        self.reset()
        return web.json_response({"ok": True})


class _Answer(Exception):
    """An answer given before the request reached its endpoint's own work."""

    def __init__(self, response: web.Response) -> None:
        super().__init__()
        self.response = response


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# -- per-user state ----------------------------------------------------------------------------


class Profile:
    """One user as Braze would hold it. Containers are made on first use: a profile is one object
    until it needs more, which keeps the emulator's garbage collector cheap at bench rates."""

    __slots__ = (
        "attributes",
        "braze_id",
        "email",
        "event_counts",
        "events",
        "external_id",
        "phone",
        "purchase_counts",
        "purchases",
        "updated",
        "user_aliases",
    )

    def __init__(self, braze_id: str, external_id: str | None) -> None:
        self.braze_id = braze_id
        self.external_id = external_id
        self.email: str | None = None
        self.phone: str | None = None
        self.attributes: dict[str, Any] | None = None
        self.user_aliases: list[dict[str, str]] | None = None
        self.events: list[dict[str, Any]] | None = None
        self.purchases: list[dict[str, Any]] | None = None
        self.event_counts: dict[str, int] | None = None
        self.purchase_counts: dict[str, int] | None = None
        self.updated = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "braze_id": self.braze_id,
            "external_id": self.external_id,
            "user_aliases": self.user_aliases or [],
            "email": self.email,
            "phone": self.phone,
            "attributes": self.attributes or {},
            "events": self.events or [],
            "purchases": self.purchases or [],
            "event_counts": self.event_counts or {},
            "purchase_counts": self.purchase_counts or {},
        }


class Users:
    """The profiles Braze would hold, indexed by every identifier it resolves users by."""

    def __init__(self) -> None:
        self.profiles: dict[str, Profile] = {}  # by braze_id
        self.by_external: dict[str, Profile] = {}
        self.by_alias: dict[tuple[str, str], Profile] = {}
        self.by_email: dict[str, list[Profile]] = {}
        self.by_phone: dict[str, list[Profile]] = {}
        self.next_id = 0
        self.clock = 0  # orders updates: "most recently updated" among profiles sharing an email
        self.unmatched = 0

    def apply(self, accepted: list[tuple[str, Any]], max_array: int, keep_entries: bool) -> None:
        """Apply accepted objects in order; ``keep_entries``: also keep each event or purchase itself."""
        by_external = self.by_external
        clock = self.clock
        for array, obj in accepted:
            external_id = obj.get("external_id")
            if external_id.__class__ is str and external_id and "user_alias" not in obj:
                # The common case, kept short: a user named by external_id.
                known = by_external.get(external_id)
                if known is None:
                    if obj.get("_update_existing_only") is True:
                        self.unmatched += 1
                        continue
                    known = self._create(external_id)
                profile = known
            else:
                found = self._resolve(obj)
                if found is None:
                    self.unmatched += 1
                    continue
                profile = found
                alias = obj.get("user_alias")
                if alias is not None and ("external_id" in obj or "braze_id" in obj):
                    self._add_alias(profile, alias)
            clock += 1
            profile.updated = clock
            if array == "events":
                counts = profile.event_counts
                if counts is None:
                    counts = profile.event_counts = {}
                name = obj["name"]
                counts[name] = counts.get(name, 0) + 1
                if keep_entries:
                    if profile.events is None:
                        profile.events = []
                    profile.events.append(_entry(obj))
            elif array == "purchases":
                counts = profile.purchase_counts
                if counts is None:
                    counts = profile.purchase_counts = {}
                product = obj["product_id"]
                counts[product] = counts.get(product, 0) + 1
                if keep_entries:
                    if profile.purchases is None:
                        profile.purchases = []
                    profile.purchases.append(_entry(obj))
            else:
                self._attributes(profile, obj, max_array)
        self.clock = clock

    def _resolve(self, obj: dict[str, Any]) -> Profile | None:
        only_existing = obj.get("_update_existing_only")
        external_id = obj.get("external_id")
        if external_id is not None and external_id != "":
            external_id = str(external_id)
            found = self.by_external.get(external_id)
            if found is not None or only_existing is True:
                return found
            return self._create(external_id)
        braze_id = obj.get("braze_id")
        if braze_id is not None and braze_id != "":
            return self.profiles.get(str(braze_id))
        alias = obj.get("user_alias")
        if isinstance(alias, dict) and alias.get("alias_name") and alias.get("alias_label"):
            found = self.by_alias.get((str(alias["alias_name"]), str(alias["alias_label"])))
            if found is not None or only_existing is not False:
                return found
            profile = self._create(None)
            self._add_alias(profile, alias)
            return profile
        for attribute, index in (("email", self.by_email), ("phone", self.by_phone)):
            value = obj.get(attribute)
            if isinstance(value, str) and value:
                sharing = index.get(_index_key(attribute, value))
                if sharing:
                    return max(sharing, key=lambda p: p.updated)
                if only_existing is True:
                    return None
                profile = self._create(None)
                self._set_contact(profile, attribute, value)
                return profile
        return None

    def _create(self, external_id: str | None) -> Profile:
        self.next_id += 1
        profile = Profile(f"emu-{self.next_id}", external_id)
        self.profiles[profile.braze_id] = profile
        if external_id is not None:
            self.by_external[external_id] = profile
        return profile

    def _add_alias(self, profile: Profile, alias: Any) -> None:
        if not (isinstance(alias, dict) and alias.get("alias_name") and alias.get("alias_label")):
            return
        pair = (str(alias["alias_name"]), str(alias["alias_label"]))
        if pair in self.by_alias:
            return
        self.by_alias[pair] = profile
        if profile.user_aliases is None:
            profile.user_aliases = []
        profile.user_aliases.append({"alias_name": pair[0], "alias_label": pair[1]})

    def _set_contact(self, profile: Profile, attribute: str, value: str | None) -> None:
        index = self.by_email if attribute == "email" else self.by_phone
        old = profile.email if attribute == "email" else profile.phone
        if old is not None:
            sharing = index.get(_index_key(attribute, old), [])
            if profile in sharing:
                sharing.remove(profile)
        if attribute == "email":
            profile.email = value
        else:
            profile.phone = value
        if value is not None:
            index.setdefault(_index_key(attribute, value), []).append(profile)

    def _attributes(self, profile: Profile, obj: dict[str, Any], max_array: int) -> None:
        if profile.attributes is None:
            profile.attributes = {}
        attributes = profile.attributes
        merge = obj.get("_merge_objects") is True
        for key, value in obj.items():
            if key in NOT_ATTRIBUTES:
                continue
            if key == "email" or key == "phone":
                if value is None or isinstance(value, str):
                    self._set_contact(profile, key, value or None)
                continue
            if value is None:
                attributes.pop(key, None)
            elif isinstance(value, dict):
                attributes[key] = _attribute_operation(attributes.get(key), value, merge, max_array)
            elif isinstance(value, list):
                attributes[key] = _unique(value)[:max_array] if _scalars(value) else value
            else:
                attributes[key] = value

    def delete(self, key: str, identifiers: list[Any]) -> int:
        """Remove every profile the identifiers name; the number of profiles removed."""
        doomed: dict[str, Profile] = {}
        for identifier in identifiers:
            found: list[Profile | None]
            if key == "external_ids":
                found = [self.by_external.get(identifier)]
            elif key == "braze_ids":
                found = [self.profiles.get(identifier)]
            elif key == "user_aliases":
                found = [self.by_alias.get((identifier["alias_name"], identifier["alias_label"]))]
            elif key == "email_addresses":
                found = list(self.by_email.get(_index_key("email", identifier), []))
            else:
                found = list(self.by_phone.get(_index_key("phone", identifier), []))
            doomed.update((p.braze_id, p) for p in found if p is not None)
        for profile in doomed.values():
            del self.profiles[profile.braze_id]
            if profile.external_id is not None:
                self.by_external.pop(profile.external_id, None)
            for alias in profile.user_aliases or []:
                self.by_alias.pop((alias["alias_name"], alias["alias_label"]), None)
            self._set_contact(profile, "email", None)
            self._set_contact(profile, "phone", None)
        return len(doomed)

    def find(self, query: dict[str, str]) -> list[dict[str, Any]]:
        found: list[Profile | None]
        if not query:
            found = list(self.profiles.values())
        elif set(query) == {"alias_name", "alias_label"}:
            found = [self.by_alias.get((query["alias_name"], query["alias_label"]))]
        elif len(query) != 1:
            raise ValueError("query by one of external_id, braze_id, email, phone, or alias_name + alias_label")
        else:
            ((name, value),) = query.items()
            if name == "external_id":
                found = [self.by_external.get(value)]
            elif name == "braze_id":
                found = [self.profiles.get(value)]
            elif name in ("email", "phone"):
                found = list((self.by_email if name == "email" else self.by_phone).get(_index_key(name, value), []))
            else:
                raise ValueError(f"unknown query {name!r}")
        return [p.as_json() for p in found if p is not None]


def _entry(obj: dict[str, Any]) -> dict[str, Any]:
    """An event or purchase as the profile keeps it: without the identifiers that found the user."""
    return {k: v for k, v in obj.items() if k not in NOT_ATTRIBUTES and k != "email" and k != "phone"}


def _index_key(attribute: str, value: str) -> str:
    return value.strip().lower() if attribute == "email" else value.strip()


def _scalars(values: list[Any]) -> bool:
    return not any(isinstance(v, dict | list) for v in values)


def _unique(values: list[Any]) -> list[Any]:
    """Braze's arrays hold each value once: the first occurrence stays."""
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def _attribute_operation(current: Any, value: dict[str, Any], merge: bool, max_array: int) -> Any:
    """A custom attribute given as an object: an increment, an array edit, or a nested object."""
    keys = set(value)
    if keys == {"inc"} and _is_number(value["inc"]):
        return (current if _is_number(current) else 0) + value["inc"]
    if keys and keys <= {"add", "remove"} and all(isinstance(v, list) for v in value.values()):
        array = list(current) if isinstance(current, list) else []
        for gone in value.get("remove", []):
            array = [v for v in array if v != gone]
        for added in value.get("add", []):
            array = [v for v in array if v != added] + [added]
        return array[-max_array:] if max_array > 0 else []
    if keys and keys <= {"$add", "$remove", "$update"}:
        return _object_array_operation(current, value)
    if merge and isinstance(current, dict):
        return _deep_merge(current, value)
    return _held_object(value)


def _object_array_operation(current: Any, value: dict[str, Any]) -> list[Any]:
    array = list(current) if isinstance(current, list) else []

    def matches(obj: Any, spec: Any) -> bool:
        if not isinstance(obj, dict) or not isinstance(spec, dict):
            return False
        return obj.get(spec.get("$identifier_key")) == spec.get("$identifier_value")

    for spec in value.get("$remove") or []:
        array = [obj for obj in array if not matches(obj, spec)]
    for spec in value.get("$update") or []:
        new = spec.get("$new_object") if isinstance(spec, dict) else None
        if isinstance(new, dict):
            array = [_deep_merge(obj, new) if matches(obj, spec) else obj for obj in array]
    array.extend(obj for obj in value.get("$add") or [] if isinstance(obj, dict))
    return array


def _deep_merge(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(current)
    for key, value in update.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = _held_object(value) if isinstance(value, dict) else value
    return out


def _held_object(value: dict[str, Any]) -> dict[str, Any]:
    """A nested object as a profile keeps it: a null at any depth is an absent key (an object left
    without keys stays, empty)."""
    return {k: _held_object(v) if isinstance(v, dict) else v for k, v in value.items() if v is not None}


def _without_nulls(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}


# -- checks ------------------------------------------------------------------------------------


def _object_problem(array: str, obj: Any) -> str | None:
    """Braze's per-object checks (a subset that covers what callers get wrong). Exact classes, not
    isinstance: the objects come from orjson, and this runs for every object at bench rates."""
    if obj.__class__ is not dict:
        return "object expected"
    external_id = obj.get("external_id")
    if (external_id is None or external_id == "") and not any(obj.get(k) not in (None, "") for k in IDENTIFIERS):
        return "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required"
    if array == "attributes":
        return None
    if array == "events":
        name = obj.get("name")
        if name.__class__ is not str or not name:
            return "Event name is required"
        if obj.get("time").__class__ is not str:
            return "Event time is required"
    else:
        for key in ("product_id", "currency", "time"):
            if obj.get(key).__class__ is not str:
                return f"Purchase {key} is required"
        if obj.get("price").__class__ not in (int, float):
            return "Purchase price must be a number"
    properties = obj.get("properties")
    if properties.__class__ is dict:
        for key, value in properties.items():
            if key[:1] == "$":
                return "Property keys cannot begin with '$'"
            if len(key) > 255 or (value.__class__ is str and len(value) > 255):
                return "Property keys and string values must be at most 255 characters"
    return None


def _delete_problem(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return "Invalid JSON"
    unknown = sorted(set(payload) - set(DELETE_KEYS))
    if unknown:
        return f"Unknown parameter(s): {', '.join(unknown)}"
    given = [k for k in DELETE_KEYS if payload.get(k) not in (None, [])]
    if not given:
        return f"One of {', '.join(DELETE_KEYS)} is required"
    if len(given) > 1:
        return f"Only one of {', '.join(DELETE_KEYS)} may be given in a request"
    values = payload[given[0]]
    if not isinstance(values, list):
        return f"{given[0]} must be an array"
    if len(values) > DELETE_MAX:
        return f"{given[0]} can include at most {DELETE_MAX} identifiers"
    for value in values:
        if given[0] == "user_aliases":
            if not (
                isinstance(value, dict)
                and isinstance(value.get("alias_name"), str)
                and isinstance(value.get("alias_label"), str)
                and value["alias_name"]
                and value["alias_label"]
            ):
                return "user_aliases must be objects with alias_name and alias_label strings"
        elif not isinstance(value, str) or not value:
            return f"{given[0]} must be non-empty strings"
    return None


def _catalog_error(error_id: str, message: str, parameters: list[str], values: list[Any]) -> dict[str, Any]:
    return {"id": error_id, "message": message, "parameters": parameters, "parameter_values": values}


_CATALOG_MESSAGES = {
    "ids-not-strings": "Item IDs must be strings",
    "ids-too-large": f"Item IDs can't be more than {CATALOG_MAX_ID_LENGTH} characters",
    "invalid-ids": "Item IDs can only include letters, numbers, hyphens, and underscores",
    "ids-not-unique": "Item IDs must be unique in the request",
    "invalid-fields": "Some of the fields given do not exist in the catalog",
    "invalid-keys-in-value-object": "Item object keys can't include '.' or '$'",
    "too-deep-nesting-in-value-object": f"Item objects can't have more than {CATALOG_MAX_NESTING} levels of nesting",
    "items-too-large": f"Item values can't exceed {CATALOG_MAX_ITEM_CHARS:,} characters",
    "unable-to-coerce-value": "Some of the item values could not be coerced to their field's type",
}


def _catalog_errors(method: str, items: Any, fields: dict[str, str]) -> list[dict[str, Any]]:
    """Every reason the bulk request is refused; empty when it is accepted."""
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        return [_catalog_error("item-array-invalid", "items must be an array of objects", [], [])]
    if len(items) > CATALOG_MAX_ITEMS:
        message = f"Request includes too many items; the limit is {CATALOG_MAX_ITEMS}"
        return [_catalog_error("request-includes-too-many-items", message, [], [])]
    errors: list[dict[str, Any]] = []
    missing = [i for i in items if i.get("id") is None]
    if missing:
        message = f"There are {len(missing)} item(s) that do not have ids"
        errors.append(_catalog_error("items-missing-ids", message, [], []))
    offending: dict[str, list[Any]] = {error_id: [] for error_id in _CATALOG_MESSAGES}
    seen: set[str] = set()
    for item in items:
        item_id = item.get("id")
        if item_id is None:
            continue
        if not isinstance(item_id, str):
            offending["ids-not-strings"].append(item_id)
            continue
        if len(item_id) > CATALOG_MAX_ID_LENGTH:
            offending["ids-too-large"].append(item_id)
        elif not CATALOG_ID.fullmatch(item_id):
            offending["invalid-ids"].append(item_id)
        if item_id in seen and item_id not in offending["ids-not-unique"]:
            offending["ids-not-unique"].append(item_id)
        seen.add(item_id)
        if method == "DELETE":
            continue
        for error_id in _item_problems(method, item, fields):
            offending[error_id].append(item_id)
    for error_id, ids in offending.items():
        if ids:
            errors.append(_catalog_error(error_id, _CATALOG_MESSAGES[error_id], ["id"] * len(ids), ids))
    return errors


def _item_problems(method: str, item: dict[str, Any], fields: dict[str, str]) -> list[str]:
    problems: list[str] = []
    values = {k: v for k, v in item.items() if k != "id"}
    if any(k not in fields for k in values):
        problems.append("invalid-fields")
    if any(_bad_keys(v) for v in values.values() if not _array_edit(method, v)):
        problems.append("invalid-keys-in-value-object")
    if any(_depth(v) > CATALOG_MAX_NESTING for v in values.values()):
        problems.append("too-deep-nesting-in-value-object")
    if len(orjson.dumps(values).decode()) > CATALOG_MAX_ITEM_CHARS:
        problems.append("items-too-large")
    for key, value in values.items():
        kind = fields.get(key)
        if kind is not None and value is not None and not _fits(method, kind, value):
            problems.append("unable-to-coerce-value")
            break
    return problems


def _array_edit(method: str, value: Any) -> bool:
    return method == "PATCH" and isinstance(value, dict) and bool(value) and set(value) <= {"$add", "$remove"}


def _fits(method: str, kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return _is_number(value)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "time":
        return isinstance(value, str) and _iso_time(value)
    if kind == "object":
        return isinstance(value, dict)
    if _array_edit(method, value):
        return all(_string_array(v) for v in value.values())
    return _string_array(value)


def _string_array(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= CATALOG_MAX_ARRAY and all(isinstance(v, str) for v in value)


def _iso_time(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _bad_keys(value: Any) -> bool:
    if isinstance(value, dict):
        return any("." in k or "$" in k or _bad_keys(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_bad_keys(v) for v in value)
    return False


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max((_depth(v) for v in value), default=0)
    return 0


def _edit_array(current: list[Any], edit: dict[str, Any]) -> list[Any]:
    """A catalog array field's ``$remove`` then ``$add`` (added values already present are not repeated)."""
    array = [v for v in current if v not in (edit.get("$remove") or [])]
    array.extend(v for v in edit.get("$add") or [] if v not in array)
    return array[:CATALOG_MAX_ARRAY]


def build_app(emulator: Emulator) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/users/track", emulator.track)
    app.router.add_post("/users/delete", emulator.delete_users)
    app.router.add_get("/catalogs", emulator.list_catalogs)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        app.router.add_route(method, "/catalogs/{catalog_name}/items", emulator.catalog_items_)
    app.router.add_post("/_emulator/config", emulator.set_config)
    app.router.add_get("/_emulator/state", emulator.state)
    app.router.add_get("/_emulator/objects", emulator.objects_)
    app.router.add_get("/_emulator/users", emulator.users_)
    app.router.add_get("/_emulator/catalogs", emulator.catalogs_state)
    app.router.add_get("/_emulator/catalogs/{catalog_name}", emulator.catalog_state)
    app.router.add_post("/_emulator/reset", emulator.reset_)
    return app


async def _serve(host: str, port: int, emulator: Emulator) -> None:
    runner = web.AppRunner(build_app(emulator), access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY {bound}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.braze_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--config", default="{}", help="initial settings as JSON")
    args = parser.parse_args(argv)
    emulator = Emulator()
    try:
        emulator.config.update(orjson.loads(args.config))
    except (orjson.JSONDecodeError, ValueError) as exc:
        parser.error(f"--config: {exc}")
    emulator._sync_catalogs()
    try:
        asyncio.run(_serve(args.host, args.port, emulator))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()

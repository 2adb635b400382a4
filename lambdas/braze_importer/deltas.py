"""Send Braze only what changed: the delta of a /users/track attributes object against what was last set.

Pure and on the hot path (it runs once per attributes object). A ``Record`` is what this importer last
set for one user, per attribute, in the least that tells a change apart:

- ``bytes``: a scalar, or anything sent whole (arrays holding anything but strings, arrays of objects):
  the value's canonical JSON when under 8 bytes, else 8 bytes of its BLAKE2b; ``UNKNOWN`` (b"?") when
  the value Braze holds is not known (an operation was sent, or two runs raced on it);
- ``frozenset[str]``: the items of an array of strings (Braze keeps each item once; order is no change);
- ``dict[str, bytes]``: a nested object, one digest per leaf keyed by the leaf's path as JSON array text
  (``'["address","city"]'``; an empty object is a leaf of its own, the root's path is ``'[]'``), and the
  whole object's digest under ``WHOLE`` ("*").

``diff`` gives the object to send and the ``Changes`` to commit once Braze accepted that object
(``unanswered`` gives those to commit when Braze's answer is unknown). Rules (Braze's /users/track
attribute semantics, as sandbox/braze_emulator.py applies them):

- unchanged values are dropped; an object left with identifiers only is not sent (when a record exists);
- a changed scalar is sent as is; a value that became null is sent as null once, then recorded as absent;
- an array of strings becomes ``{"add": [...], "remove": [...]}``; first seen, it is sent as is;
- a nested object sends only its changed leaves with ``"_merge_objects": true`` and null for what went;
- anything that is not a plain value (``inc``, array edits, ``$add``/``$remove``/``$update``,
  ``subscription_groups``, ``push_tokens``, nested objects of an input that carries ``_merge_objects``,
  arrays longer than the workspace keeps) is always sent and recorded as ``UNKNOWN``;
- an object Braze may ignore (``_update_existing_only``, an alias without ``_update_existing_only: false``,
  ``push_token_import``) is sent as is and makes what the record holds of its attributes ``UNKNOWN``;
- no record, a record older than ``max_age_seconds`` (or never rewritten whole), or ``full=True``:
  everything is sent and the record is rewritten from it;
- a user whose record would not fit one DynamoDB item is sent in full and the record made stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

import orjson

Value = bytes | frozenset[str] | dict[str, bytes]

# A DynamoDB item holds at most 400 KB; the record stays well under it (names, type overheads, the key).
MAX_RECORD_BYTES = 350_000
_ITEM_OVERHEAD = 200  # pk, updated_at, expires_at and their names
WHOLE = "*"  # the nested record's key of the whole object's digest (paths are JSON arrays: "[...")
FIELD_PREFIX = "a."  # the store's item attribute of a Braze attribute: cannot collide with pk/updated_at

# Keys that steer how Braze applies an object, or name the user: sent as they are, never diffed.
IDENTIFIERS = ("external_id", "braze_id", "user_alias")
CONTROL_KEYS = frozenset({"_update_existing_only", "_merge_objects", "push_token_import", "app_id"})
_PASS = frozenset(IDENTIFIERS) | CONTROL_KEYS
# Attributes whose value is a list of operations or devices, not a value Braze stores as given.
OPAQUE_ATTRIBUTES = frozenset({"subscription_groups", "push_tokens"})
# Standard attributes whose value is an object Braze takes whole (a location, a social profile): never
# sent as a deep merge of their changed keys.
WHOLE_OBJECTS = frozenset({"current_location", "facebook", "twitter"})

# The S3 object tag that asks for a full send of one file: every value sent, the records rewritten.
FULL_SEND_TAG = ("braze-send", "full")

_SORT = orjson.OPT_SORT_KEYS


def digest(value: Any) -> bytes:
    """The short form of a value: its canonical JSON (sorted keys) itself when under 8 bytes (numbers,
    flags, codes: a hash of those hides nothing), else 8 bytes of its BLAKE2b (lengths keep them apart)."""
    data = orjson.dumps(value, option=_SORT)
    if len(data) < 8:
        return data
    return blake2b(data, digest_size=8).digest()


EMPTY_OBJECT = digest({})
# What the record keeps of an attribute this importer set to null (Braze unset it): known absent. An
# attribute the record does not name is not known absent (Braze may hold a value set by someone else).
NULL = digest(None)


NEVER = float("-inf")  # ``updated_at`` of a record never rewritten whole: stale, so ignored
UNKNOWN = b"?"  # an attribute whose value at Braze is unknown (never a digest: not JSON, not 8 bytes)


@dataclass(slots=True)
class Record:
    """What was last set for one user: per Braze attribute name, a ``Value`` (or ``UNKNOWN``); when it was
    last rewritten whole (``updated_at``, epoch seconds; a record older than the maximum age, or
    ``NEVER`` rewritten whole, is ignored); ``version``, counting every write (a rewrite whole checks it)."""

    values: dict[str, Value]
    updated_at: float
    version: int = 0


@dataclass(slots=True)
class Changes:
    """What to do to a user's record once Braze accepted the object sent (or, from ``unanswered``, once
    Braze's answer is unknown).

    ``refreshed_at`` set: the record is rewritten whole with ``set`` as its values, if its version is still
    ``expected_version`` (None: no record); if not, the attributes it names become ``UNKNOWN``.
    Otherwise each attribute in ``set`` (whole value), ``remove`` (now absent) or ``paths`` (nested leaves
    set / removed by path) changes only if the record's version is still ``expected_version`` (when set)
    and it still holds ``expected[attribute]`` (None: absent); if not, it becomes ``UNKNOWN`` (another
    write came in between: which value Braze kept is unknown; a version, not the value alone, because a
    rewrite may have put the same value back meanwhile).
    ``unknown``: attributes to mark ``UNKNOWN`` whatever they hold. ``forget``: the record becomes stale
    (ignored until rewritten whole) and drops the attributes in ``remove``. Every write counts a version."""

    set: dict[str, Value] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    paths: dict[str, tuple[dict[str, bytes], list[str]]] = field(default_factory=dict)
    expected: dict[str, Value | None] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    refreshed_at: float | None = None
    expected_version: int | None = None
    forget: bool = False

    def __bool__(self) -> bool:
        return bool(
            self.set or self.remove or self.paths or self.unknown or self.forget or self.refreshed_at is not None
        )

    def touched(self) -> list[str]:
        """Every attribute these changes write or forget."""
        return [*self.set, *self.remove, *(a for a in self.paths if a not in self.set), *self.unknown]


@dataclass(slots=True)
class Delta:
    """``send``: the object to send (None: nothing to send); ``changes``: to commit once Braze accepted it
    (None: nothing to record). Counts are attribute values (identifiers and control keys not counted)."""

    send: dict[str, Any] | None
    changes: Changes | None
    read: int
    sent: int
    skipped: int
    dropped: bool = False
    too_large: bool = False


# -- the user's key ----------------------------------------------------------------------------


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")


def user_key(obj: dict[str, Any]) -> str | None:
    """The record key of the user an attributes object names, in Braze's order: external_id ("e:"),
    braze_id ("b:"), user alias ("a:<label>:<name>", the label's backslashes and colons escaped), then,
    only without a primary identifier, email ("m:", trimmed and lower-cased as Braze matches it) or
    phone ("p:", trimmed). None: the object names no user (it would be rejected)."""
    external_id = obj.get("external_id")
    if external_id is not None and external_id != "":
        return "e:" + (external_id if external_id.__class__ is str else str(external_id))
    braze_id = obj.get("braze_id")
    if braze_id is not None and braze_id != "":
        return "b:" + str(braze_id)
    alias = obj.get("user_alias")
    if isinstance(alias, dict):
        name, label = alias.get("alias_name"), alias.get("alias_label")
        if name and label:
            return "a:" + _escape(str(label)) + ":" + str(name)
    email = obj.get("email")
    if isinstance(email, str) and email.strip():
        return "m:" + email.strip().lower()
    phone = obj.get("phone")
    if isinstance(phone, str) and phone.strip():
        return "p:" + phone.strip()
    return None


def _identifier_keys(obj: dict[str, Any]) -> tuple[frozenset[str], bool]:
    """The keys that pass through untouched, and whether Braze may ignore the object (update only)."""
    external_id = obj.get("external_id")
    braze_id = obj.get("braze_id")
    only = obj.get("_update_existing_only")
    primary = (external_id is not None and external_id != "") or (braze_id is not None and braze_id != "")
    if primary:
        return _PASS, only is True or obj.get("push_token_import") is True
    alias = obj.get("user_alias")
    if isinstance(alias, dict) and alias.get("alias_name") and alias.get("alias_label"):
        # An alias alone updates only existing users unless told otherwise.
        return _PASS, only is not False or obj.get("push_token_import") is True
    email = obj.get("email")
    contact = "email" if isinstance(email, str) and email.strip() else "phone"
    return _PASS | {contact}, only is True or obj.get("push_token_import") is True


# -- what a value is ---------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _operation(value: dict[str, Any]) -> bool:
    """An object Braze reads as an operation on the attribute, not as a nested value."""
    keys = value.keys()
    if len(keys) == 1 and "inc" in keys and _is_number(value["inc"]):
        return True
    if keys and keys <= {"add", "remove"} and all(isinstance(v, list) for v in value.values()):
        return True
    return bool(keys) and keys <= {"$add", "$remove", "$update"}


def _empty(value: dict[str, Any]) -> bool:
    """An object holding nothing once Braze drops its nulls."""
    return all(item is None for item in value.values())


def _leaves(value: dict[str, Any], prefix: tuple[str, ...], out: dict[str, bytes]) -> None:
    empty = True
    for key, item in value.items():
        if item is None:
            continue  # Braze drops a nested null: the key is absent
        empty = False
        path = (*prefix, key)
        if item.__class__ is dict or isinstance(item, dict):
            _leaves(item, path, out)
        else:
            data = orjson.dumps(item, option=_SORT)
            out[orjson.dumps(path).decode()] = data if len(data) < 8 else blake2b(data, digest_size=8).digest()
    if empty:  # an object holding nothing once Braze drops its nulls: a leaf of its own
        out[orjson.dumps(prefix).decode()] = EMPTY_OBJECT


def leaves(value: dict[str, Any]) -> dict[str, bytes]:
    """A nested object's leaves: path (JSON array text) -> digest."""
    out: dict[str, bytes] = {}
    _leaves(value, (), out)
    return out


def nested(value: dict[str, Any]) -> dict[str, bytes]:
    """What the record keeps of a nested object: its leaves, and under ``WHOLE`` the digest of the whole
    object (an unchanged object is then told by one digest, without walking its leaves)."""
    out = leaves(value)
    out[WHOLE] = digest(value)
    return out


def _string_array(value: list[Any]) -> bool:
    return all(item.__class__ is str for item in value)


def _held(value: list[Any]) -> list[Any]:
    """The array Braze holds for an array sent whole: an array of scalars keeps each value once (its
    first occurrence); an array holding objects or arrays is kept as it is."""
    held: list[Any] = []
    for item in value:
        if isinstance(item, dict | list):
            return value
        if item not in held:
            held.append(item)
    return held


def recorded(value: Any) -> Value:
    """What the record keeps of a plain, non-null value."""
    if isinstance(value, list):
        return frozenset(value) if _string_array(value) else digest(_held(value))
    if isinstance(value, dict):
        return nested(value)
    return digest(value)


def _opaque(name: str, value: Any, merging_input: bool) -> bool:
    if name in OPAQUE_ATTRIBUTES:
        return True
    return isinstance(value, dict) and (merging_input or _operation(value))


# -- the delta ---------------------------------------------------------------------------------


def _place(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    last = path[-1]
    if isinstance(value, dict) and _empty(value):
        if not isinstance(node.get(last), dict):
            node[last] = {}  # else an emptied object: the nulls placed under it already empty it
        return
    node[last] = value


def _at(value: dict[str, Any], path: list[str]) -> Any:
    for key in path:
        value = value[key]
    return value


def _nested_delta(
    value: dict[str, Any], old: dict[str, bytes], new: dict[str, bytes]
) -> tuple[dict[str, Any], dict[str, bytes], list[str]]:
    """The deep-merge object that turns ``old`` into ``new``; the leaves set and the leaves removed."""
    tree: dict[str, Any] = {}
    gone = [p for p in old if p not in new]
    if gone:
        nodes = {()}
        for p in new:
            path = tuple(orjson.loads(p))
            for i in range(1, len(path) + 1):
                nodes.add(path[:i])
        for p in gone:
            path = orjson.loads(p)
            for i in range(1, len(path) + 1):
                if tuple(path[:i]) not in nodes:
                    _place(tree, path[:i], None)
                    break
    changed = {p: h for p, h in new.items() if old.get(p) != h}
    for p in changed:
        path = orjson.loads(p)
        if path:
            _place(tree, path, _at(value, path))
    return tree, changed, gone


def record_size(values: dict[str, Value]) -> int:
    """An upper estimate of the DynamoDB item holding these values, in bytes."""
    size = _ITEM_OVERHEAD
    for name, value in values.items():
        size += len(name.encode()) + len(FIELD_PREFIX) + 3
        if isinstance(value, bytes):
            size += len(value)
        elif isinstance(value, frozenset):
            size += sum(len(item.encode()) + 4 for item in value)
        else:
            size += sum(len(p.encode()) + len(h) + 4 for p, h in value.items())
    return size


def _too_long(value: Any, max_array: int | None) -> bool:
    """An array longer than Braze keeps: what it holds of it depends on how it was sent (a set keeps the
    first items, an "add" the last), so it is sent whole and not recorded."""
    return (
        max_array is not None and isinstance(value, list) and len(value) > max_array and len(_held(value)) > max_array
    )


def _full(
    obj: dict[str, Any], record: Record | None, now: float, passing: frozenset[str], max_array: int | None
) -> Delta:
    merging_input = "_merge_objects" in obj
    changes = Changes(refreshed_at=now, expected_version=None if record is None else record.version)
    sets = changes.set
    read = 0
    # An upper bound of record_size, kept as values are recorded (4 bytes a character: UTF-8's most);
    # the exact size is computed only when the bound passes the limit (a first sighting runs once per
    # user: it is the first import's hot path).
    bound = _ITEM_OVERHEAD
    for name, value in obj.items():
        if name in passing:
            continue
        read += 1
        cls = value.__class__
        bound += 4 * len(name) + len(FIELD_PREFIX) + 3
        if value is None:
            sets[name] = NULL
        elif name in OPAQUE_ATTRIBUTES:
            sets[name] = UNKNOWN
        elif cls is str or cls is int or cls is float or cls is bool:
            data = orjson.dumps(value)
            sets[name] = data if len(data) < 8 else blake2b(data, digest_size=8).digest()
            bound += 8
        elif _opaque(name, value, merging_input) or _too_long(value, max_array):
            sets[name] = UNKNOWN
        elif name in WHOLE_OBJECTS:
            sets[name] = digest(value)
            bound += 8
        else:
            kept = sets[name] = recorded(value)
            if kept.__class__ is frozenset:
                bound += 4 * sum(map(len, kept)) + 4 * len(kept)
            elif kept.__class__ is dict:
                bound += 4 * sum(map(len, kept)) + 12 * len(kept)
            else:
                bound += 8
    if bound > MAX_RECORD_BYTES and record_size(sets) > MAX_RECORD_BYTES:
        return Delta(obj, _forget(obj, record, passing), read, read, 0, too_large=True)
    return Delta(obj, changes, read, read, 0)


def diff(
    obj: dict[str, Any],
    record: Record | None,
    *,
    now: float,
    max_age_seconds: float,
    full: bool = False,
    max_array: int | None = None,
) -> Delta:
    """What to send for ``obj`` given the user's ``record`` (see the module's rules). ``max_array``: the
    workspace's maximum array length, when known; a longer array is sent whole and never recorded."""
    passing, update_only = _identifier_keys(obj)
    if update_only:
        return _forgetting(obj, record, passing)
    if full or record is None or now - record.updated_at > max_age_seconds:
        return _full(obj, record, now, passing, max_array)
    values = record.values
    merging_input = "_merge_objects" in obj
    send: dict[str, Any] = {}
    sets: dict[str, Value] = {}
    paths: dict[str, tuple[dict[str, bytes], list[str]]] = {}
    expected: dict[str, Value | None] = {}
    unknown: list[str] = []
    read = sent = 0
    # Nested attributes sent as a deep merge of their changed leaves; whether one in this object must go
    # whole (first seen, or its merge would read as an operation): "_merge_objects" is the whole
    # request object's, so a whole value beside it would be merged, not set.
    merging: list[tuple[str, dict[str, Any], bytes]] = []
    whole_needed = False
    for name, value in obj.items():
        if name in passing:
            send[name] = value
            continue
        read += 1
        old = values.get(name)
        if name in OPAQUE_ATTRIBUTES or (max_array is not None and _too_long(value, max_array)):
            send[name] = value
            if old != UNKNOWN:
                unknown.append(name)
        elif value is None:
            if old == NULL:
                continue
            send[name] = None
            sets[name] = NULL
            expected[name] = old
        elif value.__class__ is list:
            if _string_array(value):
                if old.__class__ is frozenset:
                    items = frozenset(value)
                    if items == old:
                        continue
                    edit: dict[str, list[str]] = {}
                    added = [v for v in dict.fromkeys(value) if v not in old]
                    removed = sorted(old - items)
                    if added:
                        edit["add"] = added
                    if removed:
                        edit["remove"] = removed
                    send[name] = edit
                    sets[name] = items
                else:
                    send[name] = value
                    sets[name] = frozenset(value)
            else:
                h = digest(_held(value))
                if h == old:
                    continue
                send[name] = value
                sets[name] = h
            expected[name] = old
        elif value.__class__ is dict or isinstance(value, dict):
            if _opaque(name, value, merging_input):
                send[name] = value
                if old != UNKNOWN:
                    unknown.append(name)
            elif name in WHOLE_OBJECTS:
                h = digest(value)
                if h == old:
                    continue
                send[name] = value
                sets[name] = h
                expected[name] = old
            else:
                whole = digest(value)
                if old.__class__ is dict:
                    if old.get(WHOLE) == whole:
                        continue
                    new = leaves(value)
                    before = {p: h for p, h in old.items() if p != WHOLE}
                    if new == before:
                        continue  # the same leaves (a null or key order apart): nothing to send
                    tree, changed, gone = _nested_delta(value, before, new)
                    send[name] = tree
                    changed[WHOLE] = whole
                    paths[name] = (changed, gone)
                    merging.append((name, value, whole))
                    # A delta that reads as an operation ({"inc": 2}) would be applied as one: whole.
                    whole_needed = whole_needed or _operation(tree)
                else:
                    send[name] = value
                    new = leaves(value)
                    new[WHOLE] = whole
                    sets[name] = new
                    whole_needed = True
                expected[name] = old
        else:
            data = orjson.dumps(value)
            h = data if len(data) < 8 else blake2b(data, digest_size=8).digest()
            if h == old:
                continue
            send[name] = value
            sets[name] = h
            expected[name] = old
        sent += 1
    if not sent:
        return Delta(None, None, read, 0, read, dropped=True)
    if merging and whole_needed:
        for name, value, whole in merging:  # every nested change goes whole: Braze sets each object
            send[name] = value
            del paths[name]
            new = leaves(value)
            new[WHOLE] = whole
            sets[name] = new
    elif merging:
        send["_merge_objects"] = True
    changes = (
        Changes(sets, [], paths, expected, unknown, expected_version=record.version)
        if sets or paths or unknown
        else None
    )
    if (sets or paths) and record_size(apply(record, changes).values) > MAX_RECORD_BYTES:  # type: ignore[arg-type,union-attr]
        return Delta(obj, _forget(obj, record, passing), read, read, 0, too_large=True)
    return Delta(send, changes, read, sent, read - sent)


def _forget(obj: dict[str, Any], record: Record | None, passing: frozenset[str]) -> Changes:
    """The record of a user too large to record: stale, without the attributes it or the object names."""
    names = dict.fromkeys(record.values) if record is not None else {}
    names.update((name, None) for name in obj if name not in passing)
    return Changes(remove=list(names), forget=True)


def _forgetting(obj: dict[str, Any], record: Record | None, passing: frozenset[str]) -> Delta:
    """An object Braze may ignore: sent as is; what the record holds of the attributes it names becomes
    unknown (Braze applied them or not)."""
    changes = Changes()
    read = 0
    values = record.values if record is not None else {}
    for name in obj:
        if name in passing:
            continue
        read += 1
        if name in values and values[name] != UNKNOWN:
            changes.unknown.append(name)
    return Delta(obj, changes if changes else None, read, read, 0)


def sent_whole(obj: dict[str, Any], record: Record | None) -> Delta:
    """``obj`` sent as it is, the record claiming nothing of what it names (when its delta cannot be
    computed: the object is then sent, or rejected, exactly as without deltas)."""
    return _forgetting(obj, record, _identifier_keys(obj)[0])


def unanswered(delta: Delta) -> Changes | None:
    """The changes to commit instead of ``delta.changes`` when Braze's answer to the object sent is
    unknown (no answer, or a failure after which Braze may have applied it): the record forgets every
    attribute the object set, so it claims nothing either way (the next file resends those)."""
    changes = delta.changes
    if delta.send is None or changes is None:
        return None
    if changes.forget:
        return changes
    names = changes.touched()
    return Changes(unknown=names) if names else None


# -- applying changes --------------------------------------------------------------------------


def attribute_after(old: Value | None, name: str, changes: Changes) -> Value | None:
    """One attribute's value after ``changes`` (None: absent), given its value before."""
    if name in changes.set:
        return changes.set[name]
    if name in changes.paths:
        paths_set, paths_gone = changes.paths[name]
        nested = dict(old) if isinstance(old, dict) else {}
        for p in paths_gone:
            nested.pop(p, None)
        nested.update(paths_set)
        return nested or None
    return None


def apply(record: Record | None, changes: Changes) -> Record | None:
    """The record after ``changes`` (what the store does, without concurrent writers); None: no record
    that a diff would use (a forgotten record is stale)."""
    version = record.version + 1 if record is not None else 1
    if changes.forget:
        return None
    if changes.refreshed_at is not None:
        return Record(dict(changes.set), changes.refreshed_at, version)
    values = dict(record.values) if record is not None else {}
    for name in changes.remove:
        values.pop(name, None)
    for name in changes.unknown:
        values[name] = UNKNOWN
    for name in (*changes.set, *changes.paths):
        new = attribute_after(values.get(name), name, changes)
        if new is None:
            values.pop(name, None)
        else:
            values[name] = new
    return Record(values, record.updated_at if record is not None else NEVER, version)

"""What reading Cloud Data Ingestion rows costs, against the same events as plain Braze objects.

``python -m bench.cdi_rows N``: N events written three ways, each read and checked as the importer
does before batching (framing, decoding, the folder's rules), nothing sent:
- baseline: plain Braze event objects in JSON Lines, directly under incoming/ (kind inferred);
- CDI JSON Lines in events/ (``EXTERNAL_ID`` + ``PAYLOAD`` as a JSON string, merged per row);
- CDI CSV in events/ (the same rows as Braze's CDI CSV samples write them).
Prints one JSON object with rows per second and each ratio to the baseline, measured in this run.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

import sandbox  # noqa: F401 - first: it puts lambdas/ on the path, as a bundle's root is

# isort: split
from braze_importer.csv_reader import iter_rows
from braze_importer.objects import Kind, classify
from braze_importer.reader import START, Element, Format, iter_elements
from braze_importer.rows import as_object, shaped

CHUNK = 1 << 20


def payloads(n: int) -> Iterator[tuple[str, dict[str, Any]]]:
    for i in range(n):
        yield (
            f"user-{i:09d}",
            {
                "app_id": "app",
                "name": f"view-{i % 300}",
                "time": "2024-04-02T14:34:08",
                "properties": {"bool_value": i % 2 == 0, "preceding_event": "unsubscribe", "important_number": i},
            },
        )


def files(n: int) -> dict[str, bytes]:
    plain, cdi, csv = [], [], ["EXTERNAL_ID,PAYLOAD"]
    for user, payload in payloads(n):
        text = orjson.dumps(payload).decode()
        plain.append(orjson.dumps({"external_id": user, **payload}))
        cdi.append(orjson.dumps({"EXTERNAL_ID": user, "PAYLOAD": text}))
        csv.append(user + ',"' + text.replace('"', '""') + '"')
    return {
        "plain": b"\n".join(plain) + b"\n",
        "cdi_jsonl": b"\n".join(cdi) + b"\n",
        "cdi_csv": ("\n".join(csv) + "\n").encode(),
    }


def chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), CHUNK):
        yield data[i : i + CHUNK]


def plain(data: bytes) -> Iterable[Element]:
    for element in iter_elements(chunks(data), Format.LINES, START):
        if element.error is None:
            classify(element.value)
        yield element


def cdi_jsonl(data: bytes) -> Iterable[Element]:
    return shaped(iter_elements(chunks(data), Format.LINES, START), Kind.EVENT)


def cdi_csv(data: bytes) -> Iterable[Element]:
    convert: Callable[[dict[str, Any]], dict[str, Any]] = lambda row: as_object(row, Kind.EVENT)  # noqa: E731
    return iter_rows(chunks(data), START, cdi=True, kind=Kind.EVENT, convert=convert)


def rate(read: Callable[[bytes], Iterable[Element]], data: bytes, n: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        count = sum(1 for e in read(data) if e.error is None)
        best = min(best, time.perf_counter() - began)
        assert count == n, (read.__name__, count)
    return n / best


def main(n: int) -> dict[str, Any]:
    data = files(n)
    baseline = rate(plain, data["plain"], n)
    result: dict[str, Any] = {"rows": n, "plain_rows_per_second": round(baseline)}
    for name, read in (("cdi_jsonl", cdi_jsonl), ("cdi_csv", cdi_csv)):
        measured = rate(read, data[name], n)
        result[f"{name}_rows_per_second"] = round(measured)
        result[f"{name}_ratio"] = round(measured / baseline, 3)
    return result


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)))

"""JSON reading when some field holds 19 or more consecutive digits (a long phone number or id
in a string): such digits may be an integer beyond 64 bits, which orjson turns into a float, so
the reader keeps those exact; this measures what that costs a file where no integer is that long.

The baseline, in the same run, is the same file with 18-digit fields (the reader's fast path).
Prints one JSON object with every figure (seconds per pass, best of ``repeat``, interleaved).
Usage: ``python -m bench.long_digits [objects]``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import orjson

# isort: off
from sandbox import sample_data  # noqa: F401  first: it puts lambdas/ on the path, as a bundle's root is
from braze_importer.reader import Format, iter_elements

# isort: on


def _chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), 1 << 20):
        yield data[i : i + (1 << 20)]


def _once(data: bytes, fmt: Format) -> float:
    began = time.perf_counter()
    for _ in iter_elements(_chunks(data), fmt):
        pass
    return time.perf_counter() - began


def main(objects: int = 300_000, repeat: int = 5) -> dict[str, float]:
    files: dict[str, tuple[bytes, Format]] = {}
    for digits in (18, 19):
        objs = [
            {"external_id": f"u{i}", "phone": "1" * digits, "first_name": "Alice", "n": i, "tags": ["a", "b"]}
            for i in range(objects)
        ]
        files[f"lines_{digits}_digits_s"] = (b"\n".join(orjson.dumps(o) for o in objs) + b"\n", Format.LINES)
        files[f"array_{digits}_digits_s"] = (orjson.dumps(objs), Format.ARRAY)
    # Interleaved, best of ``repeat``: the machine is shared, and its load drifts.
    figures = dict.fromkeys(files, float("inf"))
    for _ in range(repeat):
        for name, (data, fmt) in files.items():
            figures[name] = min(figures[name], _once(data, fmt))
    for kind in ("lines", "array"):
        figures[f"{kind}_slowdown"] = figures[f"{kind}_19_digits_s"] / figures[f"{kind}_18_digits_s"]
    return {k: round(v, 3) for k, v in figures.items()}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300_000)))

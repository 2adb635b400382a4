"""One line per check."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    name: str
    ok: bool | None  # None: not applicable here (say why in ``detail``)
    detail: str

    @property
    def line(self) -> str:
        status = {True: "PASS", False: "FAIL", None: "SKIP"}[self.ok]
        return f"{status}  {self.name}: {self.detail}"


def passed(name: str, detail: str) -> Result:
    return Result(name, True, detail)


def failed(name: str, detail: str) -> Result:
    return Result(name, False, detail)

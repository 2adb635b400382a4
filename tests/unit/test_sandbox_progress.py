"""The sandbox's progress line: rewritten in place on a terminal, absent from logs and pipes."""

from __future__ import annotations

import io
import time

from sandbox.progress import CLEAR, ProgressLine, line


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_line_rewritten_and_cleared_at_the_end() -> None:
    stream = Terminal()
    with ProgressLine(lambda: (1_500, 2_000_000), 8_000_000, stream, every=0.02) as progress:
        time.sleep(0.1)
        progress.say("invocation 1: completed")
    written = stream.getvalue()
    assert written.count(CLEAR + "1,500 objects read, 2.0 of 8.0 MB settled (25 %), ") >= 2
    assert CLEAR + "invocation 1: completed\n" in written
    assert written.endswith(CLEAR) and written.count("\n") == 1  # only what was said stays


def test_a_pipe_gets_the_lines_said_and_no_progress() -> None:
    stream = io.StringIO()
    with ProgressLine(lambda: (1, 1), 1, stream, every=0.01) as progress:
        time.sleep(0.05)
        progress.say("invocation 1: completed")
    assert stream.getvalue() == "invocation 1: completed\n"


def test_the_line_counts_objects_bytes_and_rate() -> None:
    assert (
        line(12_345, 3_200_000, 10_000_000, 3.0)
        == "12,345 objects read, 3.2 of 10.0 MB settled (32 %), 4,115 objects/s"
    )

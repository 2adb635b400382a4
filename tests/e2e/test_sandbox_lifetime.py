"""Nothing outlives the sandbox: an import ended by SIGTERM, or its process killed outright, leaves
no moto server, Braze emulator or worker process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox import sample_data
from tests.e2e.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]


def _processes() -> dict[int, tuple[int, int, str]]:
    """Every live process: pid -> (parent pid, process group, state), from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended while we looked
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[0])
    return found


def _descendants(pid: int) -> set[int]:
    processes = _processes()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, (parent, _, _) in processes.items() if parent in frontier} - found
        found |= frontier
    return found


def _survivors(pids: set[int], group: int, grace: float = 10.0) -> set[int]:
    """Which of ``pids``, or of the process group, are still running after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    while True:
        processes = _processes()
        alive = {p for p, (_, pgid, state) in processes.items() if (p in pids or pgid == group) and state != "Z"}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _start_import(tmp_path: Path) -> tuple[subprocess.Popen[bytes], set[int]]:
    """Two files at once, slowed by the emulator: moto server, the emulator and two workers, mid-run."""
    files = [sample_data.write(tmp_path / f"big-{i}.json", 5_000) for i in range(2)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "import", *map(str, files), "--emulator", '{"latency_ms": 200}',
         "--max-in-flight", "1"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(_workers(proc.pid)) < 2:
        time.sleep(0.3)
    time.sleep(3)  # the workers are warm and importing
    assert proc.poll() is None, "the import ended before it could be interrupted"
    return proc, _descendants(proc.pid)


def _workers(pid: int) -> list[int]:
    """The sandbox's worker processes (spawned ones run multiprocessing's spawn_main)."""
    workers = []
    for child in _descendants(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(child)
        except OSError:
            continue
    return workers


def test_sigterm_mid_import_stops_every_process_it_started(tmp_path: Path) -> None:
    proc, children = _start_import(tmp_path)
    assert len(children) >= 4  # moto server, the emulator, two workers

    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)  # to the command alone, as `timeout` or a closed terminal would
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 128 + signal.SIGTERM
    assert time.monotonic() - signalled < 10, "the workers ran their invocations on after the command was ended"
    assert b"Traceback" not in stderr
    assert _survivors(children, proc.pid) == set()


def test_a_killed_sandbox_takes_its_services_with_it(tmp_path: Path) -> None:
    proc, children = _start_import(tmp_path)

    os.kill(proc.pid, signal.SIGKILL)  # no clean-up runs: the children must end by themselves
    proc.communicate(timeout=30)

    assert _survivors(children, proc.pid) == set()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_ctrl_c_or_a_closed_terminal_ends_the_command_and_all_it_started_in_one_line(
    tmp_path: Path, signum: signal.Signals
) -> None:
    proc, children = _start_import(tmp_path)

    signalled = time.monotonic()
    os.killpg(proc.pid, signum)  # as a terminal does: every process of its foreground group gets it
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 128 + signum
    assert b"Traceback" not in stderr and b"KeyboardInterrupt" not in stderr, stderr.decode()[-3000:]
    # Not the services' errors (moto and the emulator stop last, in a group of their own) nor the workers'.
    assert time.monotonic() - signalled < 10 and stderr.decode().count("\n") <= 1, stderr.decode()[-3000:]
    assert _survivors(children, proc.pid) == set()

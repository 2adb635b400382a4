"""Mistakes get one-line answers: what went wrong and how to fix it, on stderr, exit 2 for usage and
1 for a run that failed; the traceback only with --debug."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e


def sandbox(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, list[str]]:
    """Exit code and the lines of stderr of ``python -m sandbox`` (``env``: variables set, or unset by None)."""
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None},
    )  # fmt: skip
    return proc.returncode, proc.stderr.splitlines()


@pytest.fixture
def small_file(tmp_path: Path) -> Path:
    path = tmp_path / "one.jsonl"
    path.write_text('{"external_id": "u1", "name": "viewed", "time": "2024-04-02T14:34:08"}\n')
    return path


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--max-in-flight", "lots", "argument --max-in-flight: invalid positive int value: 'lots'"),
        ("--max-in-flight", "0", "argument --max-in-flight: invalid positive int value: '0'"),
        ("--ambiguous", "maybe", "argument --ambiguous: invalid choice: 'maybe'"),
        ("--emulator", "{latency", "--emulator is not valid JSON"),
        ("--requests-per-second", "-1", "argument --requests-per-second: invalid non-negative float value: '-1'"),
        ("--requests-per-second", "5000", "--requests-per-second 5000 is above the workspace's limit"),
        ("--braze-url", "http://127.0.0.1:9", "--braze-url needs --braze-api-key"),
        ("--braze-url", "junk", "argument --braze-url: must be an http(s) URL"),
        ("--emulator", "[1, 2]", "--emulator must be a JSON object of settings"),
        ("--emulator", '{"latency_ms": 1e999}', "--emulator holds a number too large to be one"),
        ("--invocation-seconds", "inf", "argument --invocation-seconds: invalid positive float value: 'inf'"),
        ("--keep", "/proc/nope", "argument --keep: /proc/nope cannot be made: No such file or directory"),
        ("--max-in-flight", "100000000", "--max-in-flight"),  # the importer's settings, refused at its start
    ],
)
def test_a_bad_flag_value_is_one_line_and_exit_2(small_file: Path, flag: str, value: str, said: str) -> None:
    code, lines = sandbox("import", str(small_file), flag, value)
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("error: ") and said in lines[0]


def test_keep_naming_a_file_is_refused_before_anything_runs(small_file: Path) -> None:
    code, lines = sandbox("import", str(small_file), "--keep", str(small_file))
    assert code == 2 and len(lines) == 1
    assert "is a file, not a folder" in lines[0]
    code, lines = sandbox("import", str(small_file), "--keep", str(small_file / "kept"))
    assert code == 2 and len(lines) == 1 and "kept cannot be made: Not a directory" in lines[0]


def test_emulator_settings_beside_another_braze_are_refused(small_file: Path) -> None:
    code, lines = sandbox("import", str(small_file), "--braze-url", "http://127.0.0.1:9", "--braze-api-key", "k",
                          "--emulator", '{"latency_ms": 5}')  # fmt: skip
    assert code == 2
    assert lines == ["error: --emulator configures the built-in Braze emulator: with --braze-url none runs"]


def test_an_unknown_emulator_setting_passes_the_emulators_own_message_up(small_file: Path) -> None:
    code, lines = sandbox("import", str(small_file), "--emulator", '{"latency": 5}')
    assert code == 2
    assert lines == ["error: the Braze emulator refused its settings: unknown setting 'latency'"]


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    for args in (
        ("import", str(tmp_path / "absent.jsonl")),
        ("currents", str(tmp_path / "absent")),
        ("bulk-upload", "--data-file", str(tmp_path / "absent.csv"), "--s3-filename", "x.csv"),
    ):
        code, lines = sandbox(*args)
        assert code == 2 and len(lines) == 1 and "absent" in lines[0], args


def test_an_unknown_command_is_one_line() -> None:
    code, lines = sandbox("imports", "x")
    assert code == 2 and len(lines) == 1 and "invalid choice: 'imports'" in lines[0]


def test_a_missing_dependency_says_how_to_install(small_file: Path, tmp_path: Path) -> None:
    # Given a Python on which the emulator's aiohttp cannot be imported
    shadow = tmp_path / "shadow" / "aiohttp"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'aiohttp'\", name='aiohttp')\n")

    code, lines = sandbox("import", str(small_file), env={"PYTHONPATH": str(shadow.parent)})

    assert code == 2 and len(lines) == 1
    assert "No module named 'aiohttp'" in lines[0] and "make demo" in lines[0]
    assert "refused its settings" not in lines[0]  # the emulator's own answer, read as a missing module


def test_the_emulator_run_alone_without_its_dependency_says_which_python(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "aiohttp"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'aiohttp'\", name='aiohttp')\n")

    proc = subprocess.run(
        [sys.executable, "-m", "sandbox.braze_emulator", "--port", "0"], cwd=ROOT, capture_output=True, text=True,
        timeout=60, env={**os.environ, "PYTHONPATH": str(shadow.parent)},
    )  # fmt: skip

    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        "error: No module named 'aiohttp': run it with .venv/bin/python (make demo or make test creates .venv)"
    ]


def test_bedrock_without_credentials_says_what_to_set(tmp_path: Path) -> None:
    no_credentials: dict[str, str | None] = {
        "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true",
    } | dict.fromkeys(
        ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
         "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE")
    )  # fmt: skip
    folder = tmp_path / "event_type=users.behaviors.Purchase" / "date=2026-11-23-10"
    folder.mkdir(parents=True)
    (folder / "00000.avro").write_bytes(b"")  # never read: the credentials are checked first
    code, lines = sandbox("currents", str(tmp_path), "--bedrock", env=no_credentials)
    assert code == 2 and len(lines) == 1
    assert "--bedrock" in lines[0] and "AWS_PROFILE" in lines[0]


def test_debug_adds_the_traceback(small_file: Path) -> None:
    code, lines = sandbox("import", str(small_file), "--emulator", '{"latency": 5}', "--debug")
    assert code == 2
    assert lines[0].startswith("Traceback") and lines[-1].endswith("unknown setting 'latency'")


def test_currents_refuses_files_the_personalizer_would_ignore_before_starting(tmp_path: Path) -> None:
    lone = tmp_path / "events.avro"  # not under an event_type=… folder: Lambda would skip it
    lone.write_bytes(b"Obj\x01")
    empty = tmp_path / "empty"
    empty.mkdir()

    code, lines = sandbox("currents", str(lone))
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"error: {lone}: the personalizer reads only .avro files under a folder event_type=")
    assert sandbox("currents", str(empty)) == (2, [f"error: no .avro file in {empty}"])


def test_currents_keys_keep_the_part_of_brazes_layout_the_personalizer_reads(tmp_path: Path) -> None:
    from sandbox.currents import PREFIX, keys, unread

    folder = tmp_path / "event_type=users.behaviors.Purchase" / "date=2026-11-23-10"
    folder.mkdir(parents=True)
    (folder / "00000.avro").write_bytes(b"")
    expected = [(folder / "00000.avro", PREFIX + "event_type=users.behaviors.Purchase/date=2026-11-23-10/00000.avro")]
    for given in (tmp_path, folder.parent, folder, folder / "00000.avro"):
        assert keys([given]) == expected and unread(expected) == []


def test_a_profile_that_does_not_exist_stops_only_what_needs_aws(small_file: Path, tmp_path: Path) -> None:
    missing_profile: dict[str, str | None] = {"AWS_PROFILE": "nope", "AWS_CONFIG_FILE": str(tmp_path / "none")}
    code, lines = sandbox("import", str(small_file), env=missing_profile)
    assert code == 0, lines  # moto takes placeholder credentials: the profile is never read

    folder = tmp_path / "event_type=users.behaviors.Purchase" / "date=2026-11-23-10"
    folder.mkdir(parents=True)
    (folder / "00000.avro").write_bytes(b"")
    code, lines = sandbox("currents", str(tmp_path), "--bedrock", env=missing_profile)
    assert code == 2 and len(lines) == 1 and "could not be found: set AWS_PROFILE" in lines[0]


def test_currents_refuses_two_copies_of_one_layout_that_would_replace_each_other(tmp_path: Path) -> None:
    for copy in ("a", "b"):
        folder = tmp_path / copy / "dataexport.x" / "event_type=users.behaviors.Purchase" / "date=2026-11-23-10"
        folder.mkdir(parents=True)
        (folder / "00000.avro").write_bytes(b"")
    (tmp_path / "a" / "dataexport.x" / "event_type=users.behaviors.Purchase" / "folder.avro").mkdir()

    code, lines = sandbox("currents", str(tmp_path / "a"), str(tmp_path / "b"))

    assert code == 2 and len(lines) == 1
    assert (
        "would both be currents/dataexport.x/event_type=users.behaviors.Purchase/date=2026-11-23-10/00000.avro"
        in lines[0]
    )


@pytest.mark.parametrize(
    ("package", "raises", "said"),
    [
        ("aiohttp", "ModuleNotFoundError('No module named aiohttp', name='aiohttp')",
         "No module named 'aiohttp' (the Braze emulator needs it)"),
        ("flask", "ModuleNotFoundError(\"No module named 'flask'\", name='flask')",
         "No module named 'flask' (moto server needs it)"),
    ],
)  # fmt: skip
def test_a_module_a_service_lacks_is_named_in_one_line(small_file: Path, tmp_path: Path, package: str,
                                                        raises: str, said: str) -> None:  # fmt: skip
    shadow = tmp_path / "shadow" / package
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(f"raise {raises}\n")

    code, lines = sandbox("import", str(small_file), env={"PYTHONPATH": str(shadow.parent)})

    assert code == 2 and len(lines) == 1 and said in lines[0], lines


def test_a_usage_mistake_is_said_before_the_files_a_folder_leaves_out(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"external_id": "u1"}\n')
    (tmp_path / "notes.txt").write_text("not an import\n")
    code, lines = sandbox("import", str(tmp_path), "--requests-per-second", "5000")
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: --requests-per-second 5000")


def test_the_users_own_aws_set_up_does_not_reach_the_sandbox(small_file: Path, tmp_path: Path) -> None:
    broken = tmp_path / "config"
    broken.write_text("not an AWS config [\n")
    code, lines = sandbox("import", str(small_file), env={
        "AWS_CONFIG_FILE": str(broken), "AWS_SHARED_CREDENTIALS_FILE": str(broken),
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9",
    })  # fmt: skip
    assert code == 0, lines


def test_a_setting_refused_in_the_workers_is_one_line(small_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other" / small_file.name
    other.parent.mkdir()
    other.write_bytes(small_file.read_bytes())
    code, lines = sandbox("import", str(small_file), str(other), "--max-in-flight", "100000000")
    assert code == 2 and len(lines) == 1 and "--max-in-flight" in lines[0], lines

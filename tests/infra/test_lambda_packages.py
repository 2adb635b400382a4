"""What Lambda can run, and what makes a bundle change, checked without the package index."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stacks.constructs import python_function
from stacks.constructs.python_function import (
    LAMBDAS_DIR,
    LOCK,
    PIP_PLATFORM,
    asset_hash,
    lambda_incompatible,
    pins,
    tag_runs_on_lambda,
)

PACKAGES = sorted(p.parent.name for p in LAMBDAS_DIR.glob("*/requirements.txt"))


@pytest.mark.parametrize(
    "tag",
    [
        "cp314-cp314-manylinux_2_28_aarch64",
        "cp314-cp314-manylinux_2_34_aarch64",
        "cp314-cp314-manylinux2014_aarch64",
        "cp314-cp314-manylinux_2_17_aarch64",
        "cp39-abi3-manylinux_2_28_aarch64",
        "py3-none-any",
        "cp314-none-any",
    ],
)
def test_tags_lambda_runs(tag: str) -> None:
    assert tag_runs_on_lambda(tag)


@pytest.mark.parametrize(
    "tag",
    [
        "cp314-cp314-manylinux_2_35_aarch64",  # glibc newer than Amazon Linux 2023's 2.34
        "cp314-cp314-manylinux_2_39_aarch64",
        "cp314-cp314-manylinux_2_28_x86_64",
        "cp314-cp314-manylinux2014_x86_64",
        "cp313-cp313-manylinux_2_28_aarch64",  # another Python's ABI
        "cp311-cp311-manylinux_2_17_aarch64",
        "cp314-cp314t-manylinux_2_28_aarch64",  # free-threaded build
        "cp315-abi3-manylinux_2_28_aarch64",
        "cp314-cp314-musllinux_1_2_aarch64",
        "cp314-cp314-macosx_11_0_arm64",
        "py2-none-any",
        "not-a-tag",
    ],
)
def test_tags_lambda_cannot_run(tag: str) -> None:
    assert not tag_runs_on_lambda(tag)


def test_a_bundle_with_one_foreign_wheel_is_refused(tmp_path: Path) -> None:
    for name, tags in (
        ("good-1.0", ["cp314-cp314-manylinux_2_28_aarch64"]),
        ("pure-1.0", ["py2-none-any", "py3-none-any"]),
        ("bad-1.0", ["cp314-cp314-manylinux_2_39_aarch64"]),
    ):
        info = tmp_path / f"{name}.dist-info"
        info.mkdir()
        (info / "WHEEL").write_text("Wheel-Version: 1.0\n" + "".join(f"Tag: {t}\n" for t in tags))
    assert lambda_incompatible(tmp_path) == ["bad-1.0.dist-info: cp314-cp314-manylinux_2_39_aarch64"]


def test_pip_sees_both_manylinux_families_for_cpython_314_wheels_only() -> None:
    args = " ".join(PIP_PLATFORM)
    assert "--platform manylinux_2_28_aarch64" in args and "--platform manylinux2014_aarch64" in args
    assert "--implementation cp" in args and "--python-version 3.14" in args and "--only-binary=:all:" in args


@pytest.mark.parametrize("package", PACKAGES)
def test_every_lock_pins_each_requirement_at_its_version(package: str) -> None:
    """A requirement added or re-pinned without `make lock` fails here, not in a deploy."""
    wanted = pins(LAMBDAS_DIR / package / "requirements.txt")
    locked = pins(LAMBDAS_DIR / package / LOCK)
    assert {name: locked.get(name) for name in wanted} == wanted
    declared = [
        line
        for line in (LAMBDAS_DIR / package / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(declared) == len(wanted), "every runtime requirement is pinned with =="


def test_asset_hash_changes_with_the_lock_the_code_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(LAMBDAS_DIR / "bulk_upload", tmp_path / "bulk_upload")
    shutil.copytree(LAMBDAS_DIR / "pipeline_common", tmp_path / "pipeline_common")
    monkeypatch.setattr(python_function, "LAMBDAS_DIR", tmp_path)
    before = asset_hash("bulk_upload")
    (tmp_path / "bulk_upload" / "__pycache__").mkdir(exist_ok=True)
    (tmp_path / "bulk_upload" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"noise")
    assert asset_hash("bulk_upload") == before, "bytecode caches are not part of the bundle"
    lock = tmp_path / "bulk_upload" / LOCK
    lock.write_text(lock.read_text().replace("anyio==", "anyio==0.0.0\n# was "))
    after_lock = asset_hash("bulk_upload")
    assert after_lock != before, "a transitive pin changed: the bundle changes"
    (tmp_path / "bulk_upload" / "webhook.py").write_text("# changed\n")
    after_code = asset_hash("bulk_upload")
    assert after_code != after_lock
    (tmp_path / "pipeline_common" / "tracing.py").write_text("# changed\n")
    assert asset_hash("bulk_upload") != after_code, "the shared package is in every bundle"


def test_the_runtime_sdk_is_uninstalled_from_a_bundle_unless_asked_for(tmp_path: Path) -> None:
    """The X-Ray SDK pulls in botocore; a bundled botocore would shadow the runtime's beside its boto3."""

    def install(name: str, version: str, files: dict[str, str]) -> None:
        info = tmp_path / f"{name}-{version}.dist-info"
        info.mkdir()
        for relative in files:
            (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / relative).write_text("x")
        listed = [*files, f"{info.name}/RECORD", "../outside"]  # a script pip put outside the target
        (info / "RECORD").write_text("".join(f"{r},,\n" for r in listed))

    install("botocore", "1.44.8", {"botocore/__init__.py": "", "botocore/data/s3/x.json": ""})
    install("python_dateutil", "2.9.0.post0", {"dateutil/__init__.py": ""})
    install("six", "1.17.0", {"six.py": ""})
    install("aws_xray_sdk", "2.15.0", {"aws_xray_sdk/__init__.py": ""})
    (tmp_path.parent / "outside").write_text("not the bundle's")

    python_function.remove_runtime_provided(tmp_path, keep={"six"})

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "aws_xray_sdk", "aws_xray_sdk-2.15.0.dist-info", "six-1.17.0.dist-info", "six.py"
    ]  # fmt: skip
    assert (tmp_path.parent / "outside").exists()

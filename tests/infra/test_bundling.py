"""Docker-free bundling produces a Lambda package for Python 3.14 on arm64, from pinned wheels
that Lambda can run. Each package is bundled once per run (pip reaches the package index)."""

from __future__ import annotations

import email.parser
from pathlib import Path

import pytest

from stacks.constructs.python_function import LAMBDAS_DIR, LOCK, bundle, lambda_incompatible, normalise, pins

pytestmark = [pytest.mark.bundling, pytest.mark.xdist_group("bundling")]
PACKAGES = sorted(p.parent.name for p in LAMBDAS_DIR.glob("*/requirements.txt"))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    built = {}
    for package in PACKAGES:
        built[package] = tmp_path_factory.mktemp(package)
        bundle(package, built[package])  # raises if a wheel's tags do not fit Lambda
    return built


def installed(bundle_dir: Path) -> dict[str, str]:
    found = {}
    for metadata in bundle_dir.glob("*.dist-info/METADATA"):
        headers = email.parser.HeaderParser().parsestr(metadata.read_text(errors="replace"))
        found[normalise(headers["Name"])] = headers["Version"]
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_every_bundle_is_exactly_its_lock_and_runs_on_lambda(package: str, bundles: dict[str, Path]) -> None:
    built = bundles[package]
    assert lambda_incompatible(built) == []
    assert installed(built) == pins(LAMBDAS_DIR / package / LOCK), "every distribution in the bundle is pinned"
    assert (built / package / "__init__.py").is_file()
    assert not (built / package / LOCK).exists() and not (built / package / "requirements.txt").exists()
    assert not (built / "boto3").exists() and not (built / "botocore").exists(), "the SDK comes with the runtime"
    compiled = [p.name for p in built.rglob("*.so")]
    assert all("cpython-311" not in n and "x86_64" not in n for n in compiled), "wheels for the Python running pip"


def test_importer_bundle_holds_compiled_dependencies_for_the_lambda_target(bundles: dict[str, Path]) -> None:
    compiled = [p.name for p in bundles["braze_importer"].rglob("*.so")]
    assert any(name.startswith("_yajl2") for name in compiled), "ijson's C backend"
    assert any(name.startswith("orjson") for name in compiled)
    assert any("cpython-314-aarch64-linux-gnu" in n for n in compiled)
    assert (bundles["braze_importer"] / "braze_importer" / "handler.py").is_file()


def test_currents_bundle_holds_avro_and_snappy_for_the_lambda_target(bundles: dict[str, Path]) -> None:
    compiled = [p.name for p in bundles["currents_personalizer"].rglob("*.so")]
    assert any("cramjam" in n and "cpython-314-aarch64" in n for n in compiled), "snappy codec"
    assert (bundles["currents_personalizer"] / "currents_personalizer" / "prompt.txt").is_file()


def test_bulk_upload_bundle(bundles: dict[str, Path]) -> None:
    built = bundles["bulk_upload"]
    assert (built / "httpx").is_dir() and (built / "bulk_upload" / "copier_handler.py").is_file()


def test_pip_finds_releases_built_only_for_manylinux_2_28(tmp_path: Path) -> None:
    """pyarrow publishes its CPython 3.14 arm64 wheels for manylinux_2_28 only; with manylinux2014
    alone pip finds none (or an older release). Resolved from the index's metadata, nothing installed."""
    import json
    import subprocess
    import sys

    from stacks.constructs.python_function import PIP_PLATFORM, tag_runs_on_lambda

    report = tmp_path / "report.json"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--dry-run",
         "--ignore-installed", "--no-deps", *PIP_PLATFORM, "--target", str(tmp_path / "t"), "--report", str(report),
         "pyarrow>=26"],
        check=True,
    )  # fmt: skip
    [wheel] = [i["download_info"]["url"].rsplit("/", 1)[1] for i in json.loads(report.read_text())["install"]]
    tags = wheel.removesuffix(".whl").split("-")[-3:]
    assert tags[2].startswith("manylinux_2_28") and tag_runs_on_lambda("-".join(tags)), wheel


@pytest.mark.parametrize("package", PACKAGES)
def test_every_bundle_carries_the_shared_package_its_handlers_import(package: str, bundles: dict[str, Path]) -> None:
    assert (bundles[package] / "pipeline_common" / "tracing.py").is_file()
    assert (bundles[package] / "pipeline_common" / "metrics.py").is_file()

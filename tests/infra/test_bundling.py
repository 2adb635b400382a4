"""Docker-free bundling produces a Lambda package for Python 3.14 on arm64, from pinned wheels
that Lambda can run."""

from __future__ import annotations

import email.parser
from pathlib import Path

import pytest

from stacks.constructs.python_function import LAMBDAS_DIR, LOCK, bundle, lambda_incompatible, normalise, pins

pytestmark = [pytest.mark.bundling, pytest.mark.xdist_group("bundling")]
PACKAGES = sorted(p.parent.name for p in LAMBDAS_DIR.glob("*/requirements.txt"))


def installed(bundle_dir: Path) -> dict[str, str]:
    found = {}
    for metadata in bundle_dir.glob("*.dist-info/METADATA"):
        headers = email.parser.HeaderParser().parsestr(metadata.read_text(errors="replace"))
        found[normalise(headers["Name"])] = headers["Version"]
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_every_bundle_is_exactly_its_lock_and_runs_on_lambda(package: str, tmp_path: Path) -> None:
    bundle(package, tmp_path)  # raises if a wheel's tags do not fit Lambda
    assert lambda_incompatible(tmp_path) == []
    assert installed(tmp_path) == pins(LAMBDAS_DIR / package / LOCK), "every distribution in the bundle is pinned"
    assert not (tmp_path / package / LOCK).exists() and not (tmp_path / package / "requirements.txt").exists()
    assert not (tmp_path / "boto3").exists(), "boto3 comes with the runtime"


def test_importer_bundle_holds_compiled_dependencies_for_the_lambda_target(tmp_path: Path) -> None:
    bundle("braze_importer", tmp_path)
    compiled = [p.name for p in tmp_path.rglob("*.so")]
    assert any(name.startswith("_yajl2") for name in compiled), "ijson's C backend"
    assert any(name.startswith("orjson") for name in compiled)
    assert all("cpython-311" not in n and "x86_64" not in n for n in compiled), "wheels for the Python running pip"
    assert any("cpython-314-aarch64-linux-gnu" in n for n in compiled)
    assert (tmp_path / "braze_importer" / "handler.py").is_file()


def test_currents_bundle_holds_avro_and_snappy_for_the_lambda_target(tmp_path: Path) -> None:
    bundle("currents_personalizer", tmp_path)
    compiled = [p.name for p in tmp_path.rglob("*.so")]
    assert any("cramjam" in n and "cpython-314-aarch64" in n for n in compiled), "snappy codec"
    assert (tmp_path / "currents_personalizer" / "prompt.txt").is_file()


def test_bulk_upload_bundle(tmp_path: Path) -> None:
    bundle("bulk_upload", tmp_path)
    assert (tmp_path / "httpx").is_dir() and (tmp_path / "bulk_upload" / "copier_handler.py").is_file()

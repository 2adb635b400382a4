"""Docker-free bundling produces a Lambda package for Python 3.14 on arm64."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.constructs.python_function import bundle

pytestmark = [pytest.mark.bundling, pytest.mark.xdist_group("bundling")]


def test_importer_bundle_holds_compiled_dependencies_for_the_lambda_target(tmp_path: Path) -> None:
    bundle("braze_importer", tmp_path)
    compiled = [p.name for p in tmp_path.rglob("*.so")]
    assert any(name.startswith("_yajl2") for name in compiled), "ijson's C backend"
    assert any(name.startswith("orjson") for name in compiled)
    foreign = [n for n in compiled if "cpython-314" in n and "aarch64" not in n]
    assert not foreign
    assert all("cpython-311" not in n and "x86_64" not in n for n in compiled), "wheels for the Python running pip"
    assert any("cpython-314-aarch64-linux-gnu" in n for n in compiled)
    assert (tmp_path / "braze_importer" / "handler.py").is_file()
    assert not (tmp_path / "braze_importer" / "requirements.txt").exists()
    assert not (tmp_path / "boto3").exists(), "boto3 comes with the runtime"


def test_currents_bundle_holds_avro_and_snappy_for_the_lambda_target(tmp_path: Path) -> None:
    bundle("currents_personalizer", tmp_path)
    compiled = [p.name for p in tmp_path.rglob("*.so")]
    assert any("cramjam" in n and "cpython-314-aarch64" in n for n in compiled), "snappy codec"
    assert any("aarch64" in n for n in compiled if "fastavro" in str(n) or n.startswith("_read"))
    assert (tmp_path / "currents_personalizer" / "prompt.txt").is_file()


def test_bulk_upload_bundle(tmp_path: Path) -> None:
    bundle("bulk_upload", tmp_path)
    assert (tmp_path / "httpx").is_dir() and (tmp_path / "bulk_upload" / "copier_handler.py").is_file()
    assert any("cpython-314-aarch64" in p.name for p in tmp_path.rglob("*.so"))

"""The importer's run id of an object version: the importer names its runs by it, and the
bulk-upload copier knows a landed file's run before asking for it. Standard library only."""

from __future__ import annotations


def run_id_for(bucket: str, key: str, version_id: str | None, etag: str | None) -> str:
    """One run per object version: a re-uploaded file is a new run, a duplicated event is not."""
    return f"{bucket}/{key}#{version_id or etag or 'unversioned'}"

"""Column names as compared loosely: the importer's ignored columns and the bulk-upload copier's
check of CI360's key follow one rule. Standard library only."""

from __future__ import annotations

import unicodedata


def loose_name(name: str) -> str:
    """A column name as compared with a name to ignore (CI360's ``identity_id``): NFKC, case-folded,
    without format characters (zero-width spaces and the like), spaces, underscores and hyphens."""
    text = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in text if c not in " _-" and unicodedata.category(c) != "Cf" and not c.isspace())

"""models (no Panel)."""

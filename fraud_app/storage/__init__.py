"""storage (no Panel)."""

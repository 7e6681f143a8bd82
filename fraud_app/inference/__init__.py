"""inference (no Panel)."""

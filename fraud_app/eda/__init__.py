"""eda (no Panel)."""

"""training (no Panel)."""

"""The ways the product runs (one pass over a file, two passes, live), on one per-frame core."""

"""De-identification of tracked faces: the fallback anonymisers and the per-frame processor."""

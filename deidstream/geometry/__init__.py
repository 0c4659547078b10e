"""Shared geometry of faces: boxes, the canonical face mesh, head pose from landmarks."""

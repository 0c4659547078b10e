"""Face detection (MediaPipe) and tracking (filterpy Kalman filters, scipy assignment)."""

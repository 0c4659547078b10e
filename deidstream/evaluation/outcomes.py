"""What the anonymiser did to each face the judge finds: a surrogate, the fallback, kept, or nothing.

The anonymiser's own counts (``face_outcomes`` of its run report) cover every box it tracked, false
detections included (a chair in a blurred background is a "face" that gets the fallback), and faces too
small or turned away for any recogniser. The faces that matter for coverage are those an independent
detector finds in the original, the same faces every other measure of ``evaluate`` is taken on: each is
matched to the box the anonymiser covered at that place in that frame (``face_boxes_per_frame`` of the
report ``deidstream --report`` writes) and takes its outcome; a face no covered box holds is "missed".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deidstream.errors import InvalidInputError
from deidstream.geometry.boxes import share_inside
from deidstream.report import KEPT, OUTCOMES, RENDERED, WIDE_PX

MISSED = "missed"
MIN_INSIDE = 0.5  # share of the judge's box a covered box must hold to be that face


class FaceOutcomes:
    """Per frame, the anonymiser's covered boxes and what each got, read from its run report."""

    def __init__(self, frames: list[list[list]]) -> None:
        self._frames = frames

    @classmethod
    def load(cls, path: str | Path) -> FaceOutcomes:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"{path}: not a readable run report ({exc})") from exc
        frames = data.get("face_boxes_per_frame") if isinstance(data, dict) else None
        if not isinstance(frames, list):
            raise InvalidInputError(f"{path}: no face_boxes_per_frame; write the report with "
                                    "'deidstream IN OUT --report R.json' of this version")
        for index, faces in enumerate(frames):
            for face in faces:
                if len(face) != 5 or face[4] not in OUTCOMES:
                    raise InvalidInputError(f"{path}: frame {index}: expected [x0, y0, x1, y1, outcome], got {face}")
        return cls(frames)

    def at(self, frame: int, box: np.ndarray) -> str:
        """The outcome of the covered box that holds most of ``box`` (x0, y0, x1, y1) in ``frame``."""
        if frame >= len(self._frames) or not self._frames[frame]:
            return MISSED
        share = share_inside(box, np.array([f[:4] for f in self._frames[frame]], np.float32))[0]
        best = int(np.argmax(share))
        return str(self._frames[frame][best][4]) if share[best] >= MIN_INSIDE else MISSED


def outcome_summary(faces: list) -> dict:
    """Counts of the faces' outcomes (``FaceRecord``s with ``outcome`` set), all and at least ``WIDE_PX``
    wide, and the share of the wide ones, less those kept on purpose, given a surrogate."""
    known = [f for f in faces if f.outcome is not None]
    if not known:
        return {}
    wide = [f for f in known if f.box[2] - f.box[0] >= WIDE_PX]
    counts = {name: sum(f.outcome == name for f in known) for name in (*OUTCOMES, MISSED)}
    counts_wide = {name: sum(f.outcome == name for f in wide) for name in (*OUTCOMES, MISSED)}
    to_cover = len(wide) - counts_wide[KEPT]  # the keep list's faces are left as they are on purpose
    return {"outcomes": counts, "outcomes_64px": counts_wide,
            "surrogate_coverage_64px": round(counts_wide[RENDERED] / to_cover, 4) if to_cover else None}

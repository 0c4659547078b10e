"""The docs page's section for benchmarks/out/hands.json (bench_hands.py): how well the masks of the hands in
front of a face fit them on the sample's hand-labelled frames, and what they cost per face."""

from __future__ import annotations

from typing import Any

from docs_format import table

Json = dict[str, Any]


def hands(d: Json) -> tuple[str, list[str]]:
    rows = []
    for mode in ("tracked", "static"):
        for r in d.get(mode, []):
            cost = (f"{r['ms_per_face_hands_tracked']} (no hand: {r['ms_per_face_no_hand']}; mask "
                    f"{r['ms_per_face_mask']})" if mode == "tracked" else f"{r['ms_per_face']}")
            rows.append([mode, r["complexity"], f"{r['mean']['recall']:.3f}", f"{r['mean']['leak']:.3f}", cost,
                         r.get("false_hands_outside_hand_frames", "—")])
    note = (f"`examples/sample.mp4`, {d.get('labelled_frames')} hand-labelled frames (tests/data/hand_polygons.json), "
            "scored inside the face box: recall = share of the hand's pixels the mask covers, leak = share of the "
            "mask that is not hand (face a surrogate would leave bare). `tracked`: frames in order with track ids "
            "(files); `static`: every frame searched afresh.")
    lines = table(["mode", "model complexity", "recall", "leak", "ms per face", "false hands elsewhere"], rows)
    stage = d.get("stage")
    if stage:
        found = [[what, stage[what]["faces_with_hands"], stage[what]["ms_per_face"]]
                 for what in ("boxes_only", "with_landmarks") if what in stage]
        lines += ["", f"{stage['clip']}: {stage['faces']} faces in {stage['frames']} frames (hands and a microphone "
                  "over mouths, several faces, cuts).", "",
                  *table(["hands searched", "faces with hands", "ms per face"], found)]
    return note, lines

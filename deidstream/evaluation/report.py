"""Show an evaluation: a terminal table, JSON for machines, plots and a contact sheet for people."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deidstream.errors import ConfigError
from deidstream.evaluation.judge import INSTALL_HINT, SAME_PERSON
from deidstream.evaluation.metrics import CROP, Evaluation
from deidstream.report import RENDERED

ROWS = [
    ("faces evaluated", "faces", "{}"),
    ("mean ID distance (higher = more private)", "mean_id_distance", "{:.3f}"),
    ("re-identified (< 0.6)", "reidentified_fraction", "{:.1%}"),
    ("leak rate (frames)", "leak_rate", "{:.1%}"),
    ("ID consistency (lower = one person)", "id_consistency", "{:.3f}"),
    ("face detectability FD", "face_detectability", "{:.1%}"),
    ("PD (mean abs. difference)", "pd", "{:.2f}"),
    ("PSNR (dB)", "psnr", "{:.2f}"),
    ("SSIM", "ssim", "{:.3f}"),
    ("flicker (output / original)", "flicker_ratio", "{:.2f}"),
    ("faces left unaltered", "unaltered_faces", "{}"),
    ("frames with an unaltered face", "frames_with_unaltered_face", "{}"),
]
VIEWER_ROWS = [
    ("apparent sex agrees", "sex_agreement", "{:.1%}"),
    ("apparent age |difference| (years)", "mean_abs_age_difference", "{:.1f}"),
    ("skin tone |dITA|, mesh cheeks and forehead (degrees, mean)", "mean_abs_delta_ita", "{:.1f}"),
    ("skin tone within 10 degrees", "ita_within_10", "{:.1%}"),
    ("  of which read on the box band (no mesh)", "ita_band_faces", "{}"),
    ("skin colour dE*ab, same skin (median)", "median_skin_delta_e", "{:.1f}"),
    ("skin colour dE*ab (90th percentile)", "p90_skin_delta_e", "{:.1f}"),
    ("skin-coloured share (output / original)", "skin_share_ratio", "{:.2f}"),
    ("sharpness (output / original, median)", "sharpness_ratio", "{:.2f}"),
    ("faces with colour patches the original lacks", "patchy_faces", "{:.1%}"),
]
OPENNESS_ROWS = [("eye", "eyes", "blink"), ("mouth", "mouth", "move")]


def table(ev: Evaluation) -> str:
    s = ev.summary
    lines = [f"original: {ev.original}", f"output:   {ev.output}",
             f"faces found in the original by {ev.detector}, every {ev.every}. frame "
             f"({s['frames_sampled']} frames sampled, {s['frames_with_faces']} with faces, "
             f"{s['identities']} identities, {s.get('unconfirmed_faces', 0)} not faces by dlib's CNN); "
             f"recogniser: dlib ResNet descriptor; {s['seconds']:.1f} s"]
    for label, key, fmt in ROWS:
        lines.append(_row(label, s.get(key), fmt))
    lines.append("what a viewer sees (same faces, original vs output):")
    for label, key, fmt in VIEWER_ROWS:
        lines.append(_row(label, s.get(key), fmt))
    for part, noun, verb in OPENNESS_ROWS:
        lines.append(_openness_row(part, noun, verb, s))
    if s.get("outcomes_64px"):
        counts = ", ".join(f"{n} {name}" for name, n in s["outcomes_64px"].items() if n)
        lines.append(_row("surrogate on faces >= 64 px (run report)", s.get("surrogate_coverage_64px"), "{:.1%}")
                     + f" ({counts})")
    if "skipped" in ev.attack:
        lines.append(f"  {'rank-1 identification':42s} skipped ({ev.attack['skipped']})")
    else:
        lines.append(_row(f"rank-1 identification ({ev.attack['distractor_faces']} others)", s.get("rank1_rate"),
                          "{:.1%}"))
    cmp = ev.comparison
    if cmp.mismatches:
        lines.append("files differ: " + "; ".join(cmp.mismatches))
    else:
        lines.append(f"files match: {cmp.original.frames} frames, {cmp.original.duration_s:.3f} s, "
                     f"{cmp.original.width}x{cmp.original.height}, audio {cmp.original.audio or 'none'}")
    return "\n".join(lines)


def _openness_row(part: str, noun: str, verb: str, s: dict) -> str:
    """The within-person correlation, or why there is none (the input's own spread too small to judge by)."""
    label = f"{part} openness follows (r within person)"
    r, spread, error = (s.get(f"{part}_openness_{k}") for k in ("correlation", "spread", "error"))
    if spread is None:
        return _row(label, None, "")
    if r is None:
        return f"  {label:42s} n/a: the input's {noun} barely {verb} (spread {spread:.3f}), mean difference {error:.3f}"
    return f"  {label:42s} {r:.2f} (mean difference {error:.3f})"


def _row(label: str, value: object, fmt: str) -> str:
    return f"  {label:42s} {'n/a' if value is None else fmt.format(value)}"


def write_plots(ev: Evaluation, folder: Path) -> list[Path]:
    """ID distance per frame, the distance histogram with the 0.6 line, and the worst faces."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ConfigError(f"plots need matplotlib; {INSTALL_HINT}") from exc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    frames = [f.frame for f in ev.faces]
    dists = [f.id_distance for f in ev.faces]
    written = []

    fig, ax = plt.subplots(figsize=(8, 3))
    ax.scatter(frames, dists, s=8)
    ax.axhline(SAME_PERSON, color="red", linestyle="--", label="same person (0.6)")
    ax.set_xlabel("frame")
    ax.set_ylabel("ID distance to original")
    ax.legend(loc="lower right")
    fig.tight_layout()
    written.append(folder / "id_distance_per_frame.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(dists, bins=30, range=(0, max(1.4, max(dists, default=0))))
    ax.axvline(SAME_PERSON, color="red", linestyle="--", label="same person (0.6)")
    ax.set_xlabel("ID distance to original")
    ax.set_ylabel("faces")
    ax.legend()
    fig.tight_layout()
    written.append(folder / "id_distance_histogram.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    if ev.worst:
        written.append(folder / "worst_faces.png")
        cv2.imwrite(str(written[-1]), cv2.cvtColor(contact_sheet(ev), cv2.COLOR_RGB2BGR))
    return written


def contact_sheet(ev: Evaluation, columns: int = 3) -> np.ndarray:
    """Original | output pairs of the least private faces, worst first (see ``FaceRecord.worst_first``),
    labelled with frame and ID distance, then re-identification, apparent sex, skin-tone change and colour
    patches."""
    tiles = []
    for worst in ev.worst:
        face = ev.faces[worst.face]
        tile = np.concatenate([worst.original, worst.output], axis=1).copy()
        flags = ["REID" if face.reidentified else "", "sex ok" if face.sex_agrees else "sex changed",
                 "" if face.delta_ita is None else f"dITA {face.delta_ita:.0f}",
                 "patches" if face.patchy else "",
                 face.outcome if face.outcome not in (None, RENDERED) else ""]
        for row, text in enumerate([f"f{face.frame} d={face.id_distance:.2f}", " ".join(f for f in flags if f)]):
            cv2.putText(tile, text, (4, 14 + 14 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    while len(tiles) % columns:
        tiles.append(np.zeros((CROP, 2 * CROP, 3), np.uint8))
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)

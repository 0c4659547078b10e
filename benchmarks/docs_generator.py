"""The docs page's sections for benchmarks/out/geometry.json and generator.json (bench_geometry.py,
bench_generator.py): landmarks and head pose, and the generator's speed, reconstruction and identities."""

from __future__ import annotations

from typing import Any

from docs_format import span, table

Json = dict[str, Any]
Body = tuple[str, list[str]]


def geometry(d: Json) -> Body:
    out = [[r["face_px"], r["mode"], f"{r['landmarked']} / {r['faces']}", r["landmarks_ms"], r["pose_ms"]]
           for r in d["rows"]]
    return (f"FaceMesh landmarks and head pose on {d.get('clip')}.",
            table(["face px", "FaceMesh mode", "landmarked", "landmarks ms", "pose ms"], out))


def generator(d: Json) -> Body:
    speed = [[r["face_px"], r["landmarks_ms"], f"{r['render_ms']} + {r['composite_ms']} = **"
              f"{r['render_plus_composite_ms']}**", r["render_plus_composite_best_ms"], r["repaint_ms"],
              r["follow_ms"]] for r in d["speed"]]
    lines = table(["face px", "landmarks ms", "render + composite ms", "best ms", "repaint ms", "flow ms"], speed)
    rec = d["reconstruction"]
    good = sum(c["psnr"] >= 25 for c in rec["clips"])
    psnr = span((c["psnr"] for c in rec["clips"]), ".1f")
    quality = [["reconstruction, held-out frames, face oval",
                f"PSNR {rec['mean_psnr']} dB ({psnr}), SSIM {rec['mean_ssim']}; {good} of {len(rec['clips'])} ≥ 25 dB"],
               ["inversion per person", f"{span((c['inversion_ms'] / 1000 for c in rec['clips']), '.2f')} s"]]
    quality += [[f"FaceMesh re-finds the landmarks, {c['identity']} identity, -45..45° yaw",
                 f"{span(c['error_px_by_yaw'].values(), '.1f')} px"] for c in d["consistency"]]
    ids = d["identities"]
    quality.append([f"{ids['draws']} random identities, dlib", f"mean pairwise {ids['mean_pairwise']}, "
                    f"{ids['pairs_below_0.6']} pairs < 0.6; nearest donor {ids['nearest_donor']}, nearest of "
                    f"{ids.get('gallery_faces', '?')} real faces {ids.get('nearest_real_person', '—')}"])
    new = d.get("new_track_first_landmarks", {})
    quality.append(["a new track's first landmarks, graph built / kept ready",
                    f"{new.get('built_ms')} / {new.get('kept_ms')} ms"])
    model = d.get("model", {})
    note = (f"One thread (torch {d.get('torch_threads')}). Model: {model.get('components')} appearance components "
            f"of {model.get('frontal_faces_used')} synthetic faces. The file merges the parts of several runs; the "
            "latest was the command below, `python benchmarks/bench_generator.py` reruns every part.")
    return note, [*lines, "", *table(["what", "measured"], quality)]

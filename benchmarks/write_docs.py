"""Write docs/benchmarks.md from the measurements in benchmarks/out/*.json.

    python benchmarks/write_docs.py [--out-dir benchmarks/out] [--doc docs/benchmarks.md]

One section per JSON file a benchmark script wrote: a short table of its current figures, the command
that produced it and what was measured. A file this script has no writer for, or whose shape it does
not expect, is skipped with a warning; the page is still written. Standard library only.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from docs_format import num, pct, span, table  # noqa: E402
from docs_generator import generator, geometry  # noqa: E402
from docs_hands import hands  # noqa: E402
from docs_natural import keyed, mapper, natural  # noqa: E402
from docs_ray import ray_job, segments  # noqa: E402

THIS = "python benchmarks/write_docs.py"
Json = dict[str, Any]
Body = tuple[str, list[str]]  # (what was measured, table lines)
log = logging.getLogger("write_docs")


def command(script: str, data: Json) -> str:
    """The command that wrote ``data``: the script and the options its JSON records (``--out`` files
    back under benchmarks/out, where the scripts write them)."""
    argv = data.get("argv")
    if not isinstance(argv, list):
        return f"`python benchmarks/{script}` (options not recorded in the JSON)"
    args = [f"benchmarks/out/{a}" if i and argv[i - 1] == "--out" and "/" not in a else str(a)
            for i, a in enumerate(argv)]
    return "`" + shlex.join(["python", f"benchmarks/{script}", *args]) + "`"


def machine(data: Json) -> str:
    """The processor a JSON records, at its top level or under ``machine``."""
    data = data.get("machine") if isinstance(data.get("machine"), dict) else data
    cpu, cpus, mhz = data.get("cpu"), data.get("cpus"), data.get("cpu_mhz")
    if cpu:
        return f"{cpu}, {cpus} CPUs" + (f", {mhz:.0f} MHz" if mhz else "")
    return f"{cpus} CPUs (processor not recorded)" if cpus else "not recorded"


def clip_list(names: list[str]) -> str:
    return ", ".join(n.rsplit(".", 1)[0] for n in names) if len(names) <= 6 else f"{len(names)} shared clips"


def nth(n: Any) -> str:
    """``2nd``, ``5th``: an ordinal for a frame step."""
    return f"{n}{'th' if 10 <= int(n) % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(int(n) % 10, 'th')}"


def pipeline(d: Json) -> Body:
    rows = d["rows"]
    stages: list[str] = []
    for r in rows:
        stages += [s for s in r["stage_ms_per_frame"] if s not in stages]
    people = any("people" in r for r in rows)
    head = ["clip", "mode", "frames", "e2e / steady fps", "deface e2e / steady fps", "× deface e2e / steady",
            "peak MB (ours / deface)", "start-up s"]
    head += ["people locked", "faces rendered / fallback"] if people else []
    head.append("ms/frame " + " / ".join(stages))
    out = []
    for r in rows:
        cells = [r["clip"], r["mode"], r["frames"], f"{r['e2e_fps']:.1f} / {r['steady_fps']:.1f}",
                 f"{num(r.get('deface_e2e_fps'), '.1f')} / {num(r.get('deface_steady_fps'), '.1f')}",
                 f"**{num(r.get('speedup_e2e'))}×** / {num(r.get('speedup_steady'))}×",
                 f"{r['peak_rss_mb']} / {r.get('deface_peak_rss_mb', '—')}", num(r.get("startup_s"), ".1f")]
        if people:
            fo = r.get("face_outcomes", {})
            cells += [f"{r.get('people_locked', 0)} / {r.get('people', 0)}",
                      f"{fo.get('rendered', 0)} / {fo.get('fallback', 0)}"]
        cells.append(" / ".join(num(r["stage_ms_per_frame"].get(s), ".1f") for s in stages))
        out.append(cells)
    note = (f"Both tools run as commands on the same clip, one after the other, in the same run. e2e = frames / "
            f"wall time of the whole command; steady = the same with a run on the first {d.get('head_frames', 10)} "
            "frames subtracted. Stage times are thread time per frame; stages run concurrently.")
    return note, table(head, out)


def startup(d: Json) -> Body:
    rows = [[step, f"{s:.3f}"] for step, s in d["median_s"].items()]
    note = (f"Median of {len(d.get('runs', []))} runs, SciPy {d.get('scipy', '?')}; `command` is the whole "
            f"command's overhead over its own clock on {d.get('clip', '?')}.")
    return note, table(["step", "median s"], rows)


def encode(d: Json) -> Body:
    rows = [[r["convert"], r["threads"] or "x264 default", "x".join(map(str, r["size"])), r["frames"],
             r["cpu_ms_per_frame"], r["wall_ms_per_frame"], r["p99_ms"]] for r in d["rows"]]
    note = f"Live H.264 settings, frames of {d.get('clip', '?')}; RGB → yuv420p by PyAV (swscale) or OpenCV."
    head = ["conversion", "x264 threads", "size", "frames", "CPU ms/frame", "wall ms/frame", "p99 ms"]
    return note, table(head, rows)


def blas(d: Json) -> Body:
    rows = [[r["setting"], r["wall_ms_per_frame"], r["cpu_ms_per_frame"], r["system_ms_per_frame"]]
            for r in d["rows"]]
    note = f"The real tracker on {d.get('faces')} moving faces, {d.get('frames')} frames, a busy thread beside it."
    return note, table(["BLAS", "wall ms/frame", "CPU ms/frame", "of it system ms"], rows)


METRICS = [("mean_id_distance", "ID dist ↑", ".3f"), ("reidentified_fraction", "re-id ↓", "%"),
           ("leak_rate", "leak ↓", "%"), ("id_consistency", "ID spread ↓", ".3f"),
           ("face_detectability", "FD", "%"), ("psnr", "PSNR", ".1f"), ("ssim", "SSIM", ".3f")]
MEANS = [*METRICS, ("pd", "PD", ".1f"), ("flicker_ratio", "flicker", ".2f")]


def metric(value: Any, spec: str) -> str:
    return pct(value) if spec == "%" else num(value, spec)


def weighted(rows: list[Json], key: str) -> float | None:
    """Face-weighted mean over clips, as bench_privacy.py prints it."""
    pairs = [(r["summary"][key], r["summary"]["faces"]) for r in rows if r["summary"].get(key) is not None]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else None


def people_cells(run: Json) -> list[str]:
    people = [p for p in run.get("people", []) if not p.get("keep")]
    verified = [p["id_distance_verified"] for p in people if p.get("locked")]
    locked = f"{len(verified)} / {len(people)}" + (f" ({span(verified)})" if verified else "")
    fo = run.get("face_outcomes", {})
    return [locked, f"{fo.get('rendered', 0)} / {fo.get('fallback', 0)}"]


def privacy(d: Json) -> Body:
    results: dict[str, list[Json]] = d["results"]
    multi = len(results) > 1
    people = any(r.get("run", {}).get("people") for rows in results.values() for r in rows)
    differ = any(r.get("mismatches") for rows in results.values() for r in rows)
    head = ["clip", *(["method"] if multi else []), "faces", *(h for _, h, _ in METRICS)]
    head += ["people locked (verified)", "faces rendered / fallback"] if people else []
    head += ["files differ"] if differ else []
    out = []
    for method, rows in results.items():
        for r in rows:
            s = r["summary"]
            cells = [r["clip"].rsplit(".", 1)[0], *([method] if multi else []), s["faces"]]
            cells += [metric(s.get(k), spec) for k, _, spec in METRICS]
            cells += people_cells(r.get("run", {})) if people else []
            cells += ["; ".join(r.get("mismatches", [])) or "—"] if differ else []
            out.append(cells)
    means = [[m, sum(r["summary"]["faces"] for r in rows), *(metric(weighted(rows, k), spec) for k, _, spec in MEANS)]
             for m, rows in results.items()]
    clips = [r["clip"] for r in next(iter(results.values()))]
    note = (f"Methods {', '.join(results)} on {clip_list(clips)}, then `deidstream evaluate` on every "
            f"{nth(d.get('every', 5))} frame (faces from dlib's HOG detector in the original, dlib ResNet descriptors)."
            + (" Surrogate runs use the fixed key `deidstream-benchmark`." if "surrogate" in results else "")
            + " Face-weighted means first, then per clip.")
    lines = table(["method", "faces", *(h for _, h, _ in MEANS)], means)
    return note, [*lines, "", *table(head, out)]


def coverage(d: Json) -> Body:
    def where(r: Json) -> str:
        at = ("prev_bare_at", "found_bare_at", "hog_bare_at")
        return "; ".join(f"{k.split('_')[0]} {', '.join(map(str, r[k]))}" for k in at if r.get(k)) or "—"
    keys = ["frames", "faces_found_independently", "prev_bare_frames", "found_bare_frames", "hog_faces",
            "hog_bare_frames"]
    out = [[r["clip"], *(r[k] for k in keys), where(r)] for r in d["rows"]]
    out.append(["**total**", *(f"**{d['total'][k]}**" for k in keys), ""])
    note = (f"Default mode (surrogate). A face counts as bare when less than {d.get('contain', 0.8):.0%} of its box is "
            "inside a hidden region. `prev_bare`: a face the pipeline's detector found in the previous frame; "
            "`found_bare`: a face an independent pass of every MediaPipe model on every frame finds; `hog_bare`: a "
            f"face dlib's HOG detector finds (every {nth(d.get('hog_every', 1))} frame).")
    head = ["clip", "frames", "faces found", "prev_bare", "found_bare", "HOG faces", "hog_bare", "bare at frames"]
    return note, table(head, out)


def detection(d: Json) -> Body:
    results = d["results"]
    rows = [[name, f"{r['recall']:.3f}", f"{r['precision']:.3f}", f"{r['tp']} / {r['fp']} / {r['fn']}"]
            for name, r in results.items()]
    images = len(next(iter(results.values()))["images"])
    note = (f"Hand-labelled PASCAL VOC photos of `voc_faces_annotated` ({images} images, one without faces), "
            f"IoU ≥ {d.get('iou', 0.5)}, one-to-one matching.")
    return note, table(["detector", "recall", "precision", "TP / FP / FN"], rows)


def live(d: Json) -> Body:
    out = []
    for r in d["rows"]:
        surrogate = r["mode"] == "surrogate"
        out.append([r["mode"], f"{r['frames_in']} / {r['frames_sent']} / {r['frames_received']}",
                    f"{r['frames_dropped']} ({pct(r['drop_rate'])})", num(r["achieved_fps"], ".1f"),
                    f"{r['latency_p50_ms']} / **{r['latency_p99_ms']}** / {r['latency_max_ms']:.1f}",
                    r.get("processing_p99_ms", "—"), pct(r.get("fallback_rate")),
                    pct(r.get("rendered_rate_when_ready")) if surrogate else "—",
                    num(r.get("seconds_to_first_render")) if surrogate else "—", num(r.get("cpu_cores_used"))])
    size = "x".join(map(str, d.get("size", [])))
    quota = d.get("cpu_quota_cores")
    note = (f"{d['clip']} streamed as a camera at {size}, {d.get('fps')} fps, {d.get('seconds_per_mode')} s per mode, "
            "by GStreamer's RTSP server on loopback; the relay publishes to ffmpeg as the media server. Added "
            "latency: packet read → encoded frame handed to the RTSP connection."
            + (f" Under a CPU quota of {quota} cores." if quota else ""))
    head = ["mode", "frames in / sent / received", "dropped", "fps", "added latency p50 / p99 / max ms",
            "processing p99 ms", "fallback", "rendered once locked", "first surrogate s", "cores"]
    return note, table(head, out)


def lock_cell(lock: Json) -> str:
    if not lock.get("locked"):
        return f"no ({num(lock.get('verified'), '.3f')} best)"
    return f"{lock['verified']:.3f} / {num(lock.get('held_out'), '.3f')}"


def lock(d: Json) -> Body:
    s = d["summary"]
    tail = ["verified_mean_locked", "held_out_mean_locked", "tried_mean", "seconds_median"]
    summary = [[f"τ = {s[k]['tau']}", s[k]["locked"], *(s[k][t] for t in tail)] for k in ("lock_standard", "lock_low")]
    people = [[p["clip"].rsplit(".", 1)[0], p["mean_face"], span(p["candidate_min_max"], ".3f"),
               " / ".join(f"{v:.3f}" for v in p["farthest_of_24"]), lock_cell(p["lock_standard"]),
               lock_cell(p["lock_low"])] for p in d["people"]]
    gil = d.get("gil", {})
    note = (f"The lock's search on {s['people']} people of the shared clips; the mean face is {s['mean_face']} and "
            f"random candidates {s['candidate_mean']} from their subject on average. dlib in this process slows a busy "
            f"thread {gil.get('slowdown_in_process')}×, in the child worker {gil.get('slowdown_with_worker')}×.")
    head = ["clip", "mean face", "random candidates", "farthest of 24 (views / held out)", "τ 0.9: verified / held out"]
    return note, [*table(["preset", "locked", "verified mean", "held-out mean", "candidates tried", "median s"],
                         summary), "", *table([*head, "τ 0.75"], people)]


def verify(d: Json) -> Body:
    out = [[group.replace("_", " "), g["people"], n, *(g[f"verified_in_{n}"][k] for k in
            ("accepted", "below_tau_somewhere", "reidentified_somewhere"))]
           for group, g in d["summary"].items() for n in (1, 2, 3)]
    note = (f"{d['people'][0]['candidates']} candidates per person checked in 1-3 best views at τ = {d.get('tau')}, "
            "then rendered into held-out frames: how many accepted ones fall below τ, or under 0.6 (re-identified), "
            "somewhere else.")
    return note, table(["faces", "people", "views", "accepted", "below τ elsewhere", "re-identified elsewhere"], out)


def identity(d: Json) -> Body:
    out = []
    for clip, c in d["clips"].items():
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(c["rejected"].items(), key=lambda kv: -kv[1])[:3])
        out.append([clip, c["frames"], c["tracks"], c["identities"], c["identities_with_embedding"],
                    f"{c['usable']} / {c['observations']}", rejected or "—", num(c["eid_ms_per_face_median"], ".1f")])
    net = d.get("network", {})
    note = (f"Tracks merged into people (threshold {d.get('threshold')}, {d.get('min_observations')} good looks). "
            f"E_id median {d.get('eid_ms_per_face_median_of_clips')} ms per face; dlib {net.get('dlib')} "
            f"(BLAS: {net.get('blas')}), network alone {net.get('ms_per_chip_one_thread')} ms on one BLAS thread.")
    return note, table(["clip", "frames", "tracks", "people", "with E_id", "looks usable / taken",
                        "most rejected", "E_id ms/face"], out)


def eid(d: Json) -> Body:
    par, sp = d["parity"], d["speed"]
    rows = [["torch vs dlib's network, same chips", num(par["l2"]["median"], ".1e"), num(par["l2"]["p99"], ".1e"),
             num(par["l2"]["max"], ".1e"), d["faces"]]]
    rows += [[name, num(a["median"], ".3f"), num(a.get("p90"), ".3f"), num(a["max"], ".3f"), a.get("faces", "")]
             if "median" in a else [name, f"{pct(a['share'])} identical", "", "", a.get("faces", "")]
             for name, a in d["alignment"].items()]
    pairs = par["pairs"]
    sources = ", ".join(f"{k} {v}" for k, v in d["faces_by_source"].items())
    note = (f"E_id in torch (deidstream/networks/eid.py, weights read from dlib's .dat) against dlib's own network, "
            f"on {d['faces']} faces of the shared data ({sources}): descriptor L2 differences, and how far "
            f"other chip alignments move descriptors from dlib's. "
            f"Same-person decisions at 0.6 agree on {pct(pairs['agreement'])} of {pairs['pairs']:,} pairs. "
            f"Per face on one thread: dlib {num(sp['dlib_total'], '.1f')} ms (chip + network), torch "
            f"{num(sp['torch_total_b32'], '.1f')} ms batched by 32 ({num(sp['speedup_b32'], '.2f')}x; batch 1 "
            f"{num(sp['torch_b1_inference_mode'], '.1f')} ms)"
            + (f"; the product's E_id with its 5-point alignment {num(sp['product_total_b32'], '.1f')} ms "
               f"against dlib's {num(sp['dlib_total_with_5_points'], '.1f')}" if "product_total_b32" in sp else "")
            + (f"; onnxruntime at batch 1 / 32: {num(sp['onnxruntime_b1'], '.1f')} / "
               f"{num(sp['onnxruntime_b32'], '.1f')} ms" if "onnxruntime_b32" in sp else "") + ".")
    return note, table(["descriptors", "median", "p90 / p99", "max", "faces"], rows)


def gallery(d: Json) -> Body:
    key_out, key_in = "outputs_within_0.6_of_a_real_person", "originals_within_0.6_of_a_real_person"
    out = [[r["clip"], r["faces"], r[key_out], " / ".join(f"{v:.3f}" for v in r["output_nearest_real_min_median"]),
            r[key_in], " / ".join(f"{v:.3f}" for v in r["original_nearest_real_min_median"])] for r in d["rows"]]
    t = d["total"]
    out.append(["**total**", t["faces"], t[key_out], "", t[key_in], ""])
    note = (f"Default-mode output and original faces (every {nth(d.get('every', 1))} frame) against "
            f"{d.get('gallery_faces')} real faces of {', '.join(d.get('gallery', []))}, none of them in the clips.")
    return note, table(["clip", "faces", "outputs within 0.6", "output nearest / median", "originals within 0.6",
                        "original nearest / median"], out)


def natural_other_key(d: Json) -> Body:
    """The same benchmark under another key: how much the figures owe to one key's draws (its sheets not kept)."""
    note, body = natural(d, table)
    return note.split(" Contact sheets")[0] + " Its contact sheets are not kept (those in `benchmarks/out/sheets/` " \
        "are the default key's).", body


Writer = Callable[[Json], Body]
# (file pattern, topic, script): the order of the page.
SPECS: list[tuple[str, str, str, Writer]] = [
    ("pipeline*.json", "Speed against deface", "bench_pipeline.py", pipeline),
    ("startup*.json", "Start-up", "bench_startup.py", startup),
    ("ray.json", "Folders on Ray", "bench_ray.py", ray_job),
    ("segments.json", "A long file in segments on Ray", "bench_segments.py", segments),
    ("natural.json", "Natural surrogates, every shared clip", "bench_natural.py",
     lambda d: natural(d, table)),
    ("natural_key2.json", "Natural surrogates under another identity key", "bench_natural.py", natural_other_key),
    ("keyed.json", "One person, one surrogate across runs (keyed)", "bench_keyed.py", lambda d: keyed(d, table)),
    ("mapper.json", "M_c against the keyed search", "bench_mapper.py", lambda d: mapper(d, table)),
    ("privacy*.json", "Privacy and utility", "bench_privacy.py", privacy),
    ("coverage.json", "Faces left bare", "check_coverage.py", coverage),
    ("detection.json", "Detection recall", "bench_detection.py", detection),
    ("bench_live*.json", "Live relay", "bench_live.py", live),
    ("lock.json", "Surrogate search (lock)", "bench_lock.py", lock),
    ("verify.json", "Surrogate verification views", "bench_verify.py", verify),
    ("identity.json", "Identities (E_id, IdentityBook)", "bench_identity.py", identity),
    ("eid.json", "E_id in torch", "bench_eid.py", eid),
    ("gallery.json", "Is a surrogate someone real?", "bench_gallery.py", gallery),
    ("generator.json", "The generator (G_3d)", "bench_generator.py", generator),
    ("geometry.json", "Landmarks and head pose", "bench_geometry.py", geometry),
    ("encode.json", "Encoding", "bench_encode.py", encode),
    ("blas.json", "BLAS threads", "bench_blas.py", blas),
    ("hands.json", "Hands in front of faces", "bench_hands.py", hands),
]

HEADER = f"""<!-- Generated by `{THIS}` from benchmarks/out/*.json. Do not edit by hand. -->

# Benchmarks

Current figures only, written from `benchmarks/out/*.json` by `{THIS}`: **do not edit this file by hand**;
rerun a benchmark, then that command. Each section names the command that wrote its JSON and the machine where
the JSON records it. Clips are `../shared/data/videos`; metrics as in `deidstream evaluate` (see the README).
"""


def section(path: Path, script: str, writer: Writer) -> list[str] | None:
    """One file's section, or None (logged) when it cannot be read or has another shape."""
    try:
        data = json.loads(path.read_text())
        note, lines = writer(data)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, IndexError, AttributeError,
            StopIteration) as exc:
        log.warning("%s: skipped (%r)", path.name, exc)
        return None
    return [f"### `{path.name}`", "", note, "", f"Command: {command(script, data)}. Machine: {machine(data)}.", "",
            *lines, ""]


def render(out_dir: Path) -> tuple[str, list[str], list[str]]:
    """The page, the files it used and the files it skipped."""
    files = sorted(out_dir.glob("*.json"))
    body: list[str] = []
    for pattern, topic, script, writer in SPECS:
        parts = [s for p in files if fnmatch.fnmatch(p.name, pattern) if (s := section(p, script, writer))]
        if parts:
            body += [f"## {topic}", ""] + [line for part in parts for line in part]
    for p in files:
        if not any(fnmatch.fnmatch(p.name, spec[0]) for spec in SPECS):
            log.warning("%s: skipped (no writer for it in %s)", p.name, Path(__file__).name)
    done = [line.split("`")[1] for line in body if line.startswith("### `")]
    skipped = [p.name for p in files if p.name not in done]
    return HEADER + "\n" + "\n".join(body).rstrip() + "\n", done, skipped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "out", help="where the JSON files are")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md", help="the page to write")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not args.out_dir.is_dir():
        log.error("%s: no such directory", args.out_dir)
        return 1
    page, done, skipped = render(args.out_dir)
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(page)
    log.info("wrote %s from %d files%s", args.doc, len(done), f"; skipped {', '.join(skipped)}" if skipped else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the command line shows while it runs: one progress bar per file over all its passes, then a summary."""

from __future__ import annotations

import sys
from typing import Any

from deidstream.report import Progress, RunReport


class ProgressBar:
    """A tqdm bar per file on stderr: the phase (analysing, choosing surrogates, rendering), steps, rate, ETA.
    A two-pass file counts each frame twice, so the bar moves from the first second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self._name = ""

    def __call__(self, progress: Progress) -> None:
        if not self.enabled:
            return
        if self.bar is None or progress.name != self._name or progress.done < self.bar.n:
            from tqdm import tqdm

            self.close()
            self._name = progress.name
            self.bar = tqdm(total=progress.total, desc=progress.name, unit="frame", dynamic_ncols=True, leave=True,
                            file=sys.stderr)
        description = f"{progress.name} ({progress.phase})" if progress.phase else progress.name
        if self.bar.desc != description:
            self.bar.set_description_str(description)  # shown at once: a phase may take seconds
        self.bar.update(progress.done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def print_summary(reports: list[RunReport]) -> None:
    for r in reports:
        print(r.summary(), file=sys.stderr)
    if len(reports) > 1:
        frames = sum(r.frames for r in reports)
        seconds = sum(r.seconds for r in reports)
        print(f"{len(reports)} files, {frames} frames, {sum(r.faces for r in reports)} faces covered, "
              f"{frames / seconds if seconds else 0:.1f} fps", file=sys.stderr)

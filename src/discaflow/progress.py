"""Progress of long steps: ``done/total``, items per second and an ETA — a bar on a terminal, an INFO
log line every ``interval_s`` seconds otherwise (a Snakemake rule's log, a SLURM job's output)."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("discaflow.progress")


class Progress:
    def __init__(self, what: str, total: int, unit: str = "subtomograms", interval_s: float = 30.0):
        self.what, self.total, self.unit, self.interval_s = what, int(total), unit, interval_s
        self.done = 0
        self.t0 = self._last = time.perf_counter()
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=what, unit=unit[:-1] if unit.endswith("s") else unit, leave=False)

    def line(self) -> str:
        elapsed = time.perf_counter() - self.t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        return (f"{self.what}: {self.done}/{self.total} {self.unit} ({rate:.1f}/s), "
                f"ETA {eta / 60:.1f} min" if eta == eta else f"{self.what}: {self.done}/{self.total} {self.unit}")

    def advance(self, k: int) -> None:
        self.done += int(k)
        if self._bar is not None:
            self._bar.update(int(k))
        elif time.perf_counter() - self._last >= self.interval_s:
            self._last = time.perf_counter()
            log.info("%s", self.line())

    def to(self, done: int, total: int | None = None) -> None:
        """Advance to ``done`` (the ``progress(done, n)`` callbacks of store_features and predict_store)."""
        self.advance(done - self.done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def peak_rss_mb(reset: bool = False) -> float | None:
    """This process's peak resident memory in MB (Linux VmHWM) since it started or since the last
    ``reset=True`` call (which then starts a new peak at the current size); None where unknown."""
    try:
        with open("/proc/self/status") as f:
            peak = next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return None
    if reset:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
    return peak

"""Peak resident memory of one stretch of work (per benchmark mode).

On Linux the kernel's high-water mark (VmHWM) is reset by writing 5 to /proc/self/clear_refs, so
the peak of each run is exact. Elsewhere the process-wide peak (ru_maxrss) is all there is: it
only grows, so per-mode figures then show the peak so far."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


class PeakRss:
    """with PeakRss() as p: ...; p.mb is the peak resident set size in MiB during the block."""

    def __init__(self) -> None:
        self.mb: float | None = None
        self.exact = False

    @staticmethod
    def exact_supported() -> bool:
        return _CLEAR_REFS.exists()

    def __enter__(self) -> PeakRss:
        try:
            _CLEAR_REFS.write_text("5")
            self.exact = True
        except OSError:
            self.exact = False
        return self

    def __exit__(self, *exc: object) -> None:
        self.mb = _vm_hwm_mb() if self.exact else None
        if self.mb is None:
            self.exact = False
            self.mb = process_peak_mb()


def _vm_hwm_mb() -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def process_peak_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0

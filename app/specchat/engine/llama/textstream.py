"""Token bytes to display text: incremental UTF-8 and stop strings.

Text that could still turn into a stop string is held back until it can't; a stop string itself
is never shown."""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class TextStream:
    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = [s for s in stop if s]
        self._held = ""  # decoded text not yet released (a possible stop-string start)
        self.text = ""  # all text released so far
        self.stopped = False

    def feed(self, data: bytes) -> str:
        """Add a token's bytes; return the text that is now safe to show."""
        if self.stopped:
            return ""
        self._held += self._decoder.decode(data)
        if not self._stop:
            out, self._held = self._held, ""
            self.text += out
            return out
        window = self.text[-max(len(s) for s in self._stop) :] + self._held
        for s in self._stop:
            at = window.find(s)
            if at >= 0:
                self.stopped = True
                cut = at - (len(window) - len(self._held))  # stop index within _held
                out = self._held[: max(cut, 0)]
                self._held = ""
                self.text += out
                return out
        keep = self._longest_stop_prefix_suffix(self._held)
        out = self._held[: len(self._held) - keep]
        self._held = self._held[len(self._held) - keep :]
        self.text += out
        return out

    def flush(self) -> str:
        """Release what was held back (end of generation without a stop string)."""
        if self.stopped:
            return ""
        out = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        self.text += out
        return out

    def _longest_stop_prefix_suffix(self, s: str) -> int:
        best = 0
        for stop in self._stop:
            for n in range(min(len(stop) - 1, len(s)), best, -1):
                if s.endswith(stop[:n]):
                    best = n
                    break
        return best

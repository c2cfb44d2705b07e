"""A one-line progress bar on stderr, drawn only when stderr is a terminal."""
import sys
import time

WIDTH = 30  # characters of the bar itself


class ProgressBar:
    """`update(n)` after n more sentences; `close()` ends the line.

    total: number of sentences, or None (then only the count and rate are shown).
    Redraws at most every `interval` seconds; does nothing unless stream is a TTY.
    """

    def __init__(self, total=None, stream=None, interval=0.2, unit="sentences"):
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.unit, self.interval = total, unit, interval
        self.count, self.start, self.last_draw = 0, time.time(), 0.0

    def update(self, n):
        self.count += n
        now = time.time()
        if self.enabled and (now - self.last_draw >= self.interval or self.count == self.total):
            self.last_draw = now
            self.stream.write("\r" + self.line(now - self.start))
            self.stream.flush()

    def line(self, seconds):
        rate = self.count / max(seconds, 1e-9)
        text = f"{self.count} {self.unit}, {rate:.1f} {self.unit}/s"
        if self.total:
            done = min(self.count / self.total, 1.0)
            filled = int(WIDTH * done)
            text = f"[{'#' * filled}{'.' * (WIDTH - filled)}] {100 * done:3.0f}% {text}"
        return text

    def close(self):
        if self.enabled:
            self.stream.write("\r" + self.line(time.time() - self.start) + "\n")
            self.stream.flush()

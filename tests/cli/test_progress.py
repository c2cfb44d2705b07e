"""Tests for nmt/cli/progress.py: drawn on terminals only."""
import io

from nmt.cli.progress import ProgressBar


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_bar_on_a_terminal_shows_percent_and_rate():
    stream = FakeTerminal()
    bar = ProgressBar(total=4, stream=stream, interval=0.0)
    bar.update(1)
    bar.update(3)
    bar.close()
    text = stream.getvalue()
    assert "25%" in text and "100%" in text and "sentences/s" in text
    assert text.endswith("\n") and text.count("\n") == 1


def test_nothing_written_when_not_a_terminal():
    stream = io.StringIO()
    bar = ProgressBar(total=4, stream=stream, interval=0.0)
    bar.update(4)
    bar.close()
    assert stream.getvalue() == "" and bar.count == 4

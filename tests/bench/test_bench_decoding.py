"""bench/bench_decoding.py: the settings grid and the side-by-side measurement."""

import pytest

from bench import bench_decoding
from bench.bench_decoding import Setting


def test_grid_groups_settings_by_beam_size_with_the_baseline_first():
    grid = bench_decoding.settings_grid(["5", "1"], ["64", "128"], ["true", "false"])
    assert grid[0] == Setting(5, 64, True) and grid[4] == Setting(1, 64, True)
    assert len(grid) == len(set(grid)) == 8
    with pytest.raises(ValueError, match="--compact"):
        bench_decoding.settings_grid(["5"], ["64"], ["yes"])


def test_grid_compares_precisions_within_each_beam_size():
    grid = bench_decoding.settings_grid(["5", "1"], ["64"], ["true"], ["fp32", "bf16_output"])
    assert grid == [Setting(5, 64, True, "fp32"), Setting(5, 64, True, "bf16_output"),
                    Setting(1, 64, True, "fp32"), Setting(1, 64, True, "bf16_output")]
    assert "bf16_output" in grid[1].name()


class FakeTranslator:
    """Translates by upper-casing, with one line changed, and counts its passes."""

    def __init__(self, changed_line=None):
        self.passes = 0
        self.changed_line = changed_line

    def translate_text(self, lines):
        self.passes += 1
        return [line.upper() + ("!" if i == self.changed_line else "")
                for i, line in enumerate(lines)]


def test_measure_compares_each_setting_with_its_beam_sizes_first():
    translators = {Setting(5, 64, True): FakeTranslator(), Setting(5, 64, False): FakeTranslator(2),
                   Setting(1, 64, True): FakeTranslator(0), Setting(1, 64, False): FakeTranslator()}
    rows = bench_decoding.measure(translators, ["a", "b", "c"], rounds=3)
    assert all(t.passes == 4 for t in translators.values())  # the first pass and 3 warm ones
    assert [rows[s]["lines_differing_from_baseline"] for s in translators] == [0, 1, 0, 1]
    assert rows[Setting(5, 64, True)]["warm_speedup_vs_baseline"] == 1.0
    assert rows[Setting(1, 64, True)]["warm_speedup_vs_baseline"] == 1.0
    assert all(len(r["warm_s"]) == 3 for r in rows.values())
    markdown = bench_decoding.markdown({"model_dir": "m", "source": "s", "lines": 3, "rounds": 3,
                                        "load_start": 0.5, "load_end": 0.7,
                                        "rows": list(rows.values())})
    assert markdown.count("\n| beam ") == 4


def test_measure_scores_each_setting_against_the_references():
    lines = ["a man rides a red bike down the hill", "two dogs play in the snow together"]
    references = [line.upper() for line in lines]
    translators = {Setting(5, 64, True): FakeTranslator(), Setting(5, 64, False): FakeTranslator(1)}
    rows = bench_decoding.measure(translators, lines, rounds=1, references=references)
    assert rows[Setting(5, 64, True)]["bleu"] == pytest.approx(100.0)
    assert 0 < rows[Setting(5, 64, False)]["bleu"] < 100.0  # "TOGETHER!" is no match

"""bench/bench_streaming.py: the input it writes and that each run's peak RSS is its own."""
import sys

from bench import bench_streaming


def test_input_is_whole_shuffled_passes_over_the_sentences(tmp_path):
    sentences = [f"sentence {i}" for i in range(7)]
    path = bench_streaming.write_input(str(tmp_path / "in.txt"), 17, sentences)
    lines = (tmp_path / "in.txt").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) - 1 == 17 == bench_streaming.count_lines(path)
    lines = lines[:-1]
    assert sorted(lines[:7]) == sorted(lines[7:14]) == sorted(sentences)  # whole passes
    assert lines[:7] != lines[7:14]  # each pass in another order
    assert set(lines[14:]) <= set(sentences) and len(set(lines[14:])) == 3


def allocating(megabytes):
    """A child that holds `megabytes` MiB of touched memory for a moment."""
    return [sys.executable, "-c",
            f"import time; b = bytearray({megabytes} << 20); time.sleep(0.3)"]


def test_each_run_reports_its_own_peak(tmp_path):
    """Not an earlier run's (RUSAGE_CHILDREN's maximum), nor this pytest process's: a
    child it started directly would inherit its high-water mark (TensorFlow is loaded
    here, several hundred MiB)."""
    big, _, _ = bench_streaming.run_measured(allocating(300), str(tmp_path / "big.log"), 0.05)
    small, seconds, timeline = bench_streaming.run_measured(allocating(20),
                                                            str(tmp_path / "small.log"), 0.05)
    assert 300 < big < 400  # the bytearray plus an interpreter
    assert 20 < small < 100
    assert seconds >= 0.3 and timeline and max(r for _, r in timeline) <= small + 1


def test_a_failing_command_is_an_error_with_its_output(tmp_path):
    command = [sys.executable, "-c", "import sys; sys.exit('no model here')"]
    try:
        bench_streaming.run_measured(command, str(tmp_path / "fail.log"), 0.05)
    except RuntimeError as e:
        assert "exited with 1" in str(e) and "no model here" in str(e)
    else:
        raise AssertionError("no error")

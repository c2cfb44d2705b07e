"""CI's covering subset of bench/device_matrix.py: under placement on 2 and 3 logical
CPUs, mirrored on 2 and two workers on loopback, a tiny model trains through the CLI,
resumes once and translates with the result."""

import pytest

from bench import device_matrix


def test_the_ci_cells_cover_every_value():
    for field, values in zip(device_matrix.Cell._fields,
                             (device_matrix.STRATEGIES, device_matrix.OPTIMIZERS,
                              device_matrix.PRECISIONS, device_matrix.ARCHITECTURES)):
        assert {getattr(cell, field) for cell in device_matrix.CI_CELLS} == set(values), field
    assert set(device_matrix.CI_CELLS) <= set(device_matrix.all_cells())
    assert len(device_matrix.all_cells()) == 4 * 2 * 3 * 4


@pytest.mark.parametrize("cell", [device_matrix.CI_CELLS[0]] + [
    pytest.param(cell, marks=pytest.mark.slow) for cell in device_matrix.CI_CELLS[1:]],
    ids=device_matrix.cell_name)
def test_a_cell_trains_resumes_and_translates(cell, tmp_path):
    prefix = device_matrix.write_corpus(str(tmp_path))
    device_matrix.run_cell(cell, prefix, str(tmp_path / "cell"))


def test_a_failing_cell_reports_the_failing_process(tmp_path, monkeypatch):
    """A cell whose training fails raises CellFailure naming the stage and exit code."""
    monkeypatch.setitem(device_matrix.STRATEGIES, "place2",
                        ["--num_cpu_devices=2", "--num_gpus=3"])  # more devices than exist
    prefix = device_matrix.write_corpus(str(tmp_path))
    with pytest.raises(device_matrix.CellFailure, match=r"^train, process 0: exit 1\n") as e:
        device_matrix.run_cell(device_matrix.Cell("place2", "sgd", "fp32", "uni"), prefix,
                               str(tmp_path / "cell"))
    assert "asked for 3 devices" in str(e.value)

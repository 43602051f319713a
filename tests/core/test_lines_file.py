"""The lines file of a job (jobs/bodies.py): frames cut by count and by size, rows read back exactly."""

import numpy as np
import pytest

from batchframe.errors import JobError
from batchframe.jobs import bodies


def _lines(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [b'{"custom_id":"r%d","x":"%s"}' % (i, b"y" * int(rng.integers(0, 400))) for i in range(n)]


def test_rows_read_back_exactly_across_frames_with_gaps_and_in_any_order(tmp_path):
    lines = _lines(40_000)  # three frames of 16,384 lines at most
    n_rows = 50_000
    rows = np.sort(np.random.default_rng(1).choice(n_rows, len(lines), replace=False))
    path = tmp_path / "lines-t.bin"
    start, size, frames = bodies.write_lines(path, n_rows, rows, lines)
    assert len(frames["raw"]) == 3 and sum(frames["raw"]) == sum(map(len, lines))
    expected = [None] * n_rows
    for row, line in zip(rows.tolist(), lines, strict=True):
        expected[row] = line
    assert bodies.read_lines(path, start, size, frames) == expected
    pick = np.random.default_rng(2).permutation(n_rows)[:5_000]
    assert bodies.read_lines(path, start[pick], size[pick], frames) == [expected[p] for p in pick.tolist()]


def test_large_lines_make_small_frames_and_an_empty_plan_an_empty_file(tmp_path, monkeypatch):
    monkeypatch.setattr(bodies, "_FRAME_BYTES", 1_000)
    lines = _lines(50)
    start, size, frames = bodies.write_lines(tmp_path / "a.bin", 50, np.arange(50), lines)
    assert max(frames["raw"]) < 1_000 + 500 and len(frames["raw"]) > 5
    assert bodies.read_lines(tmp_path / "a.bin", start, size, frames) == lines
    start, size, frames = bodies.write_lines(tmp_path / "b.bin", 3, np.arange(0), [])
    assert frames == {"packed": [], "raw": []} and (tmp_path / "b.bin").read_bytes() == b""
    assert bodies.read_lines(tmp_path / "b.bin", start, size, frames) == [None, None, None]


def test_a_damaged_or_missing_lines_file_is_a_clear_error(tmp_path):
    lines = _lines(100)
    path = tmp_path / "lines-t.bin"
    start, size, frames = bodies.write_lines(path, 100, np.arange(100), lines)
    short = {"packed": frames["packed"], "raw": [frames["raw"][0] - 10]}
    with pytest.raises(JobError, match="damaged"):
        bodies.read_lines(path, start, size, short)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(JobError, match="damaged"):  # a truncated frame: never a short line sent
        bodies.read_lines(path, start, size, frames)
    path.unlink()
    with pytest.raises(JobError, match="missing file"):
        bodies.read_lines(path, start, size, frames)

"""The lines file of a job (jobs/bodies.py): frames cut by count and by size, rows read back exactly."""

import numpy as np
import pyarrow as pa
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
    place = bodies.layout(n_rows, rows, lines)
    bodies.write_lines(path, lines, place)
    start, size, frames = place.start, place.size, place.frames
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
    place = bodies.layout(50, np.arange(50), lines)
    bodies.write_lines(tmp_path / "a.bin", lines, place)
    assert max(place.raw) < 1_000 + 500 and len(place.raw) > 5
    assert bodies.read_lines(tmp_path / "a.bin", place.start, place.size, place.frames) == lines
    place = bodies.layout(3, np.arange(0), [])
    bodies.write_lines(tmp_path / "b.bin", [], place)
    assert place.frames == {"raw": []}
    assert bodies.read_lines(tmp_path / "b.bin", place.start, place.size, place.frames) == [None, None, None]


def test_a_damaged_or_missing_lines_file_is_a_clear_error(tmp_path):
    lines = _lines(40_000)
    path = tmp_path / "lines-t.bin"
    place = bodies.layout(40_000, np.arange(40_000), lines)
    bodies.write_lines(path, lines, place)
    start, size, frames = place.start, place.size, place.frames
    whole = path.read_bytes()
    short = {"raw": [frames["raw"][0] - 10, *frames["raw"][1:]]}
    with pytest.raises(JobError, match="damaged"):
        bodies.read_lines(path, start, size, short)
    for cut in (whole[:-20], whole[:-3], whole[:10], b""):  # cut short, anywhere: never a short line sent
        path.write_bytes(cut)
        with pytest.raises(JobError, match="frames' index"):
            bodies.read_lines(path, start, size, frames)
    flipped = bytearray(whole)
    flipped[-30] ^= 0xFF  # a packed size changed: the sizes no longer add up to the frames before them
    path.write_bytes(bytes(flipped))
    with pytest.raises(JobError, match="frames' index"):
        bodies.read_lines(path, start, size, frames)
    path.write_bytes(whole)
    with pytest.raises(JobError, match="frames' index"):  # the requests file counts other frames
        bodies.read_lines(path, start, size, {"raw": [*frames["raw"], 10]})
    packed_first = int.from_bytes(whole[-16 - 48 : -16 - 40], "little")
    caught = 0
    for at in range(20, packed_first - 8, packed_first // 50):  # a byte of the first frame's data changed:
        flipped = bytearray(whole)                             # an error, or (a match that copies the same
        flipped[at] ^= 0x01                                    # bytes from elsewhere) the same lines
        path.write_bytes(bytes(flipped))
        try:
            got = bodies.read_lines(path, start[:2000], size[:2000], frames)
        except JobError as exc:
            assert "damaged" in str(exc)
            caught += 1
        else:
            assert got == lines[:2000]
    assert caught > 25
    inflated = {"raw": [frames["raw"][0] + 1000, *frames["raw"][1:]]}  # Arrow would pad: the checksum says no
    path.write_bytes(whole)
    with pytest.raises(JobError, match="checksum"):
        bodies.read_lines(path, start[:10], size[:10], inflated)
    empty = bodies.layout(3, np.arange(0), [])
    bodies.write_lines(path, [], empty)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(JobError, match="frames' index"):
        bodies.read_lines(path, empty.start, empty.size, empty.frames)
    path.unlink()
    with pytest.raises(JobError, match="missing file"):
        bodies.read_lines(path, start, size, frames)


def test_a_file_of_the_first_layout_with_its_packed_sizes_in_the_metadata_still_reads(tmp_path):
    # The first lines files (2026-11-30) were the frames alone, their packed sizes in the requests file.
    lines = _lines(40_000, seed=3)
    place = bodies.layout(40_000, np.arange(40_000), lines)
    frames = [pa.compress(b"".join(lines[a:b]), codec="lz4", asbytes=True) for a, b in place.bounds]
    path = tmp_path / "lines-old.bin"
    path.write_bytes(b"".join(frames))
    meta = {"packed": [len(f) for f in frames], "raw": place.raw}
    pick = np.array([39_999, 0, 20_000, 16_384])
    assert bodies.read_lines(path, place.start[pick], place.size[pick], meta) == [lines[p] for p in pick.tolist()]
    with pytest.raises(JobError, match="frames' sizes"):  # sizes of other frames than the raw ones
        bodies.read_lines(path, place.start[pick], place.size[pick], {**meta, "packed": meta["packed"][:-1]})
    longer = {**meta, "raw": [meta["raw"][0] + 1000, *meta["raw"][1:]]}  # no checksum: the true length says
    with pytest.raises(JobError, match="checksum or size"):
        bodies.read_lines(path, place.start[:5], place.size[:5], longer)
    negative = place.size[:5].copy()
    negative[2] = -3  # a damaged requests file: never a cut line
    with pytest.raises(JobError, match="damaged"):
        bodies.read_lines(path, place.start[:5], negative, meta)


def test_dropping_other_lines_sweeps_what_killed_writes_left_and_keeps_the_named_file(tmp_path):
    from batchframe.jobs.store import Store

    store = Store(tmp_path)
    folder = store.job_dir("j")
    folder.mkdir(parents=True)
    kept = ["lines-keep.bin", "requests.parquet", "requests-a2.parquet", "manifest.json"]
    stray = ["lines-old.bin", ".lines-x.bin.1.tmp", ".requests.parquet.2.tmp", "..requests.parquet.2.tmp.3.tmp"]
    for name in kept + stray:
        (folder / name).write_bytes(b"x")
    bodies.drop_other_lines(store, "j", keep="lines-keep.bin")
    assert sorted(p.name for p in folder.iterdir()) == sorted(kept)

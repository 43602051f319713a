"""The sample data in data/ is exactly what scripts/make_sample_data.py generates."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("make_sample_data", ROOT / "scripts" / "make_sample_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reviews_csv_is_reproducible(tmp_path):
    gen = _generator()
    gen.write_csv(tmp_path / "reviews.csv", gen.reviews())
    assert (tmp_path / "reviews.csv").read_bytes() == (ROOT / "data" / "reviews.csv").read_bytes()


def test_reviews_have_forty_unique_ids_and_valid_ratings():
    rows = _generator().reviews()
    assert len(rows) == 40
    assert len({r["review_id"] for r in rows}) == 40
    assert {r["rating"] for r in rows} <= {1, 2, 3, 4, 5}
    assert all(len(r["review"]) > 40 for r in rows)

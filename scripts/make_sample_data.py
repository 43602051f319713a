"""Generate the sample datasets in data/ (deterministic: re-running gives identical files).

The reviews are synthetic: short product reviews assembled from fixed phrase lists with a seeded RNG, so the
repository ships no third-party text and the demo never needs the network.

    python scripts/make_sample_data.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

PRODUCTS = [
    ("kettle", "electric kettle"), ("headset", "wireless headset"), ("backpack", "hiking backpack"),
    ("blender", "countertop blender"), ("lamp", "desk lamp"), ("keyboard", "mechanical keyboard"),
    ("tent", "two-person tent"), ("mug", "travel mug"),
]
PRAISE = [
    "works exactly as described", "feels solid and well made", "arrived two days early",
    "is quieter than my old one", "was easy to set up", "has great battery life", "looks even better in person",
]
COMPLAINTS = [
    "stopped working after a week", "is much smaller than the photos suggest", "arrived with a cracked lid",
    "is far too loud", "has a strong plastic smell", "came without the charging cable", "wobbles on a flat desk",
]
OPENERS = ["Honestly,", "After a month of use,", "For the price,", "Overall,", "In short,"]
CLOSERS = {1: "Returning it.", 2: "Support was slow to answer.", 3: "Mixed feelings.",
           4: "One minor gripe: the manual is vague.", 5: "Would buy again."}


def review(rng: random.Random, noun: str, rating: int) -> str:
    if rating >= 4:
        first, second = rng.sample(PRAISE, 2)
        joiner = "and"
    elif rating <= 2:
        first, second = rng.sample(COMPLAINTS, 2)
        joiner = "and"
    else:
        first, second = rng.choice(PRAISE), rng.choice(COMPLAINTS)
        joiner = "but"
    return f"{rng.choice(OPENERS)} the {noun} {first}, {joiner} it {second}. {CLOSERS[rating]}"


def reviews(n: int = 40, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        sku, noun = PRODUCTS[i % len(PRODUCTS)]
        rating = rng.choice([1, 2, 3, 4, 4, 5, 5])
        rows.append({"review_id": f"R{i + 1:03d}", "product": sku, "rating": rating,
                     "review": review(rng, noun, rating)})
    return rows


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "data"
    write_csv(out / "reviews.csv", reviews())
    print(f"wrote {out / 'reviews.csv'}")


if __name__ == "__main__":
    main()

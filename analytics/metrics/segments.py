"""Named RFM segments for the 1..5 scale, from the recency and frequency scores.

The table is the single source: SQL is generated from it and the page prints it. Every
(R, F) pair in 1..5 x 1..5 falls in exactly one row (tests check the cover).
"""

from __future__ import annotations

from typing import NamedTuple


class SegmentRule(NamedTuple):
    name: str
    r_min: int
    r_max: int
    f_min: int
    f_max: int
    meaning: str


SEGMENT_RULES: tuple[SegmentRule, ...] = (
    SegmentRule("Champions", 5, 5, 4, 5, "bought very recently and often"),
    SegmentRule("Loyal", 3, 4, 4, 5, "buy often, fairly recently"),
    SegmentRule("Potential loyalists", 4, 5, 2, 3, "recent, a few orders"),
    SegmentRule("New customers", 5, 5, 1, 1, "first order very recently"),
    SegmentRule("Promising", 4, 4, 1, 1, "recent single order"),
    SegmentRule("Need attention", 3, 3, 3, 3, "middling recency and frequency"),
    SegmentRule("About to sleep", 3, 3, 1, 2, "middling recency, few orders"),
    SegmentRule("At risk", 1, 2, 3, 4, "used to buy often, not lately"),
    SegmentRule("Cannot lose them", 1, 2, 5, 5, "bought most often, long ago"),
    SegmentRule("Hibernating", 1, 2, 1, 2, "few orders, long ago"),
)


def segment_for(r: int, f: int) -> str:
    for rule in SEGMENT_RULES:
        if rule.r_min <= r <= rule.r_max and rule.f_min <= f <= rule.f_max:
            return rule.name
    raise ValueError(f"no segment for R={r} F={f}")


def segment_case_sql(r_col: str, f_col: str) -> str:
    """A SQL CASE over integer score columns; names are constants from the table above."""
    whens = " ".join(
        f"WHEN {r_col} BETWEEN {rule.r_min} AND {rule.r_max} AND {f_col} BETWEEN {rule.f_min} AND {rule.f_max} "
        f"THEN '{rule.name}'"
        for rule in SEGMENT_RULES
    )
    return f"CASE {whens} END"

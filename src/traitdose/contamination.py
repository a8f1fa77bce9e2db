"""Train/eval disjointness (DESIGN trap 2), enforced as an invariant: a run refuses to start on overlap.

Two texts overlap when their normalised forms hash the same (exact duplicates after case, punctuation
and whitespace are removed) or when their word-trigram sets have Jaccard similarity at or above a
threshold (near-duplicates and light paraphrases).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable

from pydantic import BaseModel

from traitdose.errors import InputError

NEAR_DUPLICATE_JACCARD = 0.5
_WORD = re.compile(r"[a-z0-9]+")


def normalise_text(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def text_hash(text: str) -> str:
    return hashlib.sha256(normalise_text(text).encode()).hexdigest()


def shingles(text: str, n: int = 3) -> frozenset[str]:
    words = normalise_text(text).split()
    if len(words) < n:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


class Overlap(BaseModel):
    left_id: str
    right_id: str
    similarity: float  # 1.0 for an exact normalised match

    def describe(self) -> str:
        kind = "exact duplicate" if self.similarity >= 1.0 else f"near-duplicate (Jaccard {self.similarity:.2f})"
        return f"{self.left_id} ~ {self.right_id}: {kind}"


def find_overlaps(
    left: Iterable[tuple[str, str]],
    right: Iterable[tuple[str, str]],
    threshold: float = NEAR_DUPLICATE_JACCARD,
) -> list[Overlap]:
    """Pairs (left_id, right_id) whose texts are exact or near duplicates.

    An inverted index over shingles keeps this to pairs that share at least one trigram, so banks of
    thousands of scenarios stay fast.
    """
    left = [(i, t, shingles(t), text_hash(t)) for i, t in left]
    index: dict[str, list[int]] = defaultdict(list)
    for k, (_, _, sh, _) in enumerate(left):
        for s in sh:
            index[s].append(k)
    by_hash = {h: i for i, _, _, h in left}
    overlaps = []
    for rid, rtext in right:
        rsh = shingles(rtext)
        exact = by_hash.get(text_hash(rtext))
        if exact is not None:
            overlaps.append(Overlap(left_id=exact, right_id=rid, similarity=1.0))
            continue
        candidates = {k for s in rsh for k in index.get(s, ())}
        for k in sorted(candidates):
            sim = jaccard(left[k][2], rsh)
            if sim >= threshold:
                overlaps.append(Overlap(left_id=left[k][0], right_id=rid, similarity=round(sim, 4)))
    return overlaps


def assert_disjoint(named_sets: dict[str, list[tuple[str, str]]], threshold: float = NEAR_DUPLICATE_JACCARD) -> None:
    """Raise InputError listing overlaps between any two of the named (id, text) sets."""
    names = list(named_sets)
    problems = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for o in find_overlaps(named_sets[a], named_sets[b], threshold):
                problems.append(f"{a} vs {b}: {o.describe()}")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InputError(
            f"train/eval contamination: {len(problems)} overlapping item(s); the run refuses to start.\n  {shown}{more}"
        )

"""Train/validation/test splits that keep near-duplicate photos together.

ISS photos come in bursts: ``iss052e035712`` and ``iss052e035713`` are
almost the same picture.  Splitting image by image would put one in training
and its twin in the test set and inflate every metric, so photos are grouped
into sequences first (same name prefix, frame numbers at most ``max_gap``
apart) and whole sequences are assigned to splits.  HiRISE crops
(``ESP_011289_1950_RED-0039``) group by source observation with a large gap.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from functools import partial

SPLITS = ("train", "validation", "test")
_NAME = re.compile(r"^(.*?)(\d+)$")


def sequence_groups(names: Sequence[str], max_gap: int = 100) -> dict[str, str]:
    """Map each file name to a sequence id such as ``iss052e035712+``."""
    by_prefix: dict[str, list[tuple[int, str]]] = defaultdict(list)
    groups = {}
    for name in names:
        stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        match = _NAME.match(stem)
        if match:
            by_prefix[match.group(1)].append((int(match.group(2)), name))
        else:
            groups[name] = stem
    for prefix, frames in by_prefix.items():
        frames.sort()
        start = previous = None
        for number, name in frames:
            if previous is None or number - previous > max_gap:
                start = number
            groups[name] = f"{prefix}{start}+"
            previous = number
    return groups


def split_by_group(labels: Mapping[str, Sequence[str]], groups: Mapping[str, str],
                   fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> dict[str, str]:
    """Assign whole groups to the train, validation and test splits (see ``assign_groups``)."""
    return {name: SPLITS[i] for name, i in assign_groups(labels, groups, fractions, seed).items()}


def group_folds(labels: Mapping[str, Sequence[str]], groups: Mapping[str, str], k: int = 5,
                seed: int = 0) -> dict[str, int]:
    """Cross-validation folds 0..k-1 of whole groups, balancing every tag."""
    return assign_groups(labels, groups, [1 / k] * k, seed)


def assign_groups(labels: Mapping[str, Sequence[str]], groups: Mapping[str, str], fractions: Sequence[float],
                  seed: int = 0) -> dict[str, int]:
    """Assign whole groups to parts of the given sizes, balancing every tag (rarest first).

    A greedy form of iterative stratification (Sechidis et al., 2011) at the
    group level: each group goes to the split that most lacks the group's
    rarest tag, so even a tag with a dozen photos lands in every split.
    """
    members: dict[str, list[str]] = defaultdict(list)
    for name in labels:
        members[groups[name]].append(name)
    totals = Counter(tag for tags in labels.values() for tag in tags)
    n = len(labels)
    want = [{tag: f * count for tag, count in totals.items()} for f in fractions]
    have: list[Counter[str]] = [Counter() for _ in fractions]
    size = [0] * len(fractions)

    order = sorted(members)
    random.Random(seed).shuffle(order)

    def rarest(group: str) -> str | None:
        tags = {t for name in members[group] for t in labels[name]}
        return min(tags, key=lambda t: (totals[t], t)) if tags else None

    def rarity(group: str) -> int:
        """How many photos carry the group's rarest tag (all of them for a group without tags)."""
        tag = rarest(group)
        return totals[tag] if tag else n

    order.sort(key=lambda g: (rarity(g), -len(members[g])))

    def need(tag: str | None, i: int) -> tuple[float, float]:
        """How much split ``i`` lacks ``tag`` (then photos at all): the group goes where the need is largest."""
        tag_need = (want[i][tag] - have[i][tag]) / want[i][tag] if tag else 0.0
        return (tag_need, fractions[i] * n - size[i])

    assignment = {}
    for group in order:
        best = max(range(len(fractions)), key=partial(need, rarest(group)))
        for name in members[group]:
            assignment[name] = best
            have[best].update(labels[name])
        size[best] += len(members[group])
    return assignment

"""``emobox-rule``: the EmoBox paper's stated speaker rules over any manifest (see docs/partitions.md).

EmoBox's benchmark ran on the fold lists it publishes, which differ from this rule on EmoDB,
CREMA-D, RAVDESS and IEMOCAP: ``emobox`` (:mod:`.emobox_published`) is those lists; this rule is
for corpora EmoBox does not cover.

The official split if the rows carry ``split``; else, by speakers: leave-one-speaker-out for 4-6
speakers, 4 speaker-disjoint folds balanced by utterance count above 6, and a speaker-dependent
split (25% of each emotion as test) for fewer than 4 speakers, rows without a speaker or strongly
unbalanced speakers. 20% of each fold's training part is held out as dev.
"""

from __future__ import annotations

import itertools
from collections import Counter

from emostore.manifests.partitions.holdout import hold_out_dev, rng, stratified_take
from emostore.manifests.partitions.io import Partition
from emostore.manifests.partitions.leakage import check_leakage, rows_of, speaker
from emostore.manifests.partitions.registry import register_rule
from emostore.manifests.partitions.rules.official import official_fold

TEST_SHARE_SPEAKER_DEPENDENT = 0.25  # per emotion, in the speaker-dependent split
SPEAKER_FOLDS = 4  # folds for corpora with more than 6 speakers
# "Strongly unbalanced speakers": one speaker holds more than half of the utterances (any fold
# holding that speaker would test on most of the corpus), or — where the rule would be
# leave-one-speaker-out — the largest speaker has more than 10x the utterances of the smallest
# (one test fold would be a sliver of the others).
UNBALANCED_MAX_SHARE = 0.5
UNBALANCED_LOSO_RATIO = 10.0


def _unbalanced(counts: Counter) -> str | None:
    total = sum(counts.values())
    top_speaker, top = counts.most_common(1)[0]
    if top / total > UNBALANCED_MAX_SHARE:
        return f"speaker {top_speaker} has {top / total:.0%} of the utterances (> {UNBALANCED_MAX_SHARE:.0%})"
    if 4 <= len(counts) <= 6:
        low = min(counts.values())
        if top / low > UNBALANCED_LOSO_RATIO:
            return (f"largest speaker has {top / low:.1f}x the utterances of the smallest "
                    f"(> {UNBALANCED_LOSO_RATIO:g}x) for leave-one-speaker-out")
    return None


def _speaker_groups(counts: Counter, k: int) -> list[list[str]]:
    """k speaker groups balanced by utterance count: largest speaker first into the lightest group."""
    groups: list[list[str]] = [[] for _ in range(k)]
    sizes = [0] * k
    for spk in sorted(counts, key=lambda s: (-counts[s], s)):
        g = min(range(k), key=lambda j: (sizes[j], j))
        groups[g].append(spk)
        sizes[g] += counts[spk]
    # then improve: apply the best single move or pairwise swap while it lowers the spread
    # (sum of squared group sizes); every step is strictly better, so this ends, deterministically.
    while True:
        best = (0, None)
        for a, b in itertools.permutations(range(k), 2):
            for x in groups[a]:
                if len(groups[a]) > 1:  # move x from a to b
                    gain = sizes[a] ** 2 + sizes[b] ** 2 - (sizes[a] - counts[x]) ** 2 - (sizes[b] + counts[x]) ** 2
                    if gain > best[0]:
                        best = (gain, (a, b, x, None))
                if a < b:
                    for y in groups[b]:  # swap x (in a) with y (in b)
                        d = counts[x] - counts[y]
                        gain = sizes[a] ** 2 + sizes[b] ** 2 - (sizes[a] - d) ** 2 - (sizes[b] + d) ** 2
                        if gain > best[0]:
                            best = (gain, (a, b, x, y))
        if best[1] is None:
            break
        a, b, x, y = best[1]
        groups[a].remove(x)
        groups[b].append(x)
        sizes[a] -= counts[x]
        sizes[b] += counts[x]
        if y is not None:
            groups[b].remove(y)
            groups[a].append(y)
            sizes[b] -= counts[y]
            sizes[a] += counts[y]
    groups = [sorted(g) for g in groups]
    return sorted(groups, key=lambda g: min(g))  # fold order: by each group's first speaker id


def emobox_rule(rows, seed: int = 0, corpus: str | None = None) -> Partition:
    """EmoBox's rule for any manifest (see the module docstring and docs/partitions.md)."""
    rows = rows_of(rows)
    by_id = {str(r["id"]): r for r in rows}
    ids = list(by_id)
    base = {"rule": "emobox-rule", "corpus": corpus, "seed": seed}
    if any(r.get("split") not in (None, "") for r in rows):
        folds, meta = official_fold(corpus or "corpus", rows, seed)
        return Partition(folds, {**base, "scheme": "official split", **meta})

    speakers = [speaker(r) for r in rows]
    counts = Counter(s for s in speakers if s is not None)
    reason = None
    if None in speakers:
        reason = f"{speakers.count(None)} rows have no speaker"
    elif len(counts) < 4:
        reason = f"{len(counts)} speakers (< 4)"
    else:
        reason = _unbalanced(counts)
    if reason is not None:
        test, train = stratified_take(ids, by_id, TEST_SHARE_SPEAKER_DEPENDENT, rng(seed, "test"))
        train, dev, info = hold_out_dev(train, by_id, seed, "fold1", speaker_disjoint=False)
        return Partition({"fold1": {"train": train, "dev": dev, "test": test}}, {
            **base, "scheme": "speaker-dependent", "reason": reason, "speaker_independent": False,
            "folds": {"fold1": {"test": "25% of each emotion (stratified, seeded)", **info}},
        })

    if len(counts) <= 6:
        groups = [[s] for s in sorted(counts)]
        scheme = "leave-one-speaker-out"
    else:
        groups = _speaker_groups(counts, SPEAKER_FOLDS)
        scheme = f"{SPEAKER_FOLDS} speaker-disjoint folds"
    folds, info = {}, {}
    for k, group in enumerate(groups, 1):
        name = f"fold{k}"
        gset = set(group)
        test = [i for i in ids if speaker(by_id[i]) in gset]
        train = [i for i in ids if speaker(by_id[i]) not in gset]
        train, dev, dinfo = hold_out_dev(train, by_id, seed, name, speaker_disjoint=True)
        folds[name] = {"train": train, "dev": dev, "test": test}
        info[name] = {"test_speakers": group, **dinfo}
    partition = Partition(folds, {**base, "scheme": scheme, "speaker_independent": True, "folds": info})
    check_leakage(partition, rows, speaker_independent=True)
    return partition


@register_rule("emobox-rule")
def _make(corpus: str, rows: list[dict], seed: int) -> Partition:
    return emobox_rule(rows, seed=seed, corpus=corpus)

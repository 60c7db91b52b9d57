"""Seeded draws shared by the rules: a stratified share of ids, and a dev part held out of train
(speaker-disjoint when some training speakers hold close to 20% of it, else stratified by emotion)."""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict

from emostore.manifests.partitions.leakage import speaker

DEV_SHARE = 0.20  # of each fold's training part
# A speaker-disjoint dev set is used when some set of training speakers holds between 10% and 30%
# of the training part (closest to 20% wins) and at least one speaker stays in train.
DEV_SHARE_TOLERANCE = 0.10
_EXHAUSTIVE_SPEAKERS = 14  # above this, dev speakers are picked greedily in a seeded order


def emotion(row: dict) -> str:
    e = row.get("emotion")
    return "<none>" if e is None else str(e)


def rng(seed: int, *salt) -> random.Random:
    """A generator for one draw: ``seed`` and ``salt`` (fold name, purpose) give independent draws."""
    # A str seed is hashed with sha512 by `random`, independent of PYTHONHASHSEED.
    return random.Random(":".join(map(str, (seed, *salt))))


def stratified_take(ids: list[str], by_id: dict, share: float, rand: random.Random) -> tuple[list[str], list[str]]:
    """Take round(share * n) ids of each emotion (seeded); return (taken, kept), manifest order."""
    groups: dict[str, list[str]] = defaultdict(list)
    for i in sorted(ids):
        groups[emotion(by_id[i])].append(i)
    taken: set[str] = set()
    for emo in sorted(groups):
        members = groups[emo]
        rand.shuffle(members)
        taken.update(members[: int(len(members) * share + 0.5)])
    return [i for i in ids if i in taken], [i for i in ids if i not in taken]


def choose_dev_speakers(train_ids: list[str], by_id: dict, seed: int, salt: str) -> set[str] | None:
    """Training speakers whose utterances are closest to 20% of the training part, or None."""
    counts = Counter(speaker(by_id[i]) for i in train_ids)
    if None in counts or len(counts) < 2:
        return None
    total = sum(counts.values())
    target = DEV_SHARE * total
    order = sorted(counts)
    rng(seed, salt, "dev-speakers").shuffle(order)
    if len(order) <= _EXHAUSTIVE_SPEAKERS:
        # closest to the target; ties: fewer speakers, then earlier in the seeded order
        best_key, chosen = None, ()
        for r in range(1, len(order)):
            for combo in itertools.combinations(order, r):
                key = (abs(sum(counts[s] for s in combo) - target), r)
                if best_key is None or key < best_key:
                    best_key, chosen = key, combo
    else:
        acc, chosen_list = 0, []
        for s in order:
            if abs(acc + counts[s] - target) >= abs(acc - target) and chosen_list:
                continue
            chosen_list.append(s)
            acc += counts[s]
            if len(chosen_list) == len(order) - 1:
                break
        chosen = tuple(chosen_list)
    share = sum(counts[s] for s in chosen) / total
    if abs(share - DEV_SHARE) > DEV_SHARE_TOLERANCE + 1e-12:
        return None
    return set(chosen)


def hold_out_dev(train_ids: list[str], by_id: dict, seed: int, salt: str,
                 speaker_disjoint: bool) -> tuple[list[str], list[str], dict]:
    """Split a training part into (train, dev): by speakers if wanted and possible, else stratified."""
    if speaker_disjoint:
        spk = choose_dev_speakers(train_ids, by_id, seed, salt)
        if spk is not None:
            dev = [i for i in train_ids if speaker(by_id[i]) in spk]
            train = [i for i in train_ids if speaker(by_id[i]) not in spk]
            return train, dev, {"dev_method": "speaker-disjoint", "dev_speakers": sorted(spk)}
    dev, train = stratified_take(train_ids, by_id, DEV_SHARE, rng(seed, salt, "dev"))
    return train, dev, {"dev_method": "stratified by emotion"}

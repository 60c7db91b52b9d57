"""A sweep's runs as groups: runs that read the same features, trained together (emostore.heads.group).

A group is the sweep's unit of work: in this process, on a local process pool (``--jobs N``) or a
Dask cluster (``--scheduler``), a worker trains one whole group and writes every member's own run
folder. Runs group when they share the store, the head kind, the features read (``pooled/mean``,
or for frame heads the frames of the same layer, and their hidden size) and the device
(:func:`group_key`). Groups larger than :data:`MAX_MEMBERS` are cut, and while there are fewer
groups than workers the largest is split in two (alternate members: each half gets a like share of
the grid's folds, lrs and epochs), so every worker has work. Membership never changes a result: a
member equals its run trained alone (tests/test_grouped_training.py).
"""

from __future__ import annotations

import time

from emostore.heads.names import LAYERED, POOLED_EXACT
from emostore.sweep.config import RunSpec

# Members per group. Pooled heads: one step gathers batch x D floats per member (probe, 500 members:
# 25 MB), cheap. Frame heads: one step holds each member's batch of frames and hidden activations
# (EmoDB, Whisper tiny.en: 32 clips x ~140 frames x (384 + 2 x 256) x 4 B = 16 MB a member).
MAX_MEMBERS = {"pooled": 1024, "frames": 32}
# Smallest group split to give a worker work: a worker process starts in ~4 s (imports, store), about
# what 100 pooled probes train in (100 probes on EmoDB: 14 s in one process, 15-17 s split over 2);
# one frame run trains longer than that.
MIN_SPLIT = {"pooled": 256, "frames": 2}


def features_of(cfg) -> str:
    """What a run reads, from its config alone: ``pooled`` or ``frames`` (the store is not opened)."""
    if cfg.features != "auto":
        return cfg.features
    return "pooled" if cfg.head in POOLED_EXACT else "frames"


def group_key(run: RunSpec) -> tuple:
    """Runs with equal keys can train as one group."""
    c = run.config
    features = features_of(c)
    layer = c.layer if features == "frames" and c.head in LAYERED else None
    hidden = c.hidden if features == "frames" else None  # one stack per hidden size (heads.group.stack_key)
    return (run.store, c.head, features, layer, hidden, str(c.device))


def run_cost(run: RunSpec) -> float:
    """A run's training cost relative to its group's others: frame heads by hidden units (their
    per-frame product is the whole cost), pooled heads 1 (their cost is per step, not per unit)."""
    c = run.config
    return float(c.hidden or 256) if features_of(c) == "frames" else 1.0


def plan_groups(runs: list[RunSpec], workers: int = 1) -> list[list[RunSpec]]:
    """The runs cut into groups (first-seen order), split for ``workers``, costliest first.

    A group of at least :data:`MIN_SPLIT` members is split in two (alternate members) while there
    are fewer groups than workers, and, with
    more than one worker, while a frame group costs more than half a worker's fair share
    (:func:`run_cost`): frame members share reads, not arithmetic, so splitting them is nearly free
    and lets the pool balance (8 emobox configs, hidden 128 and 256, on 2 workers: 768 units each
    instead of 512 and 1024). Groups come costliest first, the order a pool should start them in.
    """
    by_key: dict[tuple, list[RunSpec]] = {}
    for r in runs:
        by_key.setdefault(group_key(r), []).append(r)
    groups = []
    for key, members in by_key.items():
        cap = MAX_MEMBERS[key[2]]
        groups += [members[i:i + cap] for i in range(0, len(members), cap)]

    def cost(g):
        return sum(run_cost(r) for r in g)

    share = sum(cost(g) for g in groups) / (2 * workers)
    while workers > 1:
        splittable = [i for i, g in enumerate(groups) if len(g) >= MIN_SPLIT[features_of(g[0].config)] and (
            len(groups) < workers or (features_of(g[0].config) == "frames" and cost(g) > share))]
        if not splittable:
            break
        i = max(splittable, key=lambda j: (cost(groups[j]), len(groups[j])))
        g = groups.pop(i)
        groups[i:i] = [g[::2], g[1::2]]  # interleaved: each half mixes the grid's folds and lrs
    return sorted(groups, key=cost, reverse=True)


def run_group(specs: list[dict], run_dirs: list[str], threads: int = 0, on_result=None) -> list[dict]:
    """Train one group of runs (their ``RunSpec.to_json()``) into their folders; never raises.

    A member that fails writes its own error.json and the others go on. ``on_result(outcome)`` is
    called as each member finishes. Returns one outcome per member, as ``runner.run_one`` does.
    """
    from emostore.heads.train import GroupRun, TrainConfig, run_group as train_group
    from emostore.sweep.runner import record_error

    t0 = time.perf_counter()
    outcomes: list = [None] * len(specs)

    def finished(i, value):
        spec = specs[i]
        if isinstance(value, BaseException):
            outcomes[i] = record_error(spec, run_dirs[i], value)
        else:
            outcomes[i] = {"run_id": spec["run_id"], "status": "done", "seconds": time.perf_counter() - t0}
        if on_result:
            on_result(outcomes[i])

    try:
        members = [GroupRun(s["labels"], s["partition"], TrainConfig(**s["config"]), d) for s, d in zip(specs, run_dirs)]
        train_group(specs[0]["store"], members, threads=threads or None, on_done=finished)
    except Exception as exc:  # the group could not start (store unreadable...): every unfinished member
        for i, o in enumerate(outcomes):
            if o is None:
                finished(i, exc)
    return outcomes

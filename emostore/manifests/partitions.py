"""Partitions: named folds of ``{train, dev, test}`` utterance ids, made by a rule from a manifest.

File format (exactly)::

    {"fold1": {"train": [ids], "dev": [ids], "test": [ids]}, "fold2": {...}, ...}

Folds keep their order. Nothing else goes into that file, so every top-level key is a fold.
Metadata (rule, corpus, seed, class-map version, ``speaker_independent``, manifest sha256, what
each fold tests on, rows left out and why) goes into a sibling file ``NAME.meta.json`` beside
``NAME.json`` (see :func:`meta_path`); a partition file read without it is still a partition.

Rules (see docs/partitions.md for the tables and the reasoning):

* ``emo-superb`` — the EMO-SUPERB session tables (IEMOCAP, MSP-IMPROV, CREMA-D, NNIME) and the
  official MSP-Podcast sets. IEMOCAP fold 5 trains on sessions 1, 2, 5 (the paper prints 1, 2, 4,
  which contains fold 5's own test session 4; the rotation and the leakage rule both give 1, 2, 5).
* ``emobox`` — EmoBox's generic speaker rules over any manifest (official split if the rows carry
  ``split``; otherwise by speaker count), 20% of each fold's training part held out as dev.
* ``official`` — only the corpus's official train/dev/test split.

:func:`check_leakage` refuses a speaker-independent partition whose train/dev speakers reappear in
its test part, an id listed twice in a fold, or an id the manifest does not have.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from emostore.manifests.adapters import crema_d
from emostore.jsonl import meta_path
from emostore.errors import EmostoreError

FORMAT = "emostore-partition/1"
RULES = ("emo-superb", "emobox", "official")
PARTS = ("train", "dev", "test")


class PartitionError(EmostoreError, ValueError):
    """A partition cannot be made from this manifest, or a partition breaks its own rule."""


# --------------------------------------------------------------------------------------------
# EMO-SUPERB session tables: fold -> (train sessions, dev sessions, test sessions)
# --------------------------------------------------------------------------------------------

# Five sessions rotating: fold k tests on session k+4 (mod 5), develops on k+3, trains on the rest.
# ERRATUM: the EMO-SUPERB paper prints IEMOCAP fold 5's training sessions as 1, 2, 4. Session 4 is
# fold 5's own test session, so that row would train on the test speakers; both the rotation of
# the other four rows and the speaker-independence rule give 1, 2, 5, which is what we ship.
FIVE_SESSION_FOLDS: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...] = (
    ((1, 2, 3), (4,), (5,)),
    ((2, 3, 4), (5,), (1,)),
    ((3, 4, 5), (1,), (2,)),
    ((1, 4, 5), (2,), (3,)),
    ((1, 2, 5), (3,), (4,)),  # paper: (1, 2, 4) — erratum, see above
)

MSP_IMPROV_FOLDS: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...] = (
    ((1, 2, 3, 4), (5,), (6,)),
    ((1, 2, 3, 6), (4,), (5,)),
    ((1, 2, 5, 6), (3,), (4,)),
    ((1, 4, 5, 6), (2,), (3,)),
    ((3, 4, 5, 6), (1,), (2,)),
    ((2, 3, 4, 5), (6,), (1,)),
)

# CREMA-D's five EMO-SUPERB sessions, by actor id (inclusive ranges): the adapter's table.
CREMA_D_SESSIONS = crema_d.SESSIONS

SESSION_TABLES = {
    "iemocap": FIVE_SESSION_FOLDS,
    "msp-improv": MSP_IMPROV_FOLDS,
    "crema-d": FIVE_SESSION_FOLDS,
    "nnime": FIVE_SESSION_FOLDS,
}
OFFICIAL_SPLIT_CORPORA = ("msp-podcast", "msp-podcast-balanced")
# Session tables whose sessions are disjoint speaker groups by construction: a leak there is an
# error in the manifest. NNIME's sessions come from the manifest; its flag is what the data shows.
SPEAKER_DISJOINT_SESSIONS = ("iemocap", "msp-improv", "crema-d")

_ALIASES = {
    "cremad": "crema-d", "crema": "crema-d", "mspimprov": "msp-improv", "msp-improv": "msp-improv",
    "msppodcast": "msp-podcast", "podcast": "msp-podcast", "msp-podcast-balanced": "msp-podcast-balanced",
}

# --------------------------------------------------------------------------------------------
# EmoBox constants
# --------------------------------------------------------------------------------------------

TEST_SHARE_SPEAKER_DEPENDENT = 0.25  # per emotion, in the speaker-dependent split
DEV_SHARE = 0.20  # of each fold's training part
SPEAKER_FOLDS = 4  # folds for corpora with more than 6 speakers
# "Strongly unbalanced speakers": one speaker holds more than half of the utterances (any fold
# holding that speaker would test on most of the corpus), or — where the rule would be
# leave-one-speaker-out — the largest speaker has more than 10x the utterances of the smallest
# (one test fold would be a sliver of the others).
UNBALANCED_MAX_SHARE = 0.5
UNBALANCED_LOSO_RATIO = 10.0
# A speaker-disjoint dev set is used when some set of training speakers holds between 10% and 30%
# of the training part (closest to 20% wins) and at least one speaker stays in train.
DEV_SHARE_TOLERANCE = 0.10
_EXHAUSTIVE_SPEAKERS = 14  # above this, dev speakers are picked greedily in a seeded order

_SPLIT_NAMES = {
    "train": "train", "training": "train", "tr": "train",
    "dev": "dev", "development": "dev", "devel": "dev", "valid": "dev", "validation": "dev", "val": "dev",
    "test": "test", "test1": "test", "testing": "test",
}
_UNKNOWN_SPEAKERS = {"", "unknown", "none", "null", "nan", "n/a", "na", "?"}


@dataclass
class Partition:
    """Ordered folds ``{name: {"train": [...], "dev": [...], "test": [...]}}`` plus metadata."""

    folds: dict[str, dict[str, list[str]]]
    meta: dict = field(default_factory=dict)

    @property
    def speaker_independent(self) -> bool:
        return bool(self.meta.get("speaker_independent", False))

    def to_json(self) -> dict:
        """The partition file's content: folds only, in order, parts in train/dev/test order."""
        return {name: {p: list(fold[p]) for p in PARTS} for name, fold in self.folds.items()}

    def __len__(self) -> int:
        return len(self.folds)


def write_partition(partition: Partition, out: str | Path) -> Path:
    """Write the folds to ``out`` (the exact format) and the metadata to :func:`meta_path`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, obj in ((out, partition.to_json()), (meta_path(out), {"format": FORMAT, **partition.meta})):
        tmp = path.with_name(path.name + ".partial")
        tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)
    return out


def read_partition(path: str | Path) -> Partition:
    """Read a partition file (and its ``.meta.json`` sibling if there is one); validate its shape."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PartitionError(f"{path}: no such partition file") from None
    except json.JSONDecodeError as exc:
        raise PartitionError(f"{path}: not valid JSON ({exc.msg})") from None
    folds = _validate_shape(obj, str(path))
    meta: dict = {}
    mp = meta_path(path)
    if mp.exists():
        meta = json.loads(mp.read_text(encoding="utf-8"))
    return Partition(folds, meta)


def _validate_shape(obj, where: str) -> dict[str, dict[str, list[str]]]:
    if not isinstance(obj, dict) or not obj:
        raise PartitionError(f"{where}: a partition is a non-empty JSON object of folds")
    folds = {}
    for name, fold in obj.items():
        if not isinstance(fold, dict) or set(fold) != set(PARTS):
            raise PartitionError(f"{where}: fold {name!r} must have exactly the keys train, dev, test")
        for p in PARTS:
            if not isinstance(fold[p], list) or not all(isinstance(i, str) for i in fold[p]):
                raise PartitionError(f"{where}: fold {name!r} {p} must be a list of id strings")
        folds[name] = {p: list(fold[p]) for p in PARTS}
    return folds


# --------------------------------------------------------------------------------------------
# Leakage check
# --------------------------------------------------------------------------------------------


def _rows_of(rows) -> list[dict]:
    return list(rows.rows) if hasattr(rows, "rows") else list(rows)


def _speaker(row: dict) -> str | None:
    s = row.get("speaker")
    if s is None:
        return None
    s = str(s).strip()
    return None if s.lower() in _UNKNOWN_SPEAKERS else s


def check_leakage(partition: Partition | dict, rows, speaker_independent: bool = True) -> None:
    """Raise :class:`PartitionError` if ``partition`` is not valid for ``rows``.

    Always: every fold has exactly train/dev/test, every id is in the manifest, and no id appears
    twice within a fold. With ``speaker_independent``: no speaker of a fold's train or dev part is
    also in its test part (the error names the fold and the speakers). Rows without a speaker (or
    ``"unknown"``) cannot leak by speaker and are not compared.
    """
    folds = partition.folds if isinstance(partition, Partition) else _validate_shape(partition, "partition")
    by_id = {str(r["id"]): r for r in _rows_of(rows)}
    for name, fold in folds.items():
        if set(fold) != set(PARTS):
            raise PartitionError(f"fold {name!r} must have exactly the keys train, dev, test")
        seen: dict[str, str] = {}
        for p in PARTS:
            for i in fold[p]:
                if i in seen:
                    where = p if seen[i] == p else f"{seen[i]} and {p}"
                    raise PartitionError(f"fold {name!r}: id {i!r} appears more than once ({where})")
                seen[i] = p
        missing = [i for i in seen if i not in by_id]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise PartitionError(
                f"fold {name!r}: {len(missing)} ids are not in the manifest: {', '.join(map(repr, missing[:5]))}{more}"
            )
        if not speaker_independent:
            continue
        test_spk = {s for i in fold["test"] if (s := _speaker(by_id[i])) is not None}
        for p in ("train", "dev"):
            leak = sorted(test_spk & {s for i in fold[p] if (s := _speaker(by_id[i])) is not None})
            if leak:
                raise PartitionError(
                    f"fold {name!r} leaks speakers between {p} and test: {', '.join(leak)}"
                )


def _leaks(folds, rows) -> bool:
    try:
        check_leakage(Partition(folds), rows, speaker_independent=True)
    except PartitionError:
        return True
    return False


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def normalise_corpus(corpus: str) -> str:
    c = corpus.strip().lower().replace("_", "-").replace(" ", "-")
    return _ALIASES.get(c, _ALIASES.get(c.replace("-", ""), c))


def _emotion(row: dict) -> str:
    e = row.get("emotion")
    return "<none>" if e is None else str(e)


def _rng(seed: int, *salt) -> random.Random:
    # A str seed is hashed with sha512 by `random`, independent of PYTHONHASHSEED.
    return random.Random(":".join(map(str, (seed, *salt))))


def _stratified_take(ids: list[str], by_id: dict, share: float, rng: random.Random) -> tuple[list[str], list[str]]:
    """Take round(share * n) ids of each emotion (seeded); return (taken, kept), manifest order."""
    groups: dict[str, list[str]] = defaultdict(list)
    for i in sorted(ids):
        groups[_emotion(by_id[i])].append(i)
    taken: set[str] = set()
    for emo in sorted(groups):
        members = groups[emo]
        rng.shuffle(members)
        taken.update(members[: int(len(members) * share + 0.5)])
    return [i for i in ids if i in taken], [i for i in ids if i not in taken]


def _choose_dev_speakers(train_ids: list[str], by_id: dict, seed: int, salt: str) -> set[str] | None:
    """Training speakers whose utterances are closest to 20% of the training part, or None."""
    counts = Counter(_speaker(by_id[i]) for i in train_ids)
    if None in counts or len(counts) < 2:
        return None
    total = sum(counts.values())
    target = DEV_SHARE * total
    order = sorted(counts)
    _rng(seed, salt, "dev-speakers").shuffle(order)
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


def _hold_out_dev(train_ids: list[str], by_id: dict, seed: int, salt: str, speaker_disjoint: bool) -> tuple[list[str], list[str], dict]:
    """Split a training part into (train, dev): by speakers if wanted and possible, else stratified."""
    if speaker_disjoint:
        spk = _choose_dev_speakers(train_ids, by_id, seed, salt)
        if spk is not None:
            dev = [i for i in train_ids if _speaker(by_id[i]) in spk]
            train = [i for i in train_ids if _speaker(by_id[i]) not in spk]
            return train, dev, {"dev_method": "speaker-disjoint", "dev_speakers": sorted(spk)}
    dev, train = _stratified_take(train_ids, by_id, DEV_SHARE, _rng(seed, salt, "dev"))
    return train, dev, {"dev_method": "stratified by emotion"}


# --------------------------------------------------------------------------------------------
# EMO-SUPERB
# --------------------------------------------------------------------------------------------


def crema_d_session(speaker) -> int | None:
    """EMO-SUPERB session of a CREMA-D actor id (1001-1091), or None."""
    m = re.search(r"(\d{4})", str(speaker or ""))
    if not m:
        return None
    return crema_d.session_of(int(m.group(1)))


def _session(row: dict, corpus: str) -> int | None:
    raw = row.get("session")
    session = None
    if raw is not None and str(raw).strip() != "":
        try:
            session = int(raw)
        except (TypeError, ValueError):
            raise PartitionError(f"row {row['id']!r}: session {raw!r} is not an integer") from None
    if corpus == "crema-d":
        derived = crema_d_session(row.get("speaker"))
        if derived is not None:
            if session is not None and session != derived:
                raise PartitionError(
                    f"row {row['id']!r}: CREMA-D actor {row.get('speaker')} is in EMO-SUPERB session "
                    f"{derived}, but the manifest says session {session}"
                )
            return derived
    if session is None and corpus == "iemocap":
        m = re.match(r"ses0?(\d)", str(row.get("speaker") or row["id"]), re.IGNORECASE)
        session = int(m.group(1)) if m else None
    return session


def _official_fold(corpus: str, rows: list[dict], seed: int) -> tuple[dict, dict]:
    parts: dict[str, list[str]] = {p: [] for p in PARTS}
    excluded: Counter = Counter()
    any_split = False
    for r in rows:
        raw = r.get("split")
        if raw is None or str(raw).strip() == "":
            # e.g. MSP-Podcast's Test2/Test3: split None, the raw set name in `split_set`
            other = r.get("split_set")
            excluded[f"split {str(other).strip()!r}" if other else "no split"] += 1
            continue
        any_split = True
        p = _SPLIT_NAMES.get(str(raw).strip().lower())
        if p is None:
            excluded[f"split {str(raw).strip()!r}"] += 1
            continue
        parts[p].append(str(r["id"]))
    if not any_split:
        raise PartitionError(f"{corpus}: the manifest's rows carry no official `split` column")
    if not parts["train"] or not parts["test"]:
        raise PartitionError(f"{corpus}: the official split needs train and test rows "
                             f"(train {len(parts['train'])}, test {len(parts['test'])})")
    by_id = {str(r["id"]): r for r in rows}
    info: dict = {"test": "official test set", "dev_method": "official"}
    if not parts["dev"]:
        parts["train"], parts["dev"], info = _hold_out_dev(
            parts["train"], by_id, seed, "official", speaker_disjoint=True)
        info = {"test": "official test set", **info, "dev_note": "no official dev set: held out 20% of train"}
    meta = {"excluded": dict(excluded)} if excluded else {}
    folds = {"official": parts}
    meta["speaker_independent"] = not _leaks(folds, rows)
    if not meta["speaker_independent"]:
        meta["note"] = "the official split shares speakers between train/dev and test"
    meta["folds"] = {"official": info}
    return folds, meta


def emo_superb(corpus: str, rows) -> Partition:
    """The EMO-SUPERB partition of ``corpus`` (session tables, or MSP-Podcast's official sets)."""
    rows = _rows_of(rows)
    c = normalise_corpus(corpus)
    if c in OFFICIAL_SPLIT_CORPORA:
        folds, meta = _official_fold(c, rows, 0)
        return Partition(folds, {"rule": "emo-superb", "corpus": c, **meta})
    if c not in SESSION_TABLES:
        known = ", ".join(sorted((*SESSION_TABLES, *OFFICIAL_SPLIT_CORPORA)))
        raise PartitionError(f"EMO-SUPERB has no partition for corpus {corpus!r}; it covers {known}")
    table = SESSION_TABLES[c]
    sessions_used = {s for fold in table for part in fold for s in part}
    by_session: dict[int, list[str]] = defaultdict(list)
    missing = []
    for r in rows:
        s = _session(r, c)
        if s is None:
            missing.append(str(r["id"]))
        else:
            by_session[s].append(str(r["id"]))
    if missing:
        raise PartitionError(
            f"{c}: {len(missing)} rows have no session (e.g. {', '.join(map(repr, missing[:3]))})"
        )
    unknown = sorted(set(by_session) - sessions_used)
    if unknown:
        raise PartitionError(f"{c}: sessions {unknown} are not in the EMO-SUPERB table "
                             f"(sessions {sorted(sessions_used)})")
    folds, info = {}, {}
    for k, (train, dev, test) in enumerate(table, 1):
        name = f"fold{k}"
        folds[name] = {p: [i for s in ss for i in by_session.get(s, [])] for p, ss in zip(PARTS, (train, dev, test))}
        info[name] = {"train_sessions": list(train), "dev_sessions": list(dev), "test_sessions": list(test)}
    meta: dict = {"rule": "emo-superb", "corpus": c, "folds": info}
    if c == "iemocap":
        meta["note"] = ("fold5 trains on sessions 1, 2, 5; the EMO-SUPERB paper prints 1, 2, 4, which "
                        "contains fold5's test session 4 (erratum: rotation and leakage rule give 1, 2, 5)")
    if c in SPEAKER_DISJOINT_SESSIONS:
        check_leakage(Partition(folds), rows, speaker_independent=True)
        meta["speaker_independent"] = True
    else:
        meta["speaker_independent"] = not _leaks(folds, rows)
        if not meta["speaker_independent"]:
            meta["note"] = "some speakers recur across sessions: folds are session-independent, not speaker-independent"
    return Partition(folds, meta)


# --------------------------------------------------------------------------------------------
# EmoBox
# --------------------------------------------------------------------------------------------


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


def emobox(rows, seed: int = 0, corpus: str | None = None) -> Partition:
    """EmoBox's rule for any manifest (see the module docstring and docs/partitions.md)."""
    rows = _rows_of(rows)
    by_id = {str(r["id"]): r for r in rows}
    ids = list(by_id)
    base = {"rule": "emobox", "corpus": corpus, "seed": seed}
    if any(r.get("split") not in (None, "") for r in rows):
        folds, meta = _official_fold(corpus or "corpus", rows, seed)
        return Partition(folds, {**base, "scheme": "official split", **meta})

    speakers = [_speaker(r) for r in rows]
    counts = Counter(s for s in speakers if s is not None)
    reason = None
    if None in speakers:
        reason = f"{speakers.count(None)} rows have no speaker"
    elif len(counts) < 4:
        reason = f"{len(counts)} speakers (< 4)"
    else:
        reason = _unbalanced(counts)
    if reason is not None:
        test, train = _stratified_take(ids, by_id, TEST_SHARE_SPEAKER_DEPENDENT, _rng(seed, "test"))
        train, dev, info = _hold_out_dev(train, by_id, seed, "fold1", speaker_disjoint=False)
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
        test = [i for i in ids if _speaker(by_id[i]) in gset]
        train = [i for i in ids if _speaker(by_id[i]) not in gset]
        train, dev, dinfo = _hold_out_dev(train, by_id, seed, name, speaker_disjoint=True)
        folds[name] = {"train": train, "dev": dev, "test": test}
        info[name] = {"test_speakers": group, **dinfo}
    partition = Partition(folds, {**base, "scheme": scheme, "speaker_independent": True, "folds": info})
    check_leakage(partition, rows, speaker_independent=True)
    return partition


def official(rows, corpus: str | None = None, seed: int = 0) -> Partition:
    """The corpus's official split only, as one fold named ``official``."""
    rows = _rows_of(rows)
    folds, meta = _official_fold(corpus or "corpus", rows, seed)
    return Partition(folds, {"rule": "official", "corpus": corpus, "seed": seed, **meta})


def _class_map_version(corpus: str) -> str | None:
    try:
        from emostore.manifests.adapters.base import get_adapter

        return get_adapter(corpus).class_map.version
    except Exception:  # optional metadata: no adapter (yet) for this corpus, or adapters not importable
        return None


def make_partition(corpus: str, manifest, rule: str, seed: int = 0, class_map_version: str | None = None) -> Partition:
    """Build ``rule``'s partition of ``manifest`` (a Manifest or a list of rows) and check it.

    The returned partition has passed :func:`check_leakage` (speaker-independent ones for speakers
    too). Its ``meta`` records rule, corpus, seed, class-map version (given, or the registered
    adapter's), ``speaker_independent``, the manifest's sha256 and what each fold tests on.
    """
    rule = rule.strip().lower()
    rows = _rows_of(manifest)
    c = normalise_corpus(corpus)
    if rule == "emo-superb":
        p = emo_superb(c, rows)
    elif rule == "emobox":
        p = emobox(rows, seed=seed, corpus=c)
    elif rule == "official":
        p = official(rows, corpus=c, seed=seed)
    else:
        raise PartitionError(f"unknown partition rule {rule!r}; choose one of {', '.join(RULES)}")
    check_leakage(p, rows, speaker_independent=p.speaker_independent)
    meta = {"rule": rule, "corpus": c, "seed": seed if rule != "emo-superb" else None,
            "class_map_version": class_map_version or _class_map_version(c),
            "speaker_independent": p.speaker_independent}
    if hasattr(manifest, "sha256"):
        meta["manifest_sha256"] = manifest.sha256
        meta["manifest"] = manifest.source
    meta.update({k: v for k, v in p.meta.items() if k not in meta})
    meta["sizes"] = {name: {part: len(f[part]) for part in PARTS} for name, f in p.folds.items()}
    return Partition(p.folds, meta)

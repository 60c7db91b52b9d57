"""What each aggregation rule loses: the all-inclusive-rule paper's Table 3 for any corpus.

* **data loss**: share of utterances the rule excludes.
* **rating loss**: share of all ratings (every rating of every utterance, "other" included) that
  do not reach a kept target: all ratings of excluded utterances; for MR / PR, the ratings of a kept
  utterance that disagree with its single label (other classes and "other"); for every rule, the
  ratings outside the class set ("other"). AR therefore loses exactly the "other" ratings.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from emostore.labels.aggregate import RULES, decide
from emostore.labels.votes import ClassSet, Votes, class_set, count_votes

# Chou et al. 2024 (TAC), Table 3, average over corpora: (data loss %, rating loss %).
PAPER_TABLE3_AVERAGE = {"mr": (26.40, 45.25), "pr": (12.72, 38.03), "ar": (0.0, 3.75)}


@dataclass
class RuleLoss:
    rule: str
    utterances: int
    excluded: int
    ratings: int
    lost_ratings: int
    reasons: dict[str, int] = field(default_factory=dict)
    most_ratings: int = 0  # most ratings any one utterance has; <= 1: no per-rater ratings at all

    @property
    def data_loss(self) -> float:
        return self.excluded / self.utterances if self.utterances else 0.0

    @property
    def rating_loss(self) -> float:
        return self.lost_ratings / self.ratings if self.ratings else 0.0

    def to_json(self) -> dict:
        return {**asdict(self), "data_loss": self.data_loss, "rating_loss": self.rating_loss}


def rule_loss(votes: list[Votes], rule: str) -> RuleLoss:
    excluded = lost = total = most = 0
    reasons: Counter[str] = Counter()
    for v in votes:
        most = max(most, v.total)
        total += v.total
        kept, reason = decide(v, rule)
        if reason is not None:
            excluded += 1
            lost += v.total
            reasons[reason] += 1
        elif kept is None:  # AR: only the ratings outside C are lost
            lost += v.other
        else:  # MR / PR: everything but the kept class's votes
            lost += v.total - int(v.counts[kept])
    return RuleLoss(rule, len(votes), excluded, total, lost, dict(sorted(reasons.items())), most)


def has_per_rater_ratings(losses: list[RuleLoss]) -> bool:
    """Whether any utterance has two or more ratings; without, MR, PR and AR are the same label set."""
    return any(r.most_ratings > 1 for r in losses)


def loss_table(rows: list[dict], cs: ClassSet, rules=RULES) -> list[RuleLoss]:
    votes = [count_votes(r, cs) for r in rows]
    return [rule_loss(votes, rule) for rule in rules]


def manifest_loss_table(path: str | Path, classes: list[str] | None = None) -> tuple[list[RuleLoss], ClassSet]:
    from emostore.manifests import load_manifest

    m = load_manifest(path, require_audio=False)
    cs = class_set(m.rows, classes)
    return loss_table(m.rows, cs), cs


def format_losses(losses: list[RuleLoss], paper: bool = True) -> str:
    """The rules' data and rating losses as ``emostore labels stats`` prints them (the paper's Table 3)."""
    if losses and not has_per_rater_ratings(losses):
        return (f"no per-rater ratings: each of the {losses[0].utterances} utterances has at most one label, so MR, "
                "PR and AR keep the same data and lose nothing; the rules' losses (the all-inclusive-rule paper's "
                "Table 3) only mean something on a corpus with several ratings per utterance")
    head = f"{'rule':<5} {'utterances':>10} {'excluded':>9} {'data loss':>10} {'ratings':>9} {'lost':>8} {'rating loss':>12}"
    if paper:
        head += "   paper avg (data / rating)"
    lines = [head]
    for r in losses:
        line = (f"{r.rule.upper():<5} {r.utterances:>10} {r.excluded:>9} {100 * r.data_loss:>9.2f}% "
                f"{r.ratings:>9} {r.lost_ratings:>8} {100 * r.rating_loss:>11.2f}%")
        if paper and r.rule in PAPER_TABLE3_AVERAGE:
            d, g = PAPER_TABLE3_AVERAGE[r.rule]
            line += f"   {d:.2f}% / {g:.2f}%"
        lines.append(line)
    return "\n".join(lines)

"""Partition rules by name, and :func:`make_partition`, which dispatches through them.

A rule module registers a function ``(corpus, rows, seed, **options) -> Partition``::

    @register_rule("emobox-rule")
    def _make(corpus: str, rows: list[dict], seed: int) -> Partition: ...

``seeded=False`` marks a rule without randomness (its partitions record ``seed: null``);
``default_seed`` is the seed used when the caller gives none; ``options`` names the keyword
options the rule takes (any other option is refused with the rule's list). The rule modules listed
in :mod:`emostore.manifests.partitions.rules` register on import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from emostore.manifests.partitions.io import PARTS, Partition, PartitionError, check_parts
from emostore.manifests.partitions.leakage import check_leakage, rows_of

_ALIASES = {
    "cremad": "crema-d", "crema": "crema-d", "mspimprov": "msp-improv", "msp-improv": "msp-improv",
    "msppodcast": "msp-podcast", "podcast": "msp-podcast", "msp-podcast-balanced": "msp-podcast-balanced",
}


@dataclass(frozen=True)
class Rule:
    name: str
    make: Callable[..., Partition]
    seeded: bool = True
    default_seed: int = 0
    options: tuple[str, ...] = ()


_RULES: dict[str, Rule] = {}


def register_rule(name: str, seeded: bool = True, default_seed: int = 0, options: tuple[str, ...] = ()):
    """Decorator: register ``fn(corpus, rows, seed, **options) -> Partition`` as the rule ``name``."""
    def deco(fn):
        if name in _RULES and _RULES[name].make is not fn:
            raise ValueError(f"partition rule {name!r} is registered twice")
        _RULES[name] = Rule(name, fn, seeded, default_seed, tuple(options))
        return fn

    return deco


def rules() -> dict[str, Rule]:
    """Every registered rule, by name in alphabetical order."""
    from emostore.manifests.partitions import rules as _pkg  # noqa: F401  (import registers all)

    return {name: _RULES[name] for name in sorted(_RULES)}


def rule_names() -> tuple[str, ...]:
    return tuple(rules())


def normalise_corpus(corpus: str) -> str:
    c = corpus.strip().lower().replace("_", "-").replace(" ", "-")
    return _ALIASES.get(c, _ALIASES.get(c.replace("-", ""), c))


def _class_map_version(corpus: str) -> str | None:
    """The corpus adapter's class-map version; None for a corpus without an adapter (optional metadata)."""
    from emostore.manifests.adapters.base import AdapterError, get_adapter

    try:
        adapter = get_adapter(corpus)
    except AdapterError:
        return None
    return adapter.class_map.version


def make_partition(corpus: str, manifest, rule: str, seed: int | None = None, class_map_version: str | None = None,
                   **options) -> Partition:
    """Build ``rule``'s partition of ``manifest`` (a Manifest or a list of rows) and check it.

    ``seed`` None is the rule's default seed; ``options`` are the rule's own (e.g. ``emobox``'s
    ``source_dir``, ``allow_mismatch``, ``allow_extra``); options set to None are not given.

    The returned partition has passed :func:`check_leakage` (speaker-independent ones for speakers
    too), and every fold has non-empty train, dev and test parts (a rule that leaves one empty, as
    on a manifest too small for it, is refused). Its ``meta`` records rule, corpus, seed, class-map version (given, or the registered
    adapter's), ``speaker_independent``, the manifest's sha256 and what each fold tests on.
    """
    rule = rule.strip().lower()
    known = rules()
    if rule not in known:
        raise PartitionError(f"unknown partition rule {rule!r}; choose one of {', '.join(known)}")
    spec = known[rule]
    options = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        takes = f"it takes {', '.join(spec.options)}" if spec.options else "it takes none"
        raise PartitionError(f"partition rule {rule!r} has no option {', '.join(unknown)} ({takes})")
    seed = spec.default_seed if seed is None else seed
    rows = rows_of(manifest)
    c = normalise_corpus(corpus)
    p = spec.make(c, rows, seed, **options)
    check_parts(p.folds, f"rule {rule!r} on {len(rows)} rows of {getattr(manifest, 'source', 'the manifest')}")
    check_leakage(p, rows, speaker_independent=p.speaker_independent)
    # a seeded rule may report that it used no randomness after all (seed None in its own meta)
    meta = {"rule": rule, "corpus": c, "seed": p.meta.get("seed", seed) if spec.seeded else None,
            "class_map_version": class_map_version or _class_map_version(c),
            "speaker_independent": p.speaker_independent}
    if hasattr(manifest, "sha256"):
        meta["manifest_sha256"] = manifest.sha256
        meta["manifest"] = manifest.source
    meta.update({k: v for k, v in p.meta.items() if k not in meta})
    meta["sizes"] = {name: {part: len(f[part]) for part in PARTS} for name, f in p.folds.items()}
    return Partition(p.folds, meta)

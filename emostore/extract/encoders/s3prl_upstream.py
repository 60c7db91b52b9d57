"""Any s3prl upstream from a local checkpoint (``--encoder s3prl:NAME[:CKPT]``).

EMO-SUPERB's legacy encoders (APC, VQ-APC, NPC, TERA, Mockingjay, DeCoAR 2.0, modified CPC,
wav2vec, vq-wav2vec) exist only in s3prl, and its published numbers used s3prl's upstreams for the
rest too. ``NAME`` is any name of ``s3prl.hub``: a registered one (``apc_960hr``, ``wav2vec_large``)
is built exactly as s3prl builds it, except that the file it would download is ``CKPT``; a
``*_local`` / ``*_custom`` / ``*_url`` name gets ``ckpt=CKPT``. Nothing is ever downloaded.

Stored: every entry of the upstream's ``hidden_states``, in s3prl's order, each cropped to the
frames the model itself yields for the clip alone: ``floor((samples - R) / S) + 1``, with S the
upstream's downsample rate and R measured once at load on short probes (s3prl's own
``S3PRLUpstream`` instead repeats the last frame up to ``ceil(samples / S)``; those copies carry
no information, so the store leaves them out).

Batching (``padding``) is per upstream family, as measured in tests/test_s3prl_encoder.py:
``mask`` where s3prl's own padding leaves valid frames unchanged, ``same-length`` (only clips of
one length share a batch) everywhere else, including every family not measured.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import sys
import types
from pathlib import Path

import numpy as np
import torch

from emostore.extract.encoders.base import Encoder, EncoderError, Usage, register
from emostore.provenance import files_sha256

PROBE_SAMPLES = 16000  # 1 s: long enough for every upstream's front end
LOADER_SUFFIXES = ("_local", "_custom", "_url")


def _compat_torchaudio() -> None:
    """Stand-ins for names torchaudio 2.9+ removed and s3prl 0.4.18 touches on import.

    ``s3prl.hub`` imports every upstream eagerly; some call ``torchaudio.set_audio_backend`` at
    import time and one imports ``torchaudio.sox_effects``. Neither is used on the feature path.
    Where torchaudio still has them, nothing is replaced.
    """
    import torchaudio

    if not hasattr(torchaudio, "set_audio_backend"):
        torchaudio.set_audio_backend = lambda backend: None
    try:
        importlib.import_module("torchaudio.sox_effects")
    except ImportError:
        stub = types.ModuleType("torchaudio.sox_effects")

        def apply_effects_tensor(*args, **kwargs):
            raise RuntimeError("torchaudio.sox_effects was removed from this torchaudio")

        stub.apply_effects_tensor = stub.apply_effects_file = apply_effects_tensor
        sys.modules["torchaudio.sox_effects"] = torchaudio.sox_effects = stub


def import_hub():
    """``s3prl.hub``, importable with this torch/torchaudio."""
    try:
        import s3prl  # noqa: F401
    except ImportError:
        raise EncoderError("the s3prl encoder needs the package s3prl: pip install 'emostore[s3prl]'") from None
    _compat_torchaudio()
    with contextlib.redirect_stdout(sys.stderr):  # s3prl prints notes; stdout is emostore's
        import s3prl.hub

    return s3prl.hub


@contextlib.contextmanager
def _local_only(name: str, ckpt: Path | None):
    """While s3prl builds an upstream: its downloader answers ``ckpt``, and torch.load unpickles.

    s3prl turns a registered name's URL into a file with ``_urls_to_filepaths``; every s3prl
    module holding that function sees a stand-in that returns ``ckpt`` (or refuses, without one,
    or when a second file is asked for); torch.hub's fetchers refuse.
    s3prl's checkpoints hold configs as pickled objects and it calls ``torch.load`` without
    ``weights_only``, which torch >= 2.6 reads as True; the user named this file, so it is
    unpickled as s3prl expects (load only checkpoints you trust).
    """
    urls: list[str] = []

    def local(*args, refresh=False, download=True):
        urls.extend(args)
        if ckpt is None:
            raise EncoderError(f"s3prl upstream {name!r} downloads its checkpoint; give the file: "
                               f"--encoder s3prl:{name}:PATH")
        if len(set(urls)) != 1:
            raise EncoderError(f"s3prl upstream {name!r} needs several files ({', '.join(dict.fromkeys(urls))}); "
                               "emostore passes only one checkpoint")
        return str(ckpt) if len(args) == 1 else [str(ckpt)] * len(args)

    def no_hub(*args, **kwargs):
        raise EncoderError(f"s3prl upstream {name!r} fetches weights through torch.hub; emostore never downloads")

    real_load = torch.load

    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return real_load(*args, **kwargs)

    stand_ins = [(m, attr, local) for m in list(sys.modules.values())
                 if getattr(m, "__name__", "").startswith("s3prl.")
                 for attr in ("_urls_to_filepaths", "urls_to_filepaths") if hasattr(m, attr)]
    stand_ins += [(torch.hub, attr, no_hub) for attr in ("load", "load_state_dict_from_url", "download_url_to_file")]
    stand_ins += [(torch, "load", load)]
    saved = [(m, attr, getattr(m, attr)) for m, attr, _ in stand_ins]
    try:
        for m, attr, fn in stand_ins:
            setattr(m, attr, fn)
        yield urls
    finally:
        for m, attr, fn in reversed(saved):
            setattr(m, attr, fn)


def _check_ckpt(name: str, ckpt: Path) -> None:
    if not ckpt.exists():
        raise EncoderError(f"s3prl:{name}: checkpoint {ckpt} does not exist")
    if ckpt.is_dir():
        for needed in ("config.json", "preprocessor_config.json"):
            if not (ckpt / needed).exists():
                raise EncoderError(f"s3prl:{name}: {ckpt} has no {needed} "
                                   "(s3prl's transformers upstreams would try to download it)")


def build_upstream(name: str, ckpt: Path | None):
    """The s3prl upstream ``name`` built from ``ckpt`` (see the module docstring), in eval mode."""
    hub = import_hub()
    fn = getattr(hub, name, None)
    if name.startswith("_") or not callable(fn) or name == "options":
        close = difflib.get_close_matches(name, hub.options(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else " (see s3prl.hub.options())"
        raise EncoderError(f"unknown s3prl upstream {name!r}{hint}")
    if ckpt is not None:
        _check_ckpt(name, ckpt)
    elif name.endswith(LOADER_SUFFIXES):
        raise EncoderError(f"s3prl upstream {name!r} needs a checkpoint: --encoder s3prl:{name}:PATH")
    kwargs = {"ckpt": str(ckpt)} if name.endswith(LOADER_SUFFIXES) else {}
    try:
        with _local_only(name, ckpt) as urls, contextlib.redirect_stdout(sys.stderr):
            upstream = fn(**kwargs)
    except EncoderError:
        raise
    except Exception as exc:  # s3prl reports a wrong file with asserts, KeyErrors, pickle errors
        raise EncoderError(f"s3prl:{name} could not be built from {ckpt}: {type(exc).__name__}: {exc}") from exc
    if ckpt is not None and not urls and not kwargs:
        raise EncoderError(f"s3prl upstream {name!r} takes no checkpoint, but {ckpt} was given")
    return upstream.eval()


def _family(upstream) -> str:
    """The s3prl upstream package the expert class lives in (vq_apc -> apc, tera -> mockingjay)."""
    parts = type(upstream).__module__.split(".")
    return parts[2] if len(parts) > 3 and parts[:2] == ["s3prl", "upstream"] else type(upstream).__module__


def measured_padding(upstream) -> str:
    """How batches stay exact for this upstream, as measured in tests/test_s3prl_encoder.py.

    ``mask``: apc (APC, VQ-APC: a packed GRU over per-clip features); s3prl's own wav2vec2 and
    hf_wav2vec2 with a layer-norm conv front end (a padding mask, as for ``hf:``). Measured to leak
    padding into valid frames, hence ``same-length``: npc (convolutions over zero-padded
    features), mockingjay (Mockingjay, TERA: the log-mel input of a padded clip already differs
    from the clip's own), group-norm wav2vec2, wav2vec (wav2vec, vq-wav2vec), cpc, and hubert and
    wavlm even with layer norm (a frame counts as padding only if all its samples are). Every family not measured is ``same-length`` too: exact by construction, since a
    batch of equal-length clips has no padding.
    """
    family = _family(upstream)
    if family == "apc":
        return "mask"
    if family == "wav2vec2":
        return "mask" if getattr(upstream.model.cfg, "extractor_mode", "default") == "layer_norm" else "same-length"
    if family == "hf_wav2vec2":
        return "mask" if upstream.model.config.feat_extract_norm == "layer" else "same-length"
    return "same-length"


def frames_for(num_samples: int, offset: int, stride: int) -> int:
    """floor((num_samples - offset) / stride) + 1, never below 0."""
    return max(0, (num_samples - offset) // stride + 1)


def _probe_wave(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    return 0.1 * torch.randn(n, generator=g)


@register("s3prl", Usage("s3prl:NAME[:CKPT]", "NAME, an s3prl upstream (apc_960hr, tera_960hr, wavlm_large, ...), "
                         "and CKPT, the checkpoint file s3prl's NAME would download (extra: s3prl)",
                         "s3prl:apc_960hr:/ckpt/apc_960hr.ckpt"))
class S3PRLEncoder(Encoder):
    """An s3prl upstream's ``hidden_states``, cropped to the frames each clip yields alone."""

    backend = "s3prl"

    def __init__(self, spec: str | None, device: torch.device):
        if not spec:
            raise EncoderError("the s3prl encoder needs an upstream name: --encoder s3prl:NAME[:CKPT]")
        name, _, ckpt = spec.partition(":")
        self.upstream_name = name.strip()
        self.ckpt = Path(ckpt.strip()).expanduser() if ckpt.strip() else None
        self.device = device
        self.upstream = build_upstream(self.upstream_name, self.ckpt).to(device)
        self.name = f"s3prl:{self.upstream_name}"
        self.family = _family(self.upstream)
        self.padding = measured_padding(self.upstream)
        rate = self.upstream.get_downsample_rates("hidden_states")
        if not isinstance(rate, int):
            raise EncoderError(f"{self.name}: layers with different frame rates ({rate}) are not supported")
        self.stride = rate
        self.frame_rate = 16000 / rate
        hidden = self._hidden([_probe_wave(PROBE_SAMPLES)])
        self.num_layers, self.dim = hidden.shape[2], hidden.shape[3]
        self.offset = self._measure_offset(hidden.shape[1])

    @torch.inference_mode()
    def _hidden(self, waves: list[torch.Tensor]) -> torch.Tensor:
        """s3prl's hidden_states for a list of clips, as one [B, T, L, D] float32 tensor."""
        out = self.upstream([w.to(self.device) for w in waves])["hidden_states"]
        shapes = {tuple(h.shape) for h in out}
        if len(shapes) != 1:
            raise EncoderError(f"{self.name}: hidden states differ in shape ({sorted(shapes)})")
        return torch.stack(list(out), dim=2).float()

    def _frames_alone(self, n: int) -> int:
        return self._hidden([_probe_wave(n)]).shape[1]

    def _measure_offset(self, t0: int) -> int:
        """R in frames = floor((n - R) / S) + 1, from the first length past PROBE_SAMPLES that adds
        a frame (binary search, ~log2(S) short forward passes), then checked on two other lengths."""
        lo, hi = PROBE_SAMPLES, PROBE_SAMPLES + self.stride
        if self._frames_alone(hi) != t0 + 1:
            raise EncoderError(f"{self.name}: {self.stride} more samples did not add one frame")
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self._frames_alone(mid) == t0 else (lo, mid)
        offset = hi - t0 * self.stride
        for n in (PROBE_SAMPLES // 2 + 7, PROBE_SAMPLES + 3 * self.stride + 11):
            if self._frames_alone(n) != frames_for(n, offset, self.stride):
                raise EncoderError(f"{self.name}: frame count is not floor((samples - R) / {self.stride}) + 1")
        return offset

    def num_frames(self, num_samples: int) -> int:
        return frames_for(num_samples, self.offset, self.stride)

    def encode(self, waves: list[np.ndarray]) -> list[torch.Tensor]:
        if self.padding == "same-length" and len({len(w) for w in waves}) > 1:
            raise EncoderError(f"{self.name} is not exact on padded batches; batch clips of one length only")
        hidden = self._hidden([torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)) for w in waves])
        frames = [self.num_frames(len(w)) for w in waves]
        if hidden.shape[1] < max(frames):
            raise EncoderError(f"{self.name} gave {hidden.shape[1]} frames where {max(frames)} were expected")
        return [hidden[i, :t] for i, t in enumerate(frames)]

    def describe(self) -> dict:
        import s3prl

        files = [self.ckpt] if self.ckpt and self.ckpt.is_file() else (
            sorted(p for p in self.ckpt.iterdir() if p.is_file()) if self.ckpt else [])
        return {"backend": self.backend, "name": self.name, "weights": str(self.ckpt) if self.ckpt else None,
                "weights_sha256": files_sha256(files) if files else None,
                "config": {"upstream": self.upstream_name, "family": self.family,
                           "s3prl": getattr(s3prl, "__version__", None), "num_layers": self.num_layers,
                           "dim": self.dim, "downsample_rate": self.stride, "frame_offset": self.offset,
                           "frames": f"floor((samples - {self.offset}) / {self.stride}) + 1",
                           "padding": self.padding}}


"""``--encoder s3prl:NAME[:CKPT]``: s3prl's upstreams, stored exactly as s3prl computes them.

Every checkpoint here is tiny (hidden size 16-32, 2-3 layers, seeded random weights) and written
in the exact format the s3prl 0.4.18 loader of that upstream reads: APC and NPC as
``{"config", "model"}``, TERA as ``{"Config", "Upstream_Config", "Transformer"}``, s3prl's own
wav2vec 2.0 as the converted ``{"task_cfg", "model_cfg", "model_weight"}``, and a transformers
directory for ``hf_wav2vec2_custom``. The registered names (``apc_960hr``, ``wav2vec2_large_960``)
are built by s3prl's own hub function with the download answered by the local file.

Tolerances as in test_encoders_padding.py (atol = rtol = 1e-4, float32 on CPU); a padding leak
moves valid frames by more than 1e-2 (the negative controls measure it). s3prl is in the test
extra: without it these tests fail, with import_hub's message naming the extra.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import emostore.store
from emostore.cli import main
from emostore.extract import audio
from emostore.extract.encoders import EncoderError, load_encoder
from emostore.extract.encoders.s3prl_upstream import _compat_torchaudio, import_hub
from emostore.extract.blocks import encode_rows

from conftest import write_manifest
from test_encoders_padding import LEAK, LENGTHS, _close, _wave, _waves

FBANK40 = {"feat_type": "fbank", "feat_dim": 40, "frame_length": 25, "frame_shift": 10, "dither": 0.0, "cmvn": True}
# wav2vec 2.0's real 7-layer conv front end (kernels 10,3,3,3,3,2,2, strides 5,2,...,2), 32 channels.
W2V2_CONV = "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2"
W2V2_TINY = dict(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=2,
                 conv_feature_layers=W2V2_CONV, conv_pos=16, conv_pos_groups=2)


def _apc(path):
    from s3prl.upstream.apc.apc import APC

    paras = dict(hidden_size=16, num_layers=3, dropout=0.0, residual=True)
    model = APC(FBANK40["feat_dim"], **paras)
    torch.save({"config": {"data": {"audio": dict(FBANK40)}, "model": {"paras": paras}}, "model": model.state_dict()}, path)
    return "apc_960hr", "apc_local"


def _npc(path):
    from s3prl.upstream.npc.npc import NPC

    paras = dict(hidden_size=16, n_blocks=3, dropout=0.0, residual=True, kernel_size=15, mask_size=5)
    model = NPC(FBANK40["feat_dim"], **paras)
    torch.save({"config": {"data": {"audio": dict(FBANK40)}, "model": {"paras": paras}}, "model": model.state_dict()}, path)
    return "npc_960hr", "npc_local"


def _tera(path):
    from s3prl.upstream.mockingjay.model import TransformerConfig, TransformerModel

    cfg = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, hidden_act="gelu", intermediate_size=64,
               hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, initializer_range=0.02,
               layer_norm_eps=1e-12, share_layer=False, pre_layer_norm=False)
    audio_cfg = {"target_level": -25, "win_ms": 25, "hop_ms": 10, "n_freq": 201, "n_mels": 40, "n_mfcc": 13,
                 "input": {"feat_type": "mel", "channel": 0, "log": True, "delta": 0, "cmvn": True}}
    model = TransformerModel(TransformerConfig(cfg), 40)
    upstream_cfg = {"transformer": cfg, "task": {"sequence_length": 0}, "audio": audio_cfg}
    torch.save({"Config": {}, "Upstream_Config": upstream_cfg, "Transformer": model.state_dict()}, path)
    return "tera_960hr", "tera_local"


def _wav2vec2(path, mode: str):
    from s3prl.upstream.wav2vec2.wav2vec2_model import Wav2Vec2Config, Wav2Vec2Model

    cfg = dict(extractor_mode=mode, final_dim=16, layer_norm_first=mode == "layer_norm", **W2V2_TINY)
    model = Wav2Vec2Model(Wav2Vec2Config(**cfg))
    torch.save({"task_cfg": {"normalize": mode == "layer_norm"}, "model_cfg": cfg, "model_weight": model.state_dict()}, path)
    return "wav2vec2_large_960", "wav2vec2_local"


def _wav2vec(path, vq: bool):
    from s3prl.upstream.wav2vec.wav2vec_model import Wav2VecConfig, Wav2VecModel

    # wav2vec's real conv front end (kernels 10,8,4,4,4,1,1,1, strides 5,4,2,2,2,1,1,1), 16 channels.
    cfg = dict(conv_feature_layers="[(16, 10, 5), (16, 8, 4)] + [(16, 4, 2)] * 3 + [(16, 1, 1)] * 3",
               conv_aggregator_layers="[(16, 2, 1), (16, 3, 1), (16, 4, 1)]", prediction_steps=2, infonce=True)
    if vq:  # vq-wav2vec: a gumbel quantiser between the two conv stacks
        cfg.update(vq_type="gumbel", vq_vars=8, vq_groups=2, vq_dim=16, vq_depth=1, combine_groups=False)
    model = Wav2VecModel(Wav2VecConfig(**cfg))
    torch.save({"task_cfg": {"normalize": False}, "model_cfg": cfg, "model_weight": model.state_dict()}, path)
    return ("vq_wav2vec", "vq_wav2vec_custom") if vq else ("wav2vec_large", "wav2vec_local")


def _cpc(path):
    import argparse

    from s3prl.upstream.cpc.cpc_default_config import get_default_cpc_config
    from s3prl.upstream.cpc.feature_loader import getAR, getEncoder, loadArgs
    from s3prl.upstream.cpc.model import CPCModel

    args = get_default_cpc_config()
    cfg = {**vars(args), "hiddenEncoder": 16, "hiddenGar": 16}
    loadArgs(args, argparse.Namespace(**cfg))
    torch.save({"config": cfg, "weights": CPCModel(getEncoder(args), getAR(args)).state_dict()}, path)
    return "modified_cpc", "cpc_local"


def _hubert(path):
    from s3prl.upstream.hubert.hubert_model import HubertConfig, HubertModel, HubertPretrainingConfig

    cfg = dict(label_rate=50.0, extractor_mode="layer_norm", layer_norm_first=True, **W2V2_TINY)
    task, labels = {"normalize": True}, [list(range(10))]
    model = HubertModel(HubertConfig(**cfg), HubertPretrainingConfig(**task), labels)
    torch.save({"task_cfg": task, "model_cfg": cfg, "model_weight": model.state_dict(),
                "dictionaries_symbols": labels}, path)
    return "hubert_large_ll60k", "hubert_local"


def _wavlm(path):
    from s3prl.upstream.wavlm.WavLM import WavLM, WavLMConfig

    cfg = dict(extractor_mode="layer_norm", layer_norm_first=True, normalize=True, relative_position_embedding=True,
               num_buckets=32, max_distance=64, gru_rel_pos=True, **W2V2_TINY)
    torch.save({"cfg": cfg, "model": WavLM(WavLMConfig(cfg)).state_dict()}, path)
    return "wavlm_large", "wavlm_local"


# name -> (checkpoint writer, expected padding kind, expected frame offset R in floor((n - R) / S) + 1)
CASES = {
    "apc": (_apc, "mask", 400),  # Kaldi fbank, 25 ms window, snip_edges: 1 + (n - 400) // 160
    "npc": (_npc, "same-length", 400),
    "tera": (_tera, "same-length", 0),  # centred STFT: 1 + n // 160
    "wav2vec2-layer": (lambda p: _wav2vec2(p, "layer_norm"), "mask", 400),  # receptive field 400, stride 320
    "wav2vec2-group": (lambda p: _wav2vec2(p, "default"), "same-length", 400),
    "wav2vec": (lambda p: _wav2vec(p, vq=False), "same-length", 465),  # receptive field 465, stride 160
    "vq-wav2vec": (lambda p: _wav2vec(p, vq=True), "same-length", 465),
    "cpc": (_cpc, "same-length", 159),
    # Layer-norm front ends like wav2vec2-layer, yet s3prl's HuBERT and WavLM mark a frame as padding
    # only when all its samples are, so frames next to the padding attend to it: they leak.
    "hubert-layer": (_hubert, "same-length", 400),
    "wavlm-layer": (_wavlm, "same-length", 400),
}
MASK_CASES = [k for k, v in CASES.items() if v[1] == "mask"]
SAME_LENGTH_CASES = [k for k, v in CASES.items() if v[1] == "same-length"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def s3prl_model(tmp_path_factory):
    """``s3prl_model(case) -> (ckpt, registered name, local name, encoder)``, built once per module."""
    cache: dict = {}

    def get(case: str):
        if case not in cache:
            torch.manual_seed(0)
            ckpt = tmp_path_factory.mktemp(case) / f"{case}.ckpt"
            import_hub()
            registered, local = CASES[case][0](ckpt)
            cache[case] = (ckpt, registered, local, load_encoder(f"s3prl:{registered}:{ckpt}", "cpu"))
        return cache[case]

    return get


def _reference(local: str, ckpt, waves: list[np.ndarray]) -> list[torch.Tensor]:
    """s3prl's own hidden_states, each clip alone, from an upstream s3prl's hub builds itself."""
    upstream = getattr(import_hub(), local)(ckpt=str(ckpt)).eval()
    with torch.inference_mode():
        return [torch.stack(list(upstream([torch.from_numpy(w)])["hidden_states"]), dim=2)[0] for w in waves]


# ---------------------------------------------------------------------------------------------
# extraction through `emostore extract` equals s3prl


@pytest.mark.slow
@pytest.mark.parametrize("case", ["apc", "wav2vec2-layer"])
def test_extracted_store_equals_s3prl_hidden_states(s3prl_model, case, tmp_path, shortest_clips):
    """`emostore extract --encoder s3prl:NAME:CKPT` on real EmoDB clips stores, per clip and layer,
    exactly s3prl's hidden_states for that clip alone (float32 frames, atol=rtol=1e-4), in s3prl's
    layer order; the store records the backend, the measured padding and the checkpoint's sha256."""
    ckpt, registered, local, enc = s3prl_model(case)
    clips = shortest_clips[:5]
    manifest = write_manifest(tmp_path / "m.jsonl", [{"id": c.stem, "audio": str(c)} for c in clips])
    out = tmp_path / "s.zarr"
    result = CliRunner().invoke(main, ["extract", str(manifest), "--out", str(out), "--encoder",
                                       f"s3prl:{registered}:{ckpt}", "--frames-dtype", "float32", "--max-batch", "3"])
    assert result.exit_code == 0, result.output
    fs = emostore.store.open(out)
    assert fs.attrs["encoder"]["backend"] == "s3prl" and fs.attrs["encoder"]["name"] == f"s3prl:{registered}"
    assert fs.attrs["padding"] == CASES[case][1]
    assert fs.attrs["encoder"]["weights_sha256"] == enc.describe()["weights_sha256"]
    assert fs.num_layers == enc.num_layers and fs.dim == enc.dim
    policy = audio.AudioPolicy(sample_rate=16000, normalise="none")
    waves = [audio.load(str(c), policy) for c in clips]
    for i, (w, ref) in enumerate(zip(waves, _reference(local, ckpt, waves))):
        assert ref.shape[0] == enc.num_frames(len(w)) == fs.num_frames[i]
        _close(torch.from_numpy(fs.frames(i)), ref, f"{case} clip {i}")


@pytest.mark.slow
def test_store_keeps_model_frames_not_s3prl_wrapper_repeats(s3prl_model):
    """s3prl's S3PRLUpstream pads a clip's layers to ceil(samples / 160) frames by repeating the
    last one; emostore keeps the frames the model yields (1 + (n - 400) // 160 for APC): equal to
    the wrapper's first frames, and the wrapper's extra frames are copies of the last stored one."""
    from s3prl.nn import S3PRLUpstream

    ckpt, _, local, enc = s3prl_model("apc")
    wrapper = S3PRLUpstream(local, path_or_url=str(ckpt)).eval()
    for i, w in enumerate(_waves()):
        with torch.inference_mode():
            hs, lens = wrapper(torch.from_numpy(w)[None], torch.tensor([len(w)]))
        theirs = torch.stack([h[0, : int(lens[0][0])] for h in hs], dim=1)
        ours = enc.encode([w])[0]
        n_ours = ours.shape[0]
        assert theirs.shape[0] == -(-len(w) // 160) > n_ours == 1 + (len(w) - 400) // 160
        _close(theirs[:n_ours], ours, f"wrapper clip {i}")
        assert torch.equal(theirs[n_ours:], theirs[n_ours - 1 : n_ours].expand(theirs.shape[0] - n_ours, -1, -1))


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_frame_count_is_the_models_own(s3prl_model, case):
    """num_frames follows floor((n - R) / S) + 1 with the R each front end implies (Kaldi fbank
    and wav2vec 2.0's convs: 400, wav2vec's convs: 465, TERA's centred STFT: 0) and equals what the upstream yields for
    clips of lengths that are not multiples of the stride, including one just below a frame."""
    ckpt, _, local, enc = s3prl_model(case)
    assert enc.describe()["config"]["frame_offset"] == CASES[case][2]
    lengths = (4001, 8000 + enc.stride - 1, 17777)
    waves = [_wave(n, 5) for n in lengths]
    for n, ref in zip(lengths, _reference(local, ckpt, waves)):
        assert ref.shape[0] == enc.num_frames(n) == (n - CASES[case][2]) // enc.stride + 1


# ---------------------------------------------------------------------------------------------
# batching stays exact


@pytest.mark.slow
@pytest.mark.parametrize("case", MASK_CASES)
def test_s3prl_mask_batch_equals_single(s3prl_model, case):
    """A mixed-length batch (both orders) gives, frame for frame, each clip's frames alone."""
    _, _, _, enc = s3prl_model(case)
    assert enc.padding == "mask"
    waves = _waves()
    singles = [enc.encode([w])[0] for w in waves]
    for order in (waves, waves[::-1]):
        expected = singles if order is waves else singles[::-1]
        for k, (b, s) in enumerate(zip(enc.encode(order), expected)):
            assert b.shape == s.shape == (enc.num_frames(len(order[k])), enc.num_layers, enc.dim)
            _close(b, s, f"{case} batched clip {k}")


@pytest.mark.slow
@pytest.mark.parametrize("case", SAME_LENGTH_CASES)
def test_s3prl_same_length_batch_equals_single_and_padding_leaks(s3prl_model, case):
    """Why these are same-length: s3prl's own padded batch moves the short clip's valid frames by
    more than 1e-2 (measured). Equal-length clips batched equal each alone; a mixed batch is
    refused by the encoder, and the runner's grouping gives clip-by-clip results again."""
    _, _, _, enc = s3prl_model(case)
    assert enc.padding == "same-length"
    short, long = _waves()[0], _waves()[2]
    alone = enc.encode([short])[0]
    with torch.inference_mode():
        raw = enc.upstream([torch.from_numpy(short), torch.from_numpy(long)])["hidden_states"]
    padded = torch.stack(list(raw), dim=2)[0, : alone.shape[0]]
    assert (padded - alone).abs().max().item() > LEAK

    same = [_wave(LENGTHS[1], seed) for seed in (10, 11, 12)]
    for k, (b, s) in enumerate(zip(enc.encode(same), [enc.encode([w])[0] for w in same])):
        _close(b, s, f"{case} equal-length clip {k}")
    with pytest.raises(EncoderError, match="one length"):
        enc.encode([short, long])
    rows = {0: short, 1: same[0], 2: long, 3: same[1]}
    for r, got in encode_rows(enc, rows):
        _close(got, enc.encode([rows[r]])[0], f"{case} runner row {r}")


@pytest.mark.slow
def test_hf_wav2vec2_custom_equals_hf_backend(tmp_path):
    """s3prl's transformers wav2vec 2.0 upstream (a local directory) gives the hf: backend's
    frames for the same clips, batched with a mask (layer-norm front end), atol=rtol=1e-4."""
    import transformers

    from test_encoders_padding import COMMON

    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(**COMMON, feat_extract_norm="layer", do_stable_layer_norm=True)
    transformers.Wav2Vec2Model(config).save_pretrained(tmp_path)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=True).save_pretrained(tmp_path)
    ours, hf = load_encoder(f"s3prl:hf_wav2vec2_custom:{tmp_path}", "cpu"), load_encoder(f"hf:{tmp_path}", "cpu")
    assert ours.padding == "mask" and (ours.num_layers, ours.dim) == (hf.num_layers, hf.dim)
    waves = _waves()
    for k, (a, b) in enumerate(zip(ours.encode(waves), hf.encode(waves))):
        assert a.shape == b.shape
        _close(a, b, f"clip {k}")


# ---------------------------------------------------------------------------------------------
# errors and the torchaudio compatibility layer


def test_s3prl_spec_errors_name_the_problem(tmp_path):
    """No name, an unknown name (with a suggestion), a registered name without a checkpoint (it
    would download), one that needs two files (VGGish), a missing checkpoint, a *_local name without one, a file s3prl cannot read
    and a transformers folder without preprocessor_config.json each raise one EncoderError naming
    it; nothing is fetched."""
    with pytest.raises(EncoderError, match="needs an upstream name"):
        load_encoder("s3prl", "cpu")
    with pytest.raises(EncoderError, match="unknown s3prl upstream 'apc_96hr'.*apc_960hr"):
        load_encoder("s3prl:apc_96hr:x.ckpt", "cpu")
    with pytest.raises(EncoderError, match=r"'apc_960hr' downloads its checkpoint.*s3prl:apc_960hr:PATH"):
        load_encoder("s3prl:apc_960hr", "cpu")
    torch.save({}, tmp_path / "vggish.pth")  # loads; the second file s3prl asks for is refused
    with pytest.raises(EncoderError, match=r"'vggish' needs several files \(https://.*vggish-10086976\.pth, https://"):
        load_encoder(f"s3prl:vggish:{tmp_path / 'vggish.pth'}", "cpu")
    with pytest.raises(EncoderError, match="checkpoint .*nope.ckpt does not exist"):
        load_encoder(f"s3prl:apc_960hr:{tmp_path / 'nope.ckpt'}", "cpu")
    with pytest.raises(EncoderError, match="'apc_local' needs a checkpoint"):
        load_encoder("s3prl:apc_local", "cpu")
    (tmp_path / "not-apc.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderError, match=r"s3prl:apc_960hr could not be built from .*not-apc\.ckpt"):
        load_encoder(f"s3prl:apc_960hr:{tmp_path / 'not-apc.ckpt'}", "cpu")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "wav2vec2"}))
    with pytest.raises(EncoderError, match="no preprocessor_config.json"):
        load_encoder(f"s3prl:hf_wav2vec2_custom:{tmp_path}", "cpu")


def test_torchaudio_compat_replaces_nothing_that_exists(monkeypatch):
    """The stand-ins are installed only where torchaudio lacks the names: an existing
    set_audio_backend and sox_effects module are left as they are."""
    import torchaudio

    def mine(backend):
        return backend

    real = types.ModuleType("torchaudio.sox_effects")
    monkeypatch.setattr(torchaudio, "set_audio_backend", mine, raising=False)
    monkeypatch.setitem(sys.modules, "torchaudio.sox_effects", real)
    _compat_torchaudio()
    assert torchaudio.set_audio_backend is mine and sys.modules["torchaudio.sox_effects"] is real

"""Padding never changes a feature: batched encoding equals clip-by-clip encoding, for every backend.

Every ``hf`` model here is a tiny, randomly initialised transformers model (hidden size 32,
2 layers, seeded) saved to a temporary folder and loaded through ``load_encoder("hf:DIR")``,
exactly as a real checkpoint would be. The wav2vec2-family models keep the real 7-layer
convolutional front end (kernels 10,3,3,3,3,2,2 and strides 5,2,2,2,2,2,2, product 320) with
only 32 channels, so frame counts and the 50 frames/s rate are those of the real models.

Tolerance: float32 on CPU, ``atol = rtol = 1e-4`` (``torch.testing.assert_close``). Batched and
single runs differ only by matmul reduction order; the observed differences are about 1e-6.
A leak of padding into valid frames shows up as differences of order 0.1-1 (see the negative
controls), so the tolerance separates the two by several orders of magnitude.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emostore.extract.encoders import EncoderError, load_encoder
from emostore.extract.blocks import encode_rows
from emostore.extract.planning import ExtractOptions, pack_batches

SR = 16000
ATOL = RTOL = 1e-4
# Padding that leaks into valid frames must move them by far more than the tolerance.
LEAK = 1e-2
# Deliberately not multiples of 320 samples (one frame) nor of each other: ~0.7 s, 1.3 s, 2.1 s.
LENGTHS = (11213, 20807, 33599)

CONV = dict(
    conv_dim=(32,) * 7,
    conv_kernel=(10, 3, 3, 3, 3, 2, 2),
    conv_stride=(5, 2, 2, 2, 2, 2, 2),
)
COMMON = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    **CONV,
)
# name -> (transformers config class, model class, config overrides, expected padding kind)
HF_CASES = {
    # wav2vec2-large-lv60 / XLS-R / robust style: layer-norm front end, attention mask.
    "wav2vec2-layer": ("Wav2Vec2Config", "Wav2Vec2Model",
                       dict(feat_extract_norm="layer", do_stable_layer_norm=True), "mask"),
    # wav2vec2-base style: group norm over time in the first conv, no usable mask.
    "wav2vec2-group": ("Wav2Vec2Config", "Wav2Vec2Model", dict(feat_extract_norm="group"), "same-length"),
    "hubert-group": ("HubertConfig", "HubertModel", dict(feat_extract_norm="group"), "same-length"),
    "hubert-layer": ("HubertConfig", "HubertModel",
                     dict(feat_extract_norm="layer", do_stable_layer_norm=True), "mask"),
    "wavlm-group": ("WavLMConfig", "WavLMModel", dict(feat_extract_norm="group"), "same-length"),
    "wavlm-layer": ("WavLMConfig", "WavLMModel",
                    dict(feat_extract_norm="layer", do_stable_layer_norm=True), "mask"),
    # data2vec-audio: layer-norm front end, but a stack of positional convolutions (here for
    # data2vec, num_conv_pos_embeddings is the number of those conv layers, the kernel is
    # conv_pos_kernel_size) would leak padding into valid frames; emostore re-zeroes padded
    # frames between those layers, which makes it exact with a mask again.
    "data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioModel",
                       dict(num_conv_pos_embeddings=3, conv_pos_kernel_size=5), "mask"),
}
MASK_CASES = [k for k, v in HF_CASES.items() if v[3] == "mask"]
SAME_LENGTH_CASES = [k for k, v in HF_CASES.items() if v[3] == "same-length"]


def _wave(n: int, seed: int) -> np.ndarray:
    """Seeded noise plus a sine, peak well inside [-1, 1], float32 like audio.load returns."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    w = 0.1 * rng.standard_normal(n) + 0.3 * np.sin(2 * np.pi * (150 + 40 * seed) * t)
    return w.astype(np.float32)


def _waves(lengths=LENGTHS, seed: int = 0) -> list[np.ndarray]:
    return [_wave(n, seed + i) for i, n in enumerate(lengths)]


def _close(actual: torch.Tensor, expected: torch.Tensor, what: str = ""):
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=RTOL, msg=lambda m: f"{what}: {m}")


def _check_shapes(enc, waves, outs):
    assert len(outs) == len(waves)
    for w, h in zip(waves, outs):
        assert h.dtype == torch.float32
        assert tuple(h.shape) == (enc.num_frames(len(w)), enc.num_layers, enc.dim)


# ---------------------------------------------------------------------------------------------
# fixtures: each tiny model is built and saved once per module


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """These models are tiny: intra-op threads only add sync overhead, which on a busy 2-core
    machine made single convolutions ~50x slower. Restored afterwards for other modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _build_hf(name: str, folder):
    import transformers

    cfg_cls, model_cls, overrides, _ = HF_CASES[name]
    torch.manual_seed(0)
    config = getattr(transformers, cfg_cls)(**{**COMMON, **overrides})
    model = getattr(transformers, model_cls)(config).eval()
    model.save_pretrained(folder)
    if name == "wav2vec2-layer":  # as shipped with wav2vec2-large-lv60: per-utterance normalisation
        transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
    """``hf_model(name) -> (folder, encoder)``, built on first use and cached for the module."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            folder = _build_hf(name, tmp_path_factory.mktemp(name))
            cache[name] = (folder, load_encoder(f"hf:{folder}", "cpu"))
        return cache[name]

    return get


@pytest.fixture(scope="module")
def whisper_enc(tmp_path_factory):
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    folder = tmp_path_factory.mktemp("whisper-tiny-random")
    torch.manual_seed(0)
    config = WhisperConfig(
        d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64,
        num_mel_bins=80, max_source_positions=1500, max_target_positions=32,
    )
    WhisperModel(config).eval().save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return load_encoder(f"hf:{folder}", "cpu")


# ---------------------------------------------------------------------------------------------
# hf, attention-mask encoders


@pytest.mark.slow
@pytest.mark.parametrize("name", MASK_CASES)
def test_hf_mask_batch_equals_single(hf_model, name):
    """A zero-padded, masked batch of clips of different lengths gives, frame for frame, what each
    clip gives alone (and what the raw model gives on the unpadded clip), within atol=rtol=1e-4."""
    folder, enc = hf_model(name)
    assert enc.padding == "mask"
    assert enc.frame_rate == 50.0
    assert (enc.num_layers, enc.dim) == (3, 32)
    waves = _waves()
    singles = [enc.encode([w])[0] for w in waves]
    _check_shapes(enc, waves, singles)
    # num_frames agrees with what the model really yields for an unpadded clip.
    with torch.inference_mode():
        for w, s in zip(waves, singles):
            raw = enc.model(torch.from_numpy(w)[None], output_hidden_states=True).hidden_states
            assert raw[0].shape[1] == enc.num_frames(len(w))
            _close(s, torch.stack(raw, dim=2)[0], f"{name} single vs raw model")
    # Mixed lengths in one batch, in two orders (longest first / last).
    for order in (waves, waves[::-1]):
        batched = enc.encode(order)
        _check_shapes(enc, order, batched)
        expected = singles if order is waves else singles[::-1]
        for k, (b, s) in enumerate(zip(batched, expected)):
            _close(b, s, f"{name} batched clip {k}")


@pytest.mark.slow
def test_hf_mask_default_normalise_from_preprocessor(hf_model):
    """preprocessor_config.json with do_normalize=true makes 'utterance' the default; none without."""
    assert hf_model("wav2vec2-layer")[1].default_normalise() == "utterance"
    assert hf_model("hubert-layer")[1].default_normalise() == "none"


# ---------------------------------------------------------------------------------------------
# hf, same-length encoders


@pytest.mark.slow
@pytest.mark.parametrize("name", SAME_LENGTH_CASES)
def test_hf_same_length_batch_equals_single(hf_model, name):
    """Equal-length clips batched give what each gives alone (atol=rtol=1e-4); a mixed-length
    batch is refused by the encoder; and the runner's grouping (encode_rows) turns a mixed-length
    batch into equal-length groups whose results again equal clip-by-clip encoding."""
    _, enc = hf_model(name)
    assert enc.padding == "same-length"
    assert enc.frame_rate == 50.0
    n = LENGTHS[1]
    same = [_wave(n, seed) for seed in (10, 11, 12)]
    singles = [enc.encode([w])[0] for w in same]
    batched = enc.encode(same)
    _check_shapes(enc, same, batched)
    for k, (b, s) in enumerate(zip(batched, singles)):
        _close(b, s, f"{name} equal-length batched clip {k}")

    mixed = _waves()
    with pytest.raises(EncoderError, match="one length"):
        enc.encode(mixed)

    # The runner's path: rows of several lengths, some repeated, in one decoded batch.
    waves = {0: mixed[0], 1: same[0], 2: mixed[2], 3: same[1], 4: mixed[1][:n - 1], 5: same[2]}
    got = dict(encode_rows(enc, waves))
    assert sorted(got) == sorted(waves)
    for r, w in waves.items():
        assert not isinstance(got[r], str), got[r]
        assert tuple(got[r].shape) == (enc.num_frames(len(w)), enc.num_layers, enc.dim)
        _close(got[r], enc.encode([w])[0], f"{name} runner row {r}")


@pytest.mark.slow
@pytest.mark.parametrize("name", SAME_LENGTH_CASES)
def test_pack_never_mixes_lengths_for_same_length(hf_model, name):
    """pack_batches puts only clips of identical sample count in one batch for a same-length encoder
    (and still batches equal ones together); for a mask encoder it does mix them."""
    _, enc = hf_model(name)
    samples = {0: 20000, 1: 16000, 2: 20000, 3: 16000, 4: 33000, 5: 16001, 6: 20000, 7: 15999, 8: 16000}
    opts = ExtractOptions(batch_seconds=120.0, max_batch=32)
    batches = pack_batches(list(samples), samples, enc, opts)
    assert sorted(r for b in batches for r in b.rows) == sorted(samples)
    for b in batches:
        assert len({samples[r] for r in b.rows}) == 1, [samples[r] for r in b.rows]
    by_len = {}
    for r, n in samples.items():
        by_len.setdefault(n, set()).add(r)
    assert sorted(map(sorted, by_len.values())) == sorted(sorted(b.rows) for b in batches)

    _, masked = hf_model("wav2vec2-layer")
    mixed = pack_batches(list(samples), samples, masked, opts)
    assert len(mixed) == 1 and len({samples[r] for r in mixed[0].rows}) > 1


@pytest.mark.slow
def test_negative_control_group_norm_padding_changes_frames(hf_model):
    """Why same-length exists: a zero-padded group-norm wav2vec2 batch run through the raw model
    (no runner grouping) moves the short clip's valid frames by far more than the tolerance."""
    _, enc = hf_model("wav2vec2-group")
    short, long = _waves()[0], _waves()[2]
    alone = enc.encode([short])[0]
    padded = torch.zeros(2, len(long))
    padded[0, : len(short)] = torch.from_numpy(short)
    padded[1] = torch.from_numpy(long)
    with torch.inference_mode():
        out = enc.model(padded, output_hidden_states=True)
    hidden = torch.stack(out.hidden_states, dim=2)[0, : enc.num_frames(len(short))]
    assert hidden.shape == alone.shape
    diff = (hidden - alone).abs().max().item()
    assert diff > LEAK, f"padding changed valid frames by only {diff:.2e}"
    with pytest.raises(AssertionError):
        _close(hidden, alone)


@pytest.mark.slow
def test_negative_control_data2vec_mask_leaks(hf_model):
    """Why data2vec-audio needs emostore's re-zeroing hooks: transformers zeroes padded frames only
    before the first of its stacked positional convolutions, so the raw model (hooks inactive
    outside ``encode``) moves a masked, padded short clip's valid frames by far more than the
    tolerance, while ``encode`` of the same batch stays within it."""
    _, enc = hf_model("data2vec-audio")
    short, long = _waves()[0], _waves()[2]
    alone = enc.encode([short])[0]
    padded = torch.zeros(2, len(long))
    mask = torch.zeros(2, len(long), dtype=torch.long)
    padded[0, : len(short)], mask[0, : len(short)] = torch.from_numpy(short), 1
    padded[1], mask[1] = torch.from_numpy(long), 1
    with torch.inference_mode():
        out = enc.model(padded, attention_mask=mask, output_hidden_states=True)
    hidden = torch.stack(out.hidden_states, dim=2)[0, : enc.num_frames(len(short))]
    diff = (hidden - alone).abs().max().item()
    assert diff > LEAK, f"masked padding changed data2vec-audio frames by only {diff:.2e}"
    _close(enc.encode([short, long])[0], alone)


# ---------------------------------------------------------------------------------------------
# hf Whisper (window padding)


@pytest.mark.slow
def test_whisper_batch_equals_single(whisper_enc):
    """Each clip is its own 30 s window padded as in training, so batching is exact
    (atol=rtol=1e-4); frames are ceil(samples / 320), layers = encoder_layers + 1."""
    enc = whisper_enc
    assert enc.padding == "window" and enc.frame_rate == 50.0
    assert (enc.num_layers, enc.dim) == (3, 32)
    waves = _waves()
    for w in waves:
        assert enc.num_frames(len(w)) == math.ceil(len(w) / 320)
    singles = [enc.encode([w])[0] for w in waves]
    _check_shapes(enc, waves, singles)
    batched = enc.encode(waves)
    _check_shapes(enc, waves, batched)
    for k, (b, s) in enumerate(zip(batched, singles)):
        _close(b, s, f"whisper batched clip {k}")


@pytest.mark.slow
def test_whisper_clip_longer_than_30s(whisper_enc):
    """A 31.5 s clip is two windows: ceil(samples/320) = 1575 frames, the first 1500 equal the
    first 30 s encoded alone, the last 75 equal the remaining 1.5 s encoded alone; and a batch
    mixing it with short clips puts every clip's frames back in order (atol=rtol=1e-4)."""
    enc = whisper_enc
    n = int(31.5 * SR)
    long = _wave(n, 7)
    assert enc.num_frames(n) == math.ceil(n / 320) == 1575
    out = enc.encode([long])[0]
    assert tuple(out.shape) == (1575, enc.num_layers, enc.dim)
    head = enc.encode([long[: 30 * SR]])[0]
    tail = enc.encode([long[30 * SR :]])[0]
    assert head.shape[0] == 1500 and tail.shape[0] == 75
    _close(out[:1500], head, "first 30 s window")
    _close(out[1500:], tail, "remaining 1.5 s window")

    short = _waves()[:2]
    mixed = enc.encode([short[0], long, short[1]])
    _check_shapes(enc, [short[0], long, short[1]], mixed)
    _close(mixed[1], out, "long clip inside a mixed batch")
    _close(mixed[0], enc.encode([short[0]])[0], "short clip before the long one")
    _close(mixed[2], enc.encode([short[1]])[0], "short clip after the long one")


# ---------------------------------------------------------------------------------------------
# fbank (per-utterance)


def test_fbank_batch_equals_single_and_kaldi():
    """fbank is computed clip by clip: batched output is bit-identical to single; and it equals
    torchaudio's Kaldi fbank on the int16 samples (80 mel bins, 25/10 ms povey, no dither, no
    energy, snip_edges) exactly, since int16 / 32768 * 32768 is exact in float32."""
    import torchaudio.compliance.kaldi as kaldi

    enc = load_encoder("fbank", "cpu")
    assert enc.padding == "per-utterance" and (enc.num_layers, enc.dim) == (1, 80)
    rng = np.random.default_rng(3)
    ints = [rng.integers(-12000, 12000, n, dtype=np.int16) for n in LENGTHS]
    waves = [x.astype(np.float32) / 32768.0 for x in ints]
    singles = [enc.encode([w])[0] for w in waves]
    batched = enc.encode(waves)
    _check_shapes(enc, waves, batched)
    for b, s in zip(batched, singles):
        assert torch.equal(b, s)
    for x, b in zip(ints, batched):
        ref = kaldi.fbank(torch.from_numpy(x).float()[None], sample_frequency=16000, num_mel_bins=80,
                          frame_length=25.0, frame_shift=10.0, dither=0.0, window_type="povey",
                          use_energy=False, snip_edges=True)
        assert ref.shape[0] == 1 + (len(x) - 400) // 160
        assert torch.equal(b[:, 0], ref)


# ---------------------------------------------------------------------------------------------
# load_encoder errors


def test_load_encoder_errors(tmp_path):
    """Unknown backend, hf without a path, a folder without config.json, and a transformers
    folder that is not an audio encoder each raise EncoderError naming the problem."""
    with pytest.raises(EncoderError, match=r"unknown encoder 'nope'.*fbank.*hf"):
        load_encoder("nope", "cpu")
    for spec in ("hf", "hf:"):
        with pytest.raises(EncoderError, match="needs a local model directory"):
            load_encoder(spec, "cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EncoderError, match=r"empty: no config\.json"):
        load_encoder(f"hf:{empty}", "cpu")
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64) \
        .save_pretrained(tmp_path / "bert")
    with pytest.raises(EncoderError, match="'bert' is not a supported audio encoder"):
        load_encoder(f"hf:{tmp_path / 'bert'}", "cpu")
    with pytest.raises(EncoderError, match="takes no path"):
        load_encoder("fbank:/somewhere", "cpu")

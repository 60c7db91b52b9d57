"""The CTranslate2 reader and the embedded default encoder (Whisper tiny.en, real weights)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from emostore.extract import ct2
from emostore.extract.encoders import load_encoder
from emostore.extract.encoders.whisper import default_ct2_path

pytestmark = pytest.mark.slow  # real models, clusters or killed subprocesses: see README's development notes


def _write_string(fh, s: str):
    fh.write(struct.pack("<H", len(s) + 1) + s.encode() + b"\0")


def _write_model_bin(path, variables: dict[str, np.ndarray], aliases: dict[str, str], version=6):
    """Writer following CTranslate2's ModelSpec._serialize, to round-trip the reader."""
    type_ids = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4}
    with open(path, "wb") as fh:
        fh.write(struct.pack("<I", version))
        _write_string(fh, "WhisperSpec")
        fh.write(struct.pack("<I", 3))
        fh.write(struct.pack("<I", len(variables)))
        for name, value in sorted(variables.items()):
            _write_string(fh, name)
            fh.write(struct.pack("<B", value.ndim))
            for d in value.shape:
                fh.write(struct.pack("<I", d))
            fh.write(struct.pack("<B", type_ids[str(value.dtype)]))
            fh.write(struct.pack("<I", value.nbytes))
            fh.write(value.tobytes())
        fh.write(struct.pack("<I", len(aliases)))
        for alias, target in aliases.items():
            _write_string(fh, alias)
            _write_string(fh, target)


def test_model_bin_reader_round_trips_every_dtype_and_alias(tmp_path):
    rng = np.random.default_rng(0)
    variables = {
        "a/weight": rng.standard_normal((3, 4)).astype(np.float16),
        "b/bias": rng.standard_normal(5).astype(np.float32),
        "c/scale": rng.integers(-100, 100, (2, 2)).astype(np.int8),
        "d/num_heads": np.array(6, dtype=np.int16),
        "e/steps": np.array([1, 2, 3], dtype=np.int32),
    }
    _write_model_bin(tmp_path / "model.bin", variables, {"z/alias": "a/weight"})
    name, got = ct2.read_model_bin(tmp_path / "model.bin")
    assert name == "WhisperSpec"
    for key, value in variables.items():
        assert got[key].dtype == value.dtype and np.array_equal(got[key], value)
    assert np.array_equal(got["z/alias"], variables["a/weight"])


def test_model_bin_reader_names_the_file_on_bad_version_and_truncation(tmp_path):
    _write_model_bin(tmp_path / "model.bin", {"a": np.zeros(2, np.float32)}, {}, version=2)
    with pytest.raises(ct2.CT2FormatError, match="binary version 2"):
        ct2.read_model_bin(tmp_path / "model.bin")
    _write_model_bin(tmp_path / "model.bin", {"a": np.zeros(64, np.float32)}, {})
    data = (tmp_path / "model.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-100])
    with pytest.raises(ct2.CT2FormatError, match="cut.bin: truncated"):
        ct2.read_model_bin(tmp_path / "cut.bin")


@pytest.fixture(scope="module")
def tiny_en():
    return ct2.load_whisper(default_ct2_path())


def test_default_model_is_whisper_tiny_en_shape(tiny_en):
    cfg = tiny_en.config
    assert (cfg.d_model, cfg.encoder_layers, cfg.decoder_layers, cfg.encoder_attention_heads) == (384, 4, 4, 6)
    assert cfg.vocab_size == 51864  # English-only vocabulary
    enc = load_encoder("ct2-whisper")
    assert (enc.num_layers, enc.dim, enc.frame_rate, enc.padding) == (5, 384, 50.0, "window")


def _greedy_transcribe(model, wave16k: np.ndarray, max_tokens: int = 40) -> str:
    import tokenizers
    from transformers import WhisperFeatureExtractor

    tok = tokenizers.Tokenizer.from_file(str(default_ct2_path() / "tokenizer.json"))
    sot, notimestamps, eot = (tok.token_to_id(t) for t in ("<|startoftranscript|>", "<|notimestamps|>", "<|endoftext|>"))
    mel = WhisperFeatureExtractor(feature_size=80)(wave16k, sampling_rate=16000, return_tensors="pt").input_features
    ids = [sot, notimestamps]
    with torch.inference_mode():
        enc = model.model.encoder(mel).last_hidden_state
        for _ in range(max_tokens):
            logits = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([ids])).logits
            nxt = int(logits[0, -1].argmax())
            if nxt == eot:
                break
            ids.append(nxt)
    return tok.decode(ids, skip_special_tokens=True)


def _words(text: str) -> list[str]:
    return ["".join(c for c in w.lower() if c.isalpha()) for w in text.split()]


def test_converted_weights_transcribe_a_spoken_sentence(tiny_en, spoken_sentence):
    """The whole model (encoder + decoder) must work for the words to come back: a wrong q/k/v
    split, a transposed weight or a missing layer norm gives gibberish."""
    path, text = spoken_sentence
    wave, rate = sf.read(path, dtype="float32")
    hyp = _words(_greedy_transcribe(tiny_en, soxr.resample(wave, rate, 16000)))
    ref = _words(text)
    hits = sum(w in hyp for w in ref)
    assert hits >= len(ref) - 1, f"transcript {hyp} has only {hits} of the {len(ref)} words of {ref}"


def test_swapping_query_and_key_breaks_transcription(spoken_sentence):
    """Negative control: the transcription test detects a wrong split of the fused projection."""
    model = ct2.load_whisper(default_ct2_path())
    with torch.no_grad():
        for layer in model.model.encoder.layers:
            q, k = layer.self_attn.q_proj.weight.clone(), layer.self_attn.k_proj.weight.clone()
            layer.self_attn.q_proj.weight.copy_(k)
            layer.self_attn.k_proj.weight.copy_(q)
    path, text = spoken_sentence
    wave, rate = sf.read(path, dtype="float32")
    hyp = _words(_greedy_transcribe(model, soxr.resample(wave, rate, 16000)))
    ref = _words(text)
    assert sum(w in hyp for w in ref) < len(ref) - 1

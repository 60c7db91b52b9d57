"""Read CTranslate2 Whisper model directories (the faster-whisper format) without ctranslate2.

``model.bin`` (binary version 6, as written by CTranslate2's ``ModelSpec._serialize``):
a uint32 version, the spec name and a uint32 revision, a uint32 variable count, then per
variable its name, rank (uint8), dims (uint32 each), dtype id (uint8), byte count (uint32) and
the raw little-endian bytes; then a uint32 alias count and (alias, target) name pairs.
Strings are a uint16 length (counting a trailing NUL) followed by UTF-8 and the NUL.

The weights are mapped onto the transformers Whisper modules so the rest of emostore runs the
ordinary ``WhisperForConditionalGeneration``. CTranslate2 fuses attention projections: the
self-attention ``linear_0`` holds q, k, v stacked (the key has no bias; its bias rows are zero)
and the cross-attention ``linear_1`` holds k, v.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from emostore.errors import EmostoreError

# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
_CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
SUPPORTED_BINARY_VERSIONS = (5, 6)


class CT2FormatError(EmostoreError, ValueError):
    """model.bin is not a CTranslate2 Whisper model this reader understands."""


class _Cursor:
    def __init__(self, buf: memoryview, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise CT2FormatError(f"{self.path}: truncated at byte {self.pos}")
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += size
        return value

    def string(self) -> str:
        n = self.take("<H")
        raw = bytes(self.buf[self.pos : self.pos + n - 1])
        self.pos += n
        return raw.decode("utf-8")

    def raw(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise CT2FormatError(f"{self.path}: truncated at byte {self.pos}")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out


def _decode_array(raw: memoryview, dtype_name: str, shape: list[int]) -> np.ndarray:
    if dtype_name == "bfloat16":
        halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return halves.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=np.dtype(dtype_name).newbyteorder("<")).reshape(shape).copy()


def read_model_bin(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """Return (spec name, {variable name: array}) with aliases resolved."""
    path = Path(path)
    data = memoryview(path.read_bytes())
    cur = _Cursor(data, path)
    version = cur.take("<I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise CT2FormatError(
            f"{path}: binary version {version} is not supported "
            f"(supported: {', '.join(map(str, SUPPORTED_BINARY_VERSIONS))})"
        )
    spec_name = cur.string()
    cur.take("<I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(cur.take("<I")):
        name = cur.string()
        shape = [cur.take("<I") for _ in range(cur.take("<B"))]
        type_id = cur.take("<B")
        if type_id >= len(_CT2_DTYPES):
            raise CT2FormatError(f"{path}: variable {name!r} has unknown dtype id {type_id}")
        nbytes = cur.take("<I")
        variables[name] = _decode_array(cur.raw(nbytes), _CT2_DTYPES[type_id], shape)
    for _ in range(cur.take("<I")):
        alias, target = cur.string(), cur.string()
        variables[alias] = variables[target]
    return spec_name, variables


def _count_layers(variables: dict[str, np.ndarray], stack: str) -> int:
    n = 0
    while f"{stack}/layer_{n}/ffn/linear_0/weight" in variables:
        n += 1
    return n


def whisper_config_dict(variables: dict[str, np.ndarray]) -> dict:
    """Infer a transformers WhisperConfig from the tensor shapes."""
    vocab, d_model = variables["decoder/embeddings/weight"].shape
    num_mel_bins = variables["encoder/conv1/weight"].shape[1]
    return dict(
        vocab_size=int(vocab),
        num_mel_bins=int(num_mel_bins),
        d_model=int(d_model),
        encoder_layers=_count_layers(variables, "encoder"),
        decoder_layers=_count_layers(variables, "decoder"),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables.get("decoder/num_heads", variables["encoder/num_heads"])),
        encoder_ffn_dim=int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(variables["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(variables["decoder/position_encodings/encodings"].shape[0]),
    )


def _split_rows(array: np.ndarray, parts: int) -> list[np.ndarray]:
    return np.split(array, parts, axis=0)


def _layer_state(variables: dict, src: str, dst: str, cross: bool) -> dict[str, np.ndarray]:
    out = {}

    def linear(ct2: str, hf: str):
        out[f"{dst}.{hf}.weight"] = variables[f"{src}/{ct2}/weight"]
        if f"{src}/{ct2}/bias" in variables:
            out[f"{dst}.{hf}.bias"] = variables[f"{src}/{ct2}/bias"]

    def norm(ct2: str, hf: str):
        out[f"{dst}.{hf}.weight"] = variables[f"{src}/{ct2}/gamma"]
        out[f"{dst}.{hf}.bias"] = variables[f"{src}/{ct2}/beta"]

    qkv_w = _split_rows(variables[f"{src}/self_attention/linear_0/weight"], 3)
    qkv_b = _split_rows(variables[f"{src}/self_attention/linear_0/bias"], 3)
    for name, w, b in zip(("q_proj", "k_proj", "v_proj"), qkv_w, qkv_b):
        out[f"{dst}.self_attn.{name}.weight"] = w
        if name != "k_proj":
            out[f"{dst}.self_attn.{name}.bias"] = b
    linear("self_attention/linear_1", "self_attn.out_proj")
    norm("self_attention/layer_norm", "self_attn_layer_norm")
    if cross:
        linear("attention/linear_0", "encoder_attn.q_proj")
        kv_w = _split_rows(variables[f"{src}/attention/linear_1/weight"], 2)
        kv_b = _split_rows(variables[f"{src}/attention/linear_1/bias"], 2)
        out[f"{dst}.encoder_attn.k_proj.weight"] = kv_w[0]
        out[f"{dst}.encoder_attn.v_proj.weight"] = kv_w[1]
        out[f"{dst}.encoder_attn.v_proj.bias"] = kv_b[1]
        linear("attention/linear_2", "encoder_attn.out_proj")
        norm("attention/layer_norm", "encoder_attn_layer_norm")
    linear("ffn/linear_0", "fc1")
    linear("ffn/linear_1", "fc2")
    norm("ffn/layer_norm", "final_layer_norm")
    return out


def whisper_state_dict(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map CTranslate2 WhisperSpec variables to WhisperForConditionalGeneration parameter names."""
    cfg = whisper_config_dict(variables)
    sd = {
        "model.encoder.conv1.weight": variables["encoder/conv1/weight"],
        "model.encoder.conv1.bias": variables["encoder/conv1/bias"],
        "model.encoder.conv2.weight": variables["encoder/conv2/weight"],
        "model.encoder.conv2.bias": variables["encoder/conv2/bias"],
        "model.encoder.embed_positions.weight": variables["encoder/position_encodings/encodings"],
        "model.encoder.layer_norm.weight": variables["encoder/layer_norm/gamma"],
        "model.encoder.layer_norm.bias": variables["encoder/layer_norm/beta"],
        "model.decoder.embed_tokens.weight": variables["decoder/embeddings/weight"],
        "model.decoder.embed_positions.weight": variables["decoder/position_encodings/encodings"],
        "model.decoder.layer_norm.weight": variables["decoder/layer_norm/gamma"],
        "model.decoder.layer_norm.bias": variables["decoder/layer_norm/beta"],
        "proj_out.weight": variables.get("decoder/projection/weight", variables["decoder/embeddings/weight"]),
    }
    for i in range(cfg["encoder_layers"]):
        sd.update(_layer_state(variables, f"encoder/layer_{i}", f"model.encoder.layers.{i}", cross=False))
    for i in range(cfg["decoder_layers"]):
        sd.update(_layer_state(variables, f"decoder/layer_{i}", f"model.decoder.layers.{i}", cross=True))
    return sd


def load_whisper(model_dir: str | Path, dtype=None):
    """Build a transformers ``WhisperForConditionalGeneration`` from a CTranslate2 directory.

    Weights are upcast to float32 unless ``dtype`` says otherwise (CPU matmuls in float16 are
    slow and less exact). Raises CT2FormatError when a tensor is missing or mis-shaped.
    """
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    model_dir = Path(model_dir)
    spec_name, variables = read_model_bin(model_dir / "model.bin")
    if spec_name != "WhisperSpec":
        raise CT2FormatError(f"{model_dir / 'model.bin'}: spec {spec_name!r} is not WhisperSpec")
    quantized = sorted(k for k in variables if k.endswith("_scale"))
    if quantized:
        raise CT2FormatError(f"{model_dir / 'model.bin'}: quantized weights ({quantized[0]}, ...) are not supported; "
                             "convert with --quantization float16 or float32")
    extra = {}
    cfg_path = model_dir / "config.json"
    if cfg_path.exists():
        ct2_cfg = json.loads(cfg_path.read_text())
        extra["suppress_tokens"] = ct2_cfg.get("suppress_ids")
        extra["begin_suppress_tokens"] = ct2_cfg.get("suppress_ids_begin")
    config = WhisperConfig(**whisper_config_dict(variables), **{k: v for k, v in extra.items() if v})
    with torch.device("meta"):  # no random init: every parameter is assigned below
        model = WhisperForConditionalGeneration(config)
    state = whisper_state_dict(variables)
    dtype = dtype or torch.float32
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype) for k, v in state.items()}
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    # The key projections have no bias in Whisper; every other parameter must be present.
    missing = [k for k in missing if not k.endswith("k_proj.bias")]
    if missing:
        raise CT2FormatError(f"{model_dir}: no CTranslate2 variables for {', '.join(missing[:5])}")
    for key, tensor in tensors.items():
        if key in expected and tuple(expected[key].shape) != tuple(tensor.shape):
            raise CT2FormatError(
                f"{model_dir}: {key} has shape {tuple(tensor.shape)}, expected {tuple(expected[key].shape)}"
            )
    model.load_state_dict(tensors, strict=False, assign=True)
    return model.eval()

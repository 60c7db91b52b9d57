"""MSP-Podcast adapter ("msp-podcast" and "msp-podcast-balanced"): official split + per-worker votes.

Layout (as released, v1.11 and later)::

    Audios/MSP-PODCAST_0001_0008.wav
    Labels/labels_consensus.csv   FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
    Labels/labels_detailed.csv    per-worker annotations (see below)
    Partitions.txt                (older releases: ``Train; MSP-PODCAST_0001_0008.wav``; read only
                                   when labels_consensus.csv has no Split_Set column)

``labels_detailed.csv`` is read in either of two shapes:

* packed (the v1.11/2024 release, as parsed by public build scripts): ``FileName`` then one
  quoted field ``"WORKER00001; Angry; Frustrated,Annoyed; A:3.0; V:2.0; D:4.0;"`` - worker,
  primary emotion, optional comma-separated secondary emotions, the worker's A/V/D;
* columnar: a header with ``FileName``, a worker column (``WorkerID``/``Worker``), a primary
  column (``EmoClass_Major``/``EmoClass``) and optionally ``EmoClass_Second``.

Rows: ``ratings`` = each worker's primary emotion lower-cased (``Other-curious`` -> ``"other"``
with ``"curious"`` kept in ``description``); ``raters`` = worker ids; secondary votes go to
``extra["secondary"]``/``extra["secondary_raters"]`` (typed ``Other-...`` secondary texts to
``description``). ``speaker`` = ``SpkrID`` (None when ``Unknown``), ``session`` = None,
``duration`` from the audio header, ``emotion`` = the consensus ``EmoClass`` code as a word.
``extra["split"]`` is the official partition: Train -> "train", Development/Validation -> "dev",
Test1 (or Test) -> "test"; the extra test sets (Test2, Test3) get ``split`` None and are told
apart by ``extra["split_set"]`` (the raw Split_Set value), so the official 3-way split matches
the one EMO-SUPERB reports on.

"msp-podcast-balanced" performs no balancing itself: it reads a provided balanced list (the
file list of the EMO-SUPERB / all-inclusive-rule balanced set), given as ``balanced_list=PATH``
or found at ``Labels/balanced_list.txt``: one FileName per line (``.wav`` optional; anything
after a comma/semicolon/whitespace is ignored; ``#`` comments allowed), and keeps exactly those
utterances (AdapterError if a listed file is not in the corpus).
"""

from __future__ import annotations

import csv
from pathlib import Path


from emostore.manifests.adapters.base import AdapterError, ClassMap, register_adapter, audio_duration
from emostore.manifests.records import Utterance

CLASS_MAP = ClassMap(
    corpus="msp-podcast",
    version="1",
    classes=("angry", "sad", "happy", "surprise", "fear", "disgust", "contempt", "neutral"),
    mapping={"anger": "angry", "sadness": "sad", "happiness": "happy", "surprised": "surprise"},
    other=frozenset({"other"}),
    source="MSP-Podcast primary emotions (Lotfian & Busso 2019; labels_consensus EmoClass "
    "N/H/S/A/C/U/D/F), the 8-class primary set used by EMO-SUPERB (Wu et al., 2024)",
)

CODES = {
    "N": "neutral", "H": "happy", "S": "sad", "A": "angry", "C": "contempt",
    "U": "surprise", "D": "disgust", "F": "fear", "O": "other", "X": "xxx",
}
SPLITS = {"train": "train", "development": "dev", "validation": "dev", "test1": "test", "test": "test"}


def _norm_name(name: str) -> str:
    name = name.strip()
    return name if name.lower().endswith(".wav") else f"{name}.wav"


def _split_other(label: str) -> tuple[str, str]:
    """``Other-curious`` -> ("other", "curious"); ``Angry`` -> ("angry", "")."""
    label = label.strip()
    if label.lower().startswith("other"):
        return "other", label[5:].lstrip(" :-").strip()
    return label.lower(), ""


def _read_consensus(path: Path) -> dict[str, dict]:
    if not path.is_file():
        raise AdapterError(f"{path}: missing (MSP-Podcast layout: Labels/labels_consensus.csv)")
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"FileName", "EmoClass"}
        if not need <= set(reader.fieldnames or ()):
            raise AdapterError(f"{path}: expected columns {sorted(need)}, got {reader.fieldnames}")
        out = {}
        for i, row in enumerate(reader, 2):
            if row["EmoClass"] not in CODES:
                raise AdapterError(f"{path}:{i}: unknown EmoClass {row['EmoClass']!r}")
            out[_norm_name(row["FileName"])] = row
    return out


def _read_partitions(path: Path) -> dict[str, str]:
    out = {}
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split(";")]
            if len(parts) != 2:
                raise AdapterError(f"{path}:{i}: expected 'Split; FileName', got {line.strip()!r}")
            out[_norm_name(parts[1])] = parts[0]
    return out


def _new_votes() -> dict:
    return {"ratings": [], "raters": [], "secondary": [], "secondary_raters": [], "description": []}


def _add_vote(v: dict, worker: str, primary: str, secondary: list[str], where: str) -> None:
    if not worker or not primary:
        raise AdapterError(f"{where}: annotation without worker or primary emotion")
    label, text = _split_other(primary)
    v["ratings"].append(label)
    v["raters"].append(worker)
    if text:
        v["description"].append(text)
    for item in secondary:
        if not item.strip():
            continue
        label, text = _split_other(item)
        v["secondary"].append(label)
        v["secondary_raters"].append(worker)
        if text:
            v["description"].append(text)


def _read_detailed(path: Path) -> dict[str, dict]:
    if not path.is_file():
        raise AdapterError(f"{path}: missing (MSP-Podcast layout: Labels/labels_detailed.csv)")
    votes: dict[str, dict] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header or header[0].strip() != "FileName":
            raise AdapterError(f"{path}: first column must be FileName, got {header}")
        cols = {h.strip(): i for i, h in enumerate(header)}
        worker_col = next((cols[c] for c in ("WorkerID", "Worker") if c in cols), None)
        primary_col = next((cols[c] for c in ("EmoClass_Major", "EmoClass") if c in cols), None)
        second_col = cols.get("EmoClass_Second")
        columnar = worker_col is not None and primary_col is not None
        for i, row in enumerate(reader, 2):
            if not row or not "".join(row).strip():
                continue
            where = f"{path}:{i}"
            v = votes.setdefault(_norm_name(row[0]), _new_votes())
            if columnar:
                if len(row) < len(header):
                    raise AdapterError(f"{where}: {len(row)} fields, header has {len(header)}")
                sec = row[second_col].split(",") if second_col is not None else []
                _add_vote(v, row[worker_col].strip(), row[primary_col].strip(), sec, where)
                continue
            if len(row) < 2:
                raise AdapterError(f"{where}: expected FileName and an annotation field")
            parts = [p.strip() for p in row[1].split(";") if p.strip()]
            if len(parts) < 2 or ":" in parts[1]:
                raise AdapterError(f"{where}: annotation {row[1]!r} is not 'worker; primary; ...'")
            secondary = parts[2].split(",") if len(parts) > 2 and ":" not in parts[2] else []
            _add_vote(v, parts[0], parts[1], secondary, where)
    return votes


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise AdapterError(f"{path}: balanced list not found (pass balanced_list=PATH)")
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(_norm_name(line.replace(";", ",").split(",")[0].split()[0]))
    if not names:
        raise AdapterError(f"{path}: the balanced list is empty")
    return names


def _build(root: Path, keep: list[str] | None = None) -> list[Utterance]:
    root = Path(root)
    if not root.is_dir():
        raise AdapterError(f"{root}: not a folder")
    labels = root / "Labels"
    consensus = _read_consensus(labels / "labels_consensus.csv")
    partitions: dict[str, str] = {}
    if consensus and "Split_Set" not in next(iter(consensus.values())):
        part_file = root / "Partitions.txt"
        if not part_file.is_file():
            raise AdapterError(f"{labels / 'labels_consensus.csv'}: no Split_Set column and no {part_file}")
        partitions = _read_partitions(part_file)
    votes = _read_detailed(labels / "labels_detailed.csv")
    names = sorted(consensus)
    if keep is not None:
        missing = [n for n in keep if n not in consensus]
        if missing:
            raise AdapterError(f"balanced list names files not in labels_consensus.csv: {missing[:5]}")
        wanted = set(keep)
        names = [n for n in names if n in wanted]
    rows = []
    for name in names:
        c = consensus[name]
        wav = root / "Audios" / name
        if not wav.is_file():
            raise AdapterError(f"{labels / 'labels_consensus.csv'}: audio for {name} not found at {wav}")
        duration = audio_duration(wav)
        split_set = c.get("Split_Set") or partitions.get(name)
        if not split_set:
            raise AdapterError(f"{root}: no official partition for {name}")
        spk = (c.get("SpkrID") or "").strip()
        v = votes.get(name, _new_votes())
        extra = {
            "split": SPLITS.get(split_set.strip().lower()),
            "split_set": split_set,
            "secondary": v["secondary"],
            "secondary_raters": v["secondary_raters"],
        }
        for col, key in (("EmoAct", "arousal"), ("EmoVal", "valence"), ("EmoDom", "dominance")):
            if c.get(col):
                extra[key] = float(c[col])
        if c.get("Gender"):
            extra["gender"] = c["Gender"]
        rows.append(
            Utterance(
                id=name[:-4],
                audio=str(wav),
                speaker=None if not spk or spk.lower() == "unknown" else spk,
                session=None,
                duration=duration,
                ratings=v["ratings"],
                raters=v["raters"],
                description=v["description"],
                emotion=CODES[c["EmoClass"]],
                extra=extra,
            )
        )
    return rows


@register_adapter("msp-podcast", CLASS_MAP, has_official_split=True)
def build(root: Path, **options) -> list[Utterance]:
    """Every utterance of labels_consensus.csv, with its official split in extra["split"]."""
    return _build(root)


@register_adapter("msp-podcast-balanced", CLASS_MAP, has_official_split=True)
def build_balanced(root: Path, balanced_list: str | Path | None = None, **options) -> list[Utterance]:
    """The utterances of a provided balanced list (``balanced_list`` or Labels/balanced_list.txt)."""
    path = Path(balanced_list) if balanced_list else Path(root) / "Labels" / "balanced_list.txt"
    return _build(root, keep=_read_list(path))

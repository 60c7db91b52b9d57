"""Partition rules are found by name in one registry (make_partition dispatches through it), and a
corpus's sessions are read off its rows by the corpus's adapter."""

from __future__ import annotations

import pytest

from emostore.manifests.adapters.base import AdapterError, get_adapter
from emostore.manifests.partitions import RULES, Partition, PartitionError, make_partition, register_rule
from emostore.manifests.partitions import registry


@pytest.fixture
def temporary_rule():
    """Registers rule 'first-speaker-test' (test = the rows of the first row's id prefix) for one test."""
    calls = []

    @register_rule("first-speaker-test", seeded=False)
    def make(corpus, rows, seed):
        calls.append((corpus, len(rows), seed))
        first = rows[0]["id"].split("_")[0]
        test = [r["id"] for r in rows if r["id"].startswith(first + "_")]
        rest = [r["id"] for r in rows if not r["id"].startswith(first + "_")]
        return Partition({"f": {"train": rest[1:], "dev": rest[:1], "test": test}},
                         {"speaker_independent": True, "scheme": "first speaker"})

    yield calls
    registry._RULES.pop("first-speaker-test")


ROWS = [{"id": f"{s}_{k}", "speaker": s, "emotion": "neu"} for s in ("a", "b", "c") for k in range(2)]


def test_rules_are_the_registered_ones():
    assert RULES == ("emo-superb", "emo-superb-paper", "emobox", "emobox-rule", "official") == registry.rule_names()


def test_a_registered_rule_is_dispatched_and_checked(temporary_rule):
    p = make_partition("Crema_D", ROWS, "first-speaker-test", seed=5)
    assert temporary_rule == [("crema-d", 6, 5)]  # the corpus name normalised, the seed passed
    assert p.folds["f"]["test"] == ["a_0", "a_1"]
    assert p.meta["rule"] == "first-speaker-test" and p.meta["seed"] is None  # seeded=False
    assert p.meta["scheme"] == "first speaker" and p.meta["sizes"] == {"f": {"train": 3, "dev": 1, "test": 2}}
    assert "first-speaker-test" in registry.rule_names()
    leaky = [dict(r, speaker="a") if r["id"] == "b_1" else r for r in ROWS]  # b_1 (train) now speaks as a
    with pytest.raises(PartitionError, match="leaks speakers between train and test: a"):
        make_partition("x", leaky, "first-speaker-test")


def test_a_rule_name_cannot_be_registered_twice(temporary_rule):
    with pytest.raises(ValueError, match="registered twice"):
        register_rule("first-speaker-test")(lambda corpus, rows, seed: None)


@pytest.mark.parametrize("speaker, given, want", [
    ("1001", None, 2), ("1037", 1, 1), ("1091", None, 3), ("n/a", 4, 4), ("9999", None, None),
])
def test_crema_d_sessions_come_from_actor_ids(speaker, given, want):
    assert get_adapter("crema-d").session({"id": "x", "speaker": speaker}, given) == want


def test_crema_d_session_that_contradicts_the_actor_is_an_error():
    with pytest.raises(AdapterError, match=r"actor 1001 is in EMO-SUPERB session 2, but the manifest says session 3"):
        get_adapter("crema-d").session({"id": "1001_DFA_ANG_XX", "speaker": "1001"}, 3)


def test_iemocap_session_from_speaker_or_id_only_when_missing():
    resolve = get_adapter("iemocap").session
    assert resolve({"id": "Ses03F_impro01_F000", "speaker": "Ses03F"}, None) == 3
    assert resolve({"id": "Ses04M_script01_M001", "speaker": None}, None) == 4
    assert resolve({"id": "Ses03F_impro01_F000", "speaker": "Ses03F"}, 5) == 5  # the column wins
    assert get_adapter("emodb").session is None  # no session rule: the column as it is

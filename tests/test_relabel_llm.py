"""`emostore relabel llm`: the real openai client against a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import EMO_SUPERB_CHATGPT

pytest.importorskip("openai")

from emostore.cli import main  # noqa: E402
from emostore.labels.llm import (  # noqa: E402
    DEFAULT_CLASSES,
    AnswerCache,
    LLMSettings,
    default_prompt,
    format_item,
    meta_path,
    relabel_llm,
    validate_response,
    write_result,
)
from emostore.labels.llm import runner  # noqa: E402

# each test talks to a scripted server on 127.0.0.1: a hang fails it with a message
pytestmark = pytest.mark.timeout(300)

KEY = "sk-test-SECRET-0123456789abcdef"
CLASSES = DEFAULT_CLASSES


# ---------------------------------------------------------------------------------------------- server


def parse_items(user: str) -> list[tuple[str, dict]]:
    items = []
    for item in user.split("|"):
        desc, dist = item.rsplit("#", 1)
        items.append((desc, {k: float(v) for k, v in (p.split(":") for p in dist.split(","))}))
    return items


def good_entry(ref: dict) -> dict:
    """The 75/25 blend of the reference with a uniform 'description' distribution."""
    n = len(ref)
    return {c: 0.75 * p + 0.25 / n for c, p in ref.items()} | {"reason": "blended"}


def answer(body: dict, edit=None) -> dict:
    """{index: entry} for every item of the request; ``edit(i, entry)`` may change or drop (None) one."""
    out = {}
    for i, (_, ref) in enumerate(parse_items(body["messages"][1]["content"])):
        entry = good_entry(ref)
        if edit is not None:
            entry = edit(i, entry)
        if entry is not None:
            out[str(i)] = entry
    return out


def completion(body: dict, content: str, usage=(1000, 1000)) -> tuple[int, dict, dict]:
    payload = {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    }
    if usage is not None:
        payload["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return 200, payload, {}


def ok(body, edit=None):
    return completion(body, json.dumps(answer(body, edit)))


def error(status, message="boom", code=None, headers=None):
    def respond(body):
        return status, {"error": {"message": message, "type": "error", "code": code}}, headers or {}
    return respond


class FakeAPI:
    """Records every request; answers from ``script`` (callables body -> (status, json, headers)) then ``default``."""

    def __init__(self):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.script: deque = deque()
        self.default = ok
        self.delay = 0.0
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    @property
    def batches(self) -> list[list[tuple[str, dict]]]:
        return [parse_items(r["messages"][1]["content"]) for r in self.requests]

    def handle(self, body: dict, headers: dict):
        with self.lock:
            self.requests.append(body)
            self.headers.append(headers)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            respond = self.script.popleft() if self.script else self.default
        try:
            if self.delay:
                time.sleep(self.delay)
            return respond(body)
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture
def api():
    fake = FakeAPI()

    class Handler(BaseHTTPRequestHandler):
        timeout = 5

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, payload, headers = fake.handle(body, {k.lower(): v for k, v in self.headers.items()})
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    delays = []
    monkeypatch.setattr(runner, "_sleep", delays.append)
    return delays


# ---------------------------------------------------------------------------------------------- data

DESCRIBED = [
    ("u0", ["angry", "angry", "sad"], ["shouting, clearly furious", "annoyed"]),
    ("u1", ["happy", "happy"], ["laughing"]),
    ("u2", ["sad", "neutral", "sad", "fear"], ["quiet | tearful # low voice"]),
    ("u3", ["surprise"], ["gasps"]),
    ("u4", ["contempt", "disgust"], ["sneering"]),
    ("u5", ["neutral", "neutral", "happy"], ["calm, flat"]),
]


def rows(described=DESCRIBED):
    out = [{"id": i, "ratings": r, "raters": [f"r{k}" for k in range(len(r))], "description": d}
           for i, r, d in described]
    out.append({"id": "plain", "ratings": ["happy", "neutral"], "raters": ["r0", "r1"], "description": []})
    out.append({"id": "blank", "ratings": ["fear"], "raters": ["r0"], "description": ["  "]})
    out.append({"id": "noref", "ratings": ["other"], "raters": ["r0"], "description": ["no in-class vote"]})
    return out


def write_manifest(path: Path, rs) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rs))
    return path


def settings(api, **kw) -> LLMSettings:
    base = dict(base_url=api.url, batch_size=2, concurrency=1, backoff=0.01, timeout=5)
    return LLMSettings(**(base | kw))


def run(api, rs=None, cache=None, **kw):
    return relabel_llm(rs if rs is not None else rows(), settings=settings(api, **kw), cache=cache, api_key=KEY)


def reference(ratings) -> list[float]:
    v = np.array([sum(r == c for r in ratings) for c in CLASSES], float)
    return list(v / v.sum())


def assert_key_not_on_disk(folder: Path):
    for f in folder.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
            assert b"SECRET" not in f.read_bytes(), f


# ---------------------------------------------------------------------------------------------- tests


def test_cli_requests_output_and_meta(api, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    manifest = write_manifest(tmp_path / "m.jsonl", rows())
    out = tmp_path / "llm.jsonl"
    res = CliRunner().invoke(main, ["relabel", "llm", str(manifest), "--out", str(out), "--base-url", api.url,
                                    "--batch-size", "2", "--concurrency", "1", "--cache", str(tmp_path / "c.sqlite"),
                                    "--quiet"])
    assert res.exit_code == 0, res.output
    assert "6 llm" in res.output and KEY not in res.output

    # the requests: published defaults, the system prompt's five parts, "descriptions#distribution|..."
    assert [len(b) for b in api.batches] == [2, 2, 2]
    for body, headers in zip(api.requests, api.headers):
        assert body["model"] == "gpt-4-0125-preview"
        assert body["temperature"] == 0 and body["seed"] == 7
        assert body["response_format"] == {"type": "json_object"}
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        assert body["messages"][0]["content"] == default_prompt(CLASSES)
        assert headers["authorization"] == f"Bearer {KEY}"
    system = api.requests[0]["messages"][0]["content"]
    for part in ("# Objective", "# Input format", "# Example", "# Output format", "# Rules",
                 "descriptions#reference distribution", '"|"', "75%", "25%", "15 to 20 words", "sum to 1",
                 "Complete every item"):
        assert part in system
    expected_user = "|".join(format_item(d, CLASSES, reference(r)) for _, r, d in DESCRIBED[:2])
    assert api.requests[0]["messages"][1]["content"] == expected_user
    assert expected_user.startswith("shouting, clearly furious; annoyed#angry:0.667,sad:0.333,disgust:0,")
    # separators inside a description cannot split an item
    assert api.batches[1][0][0] == "quiet / tearful / low voice"

    # rows without descriptions (or without an in-class vote) are never sent
    sent = [desc for b in api.batches for desc, _ in b]
    assert len(sent) == 6 and not any("in-class" in s for s in sent)

    got = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert list(got) == [r["id"] for r in rows()]
    for i, ratings, _ in DESCRIBED:
        ref = reference(ratings)
        want = [0.75 * p + 0.25 / 8 for p in ref]
        assert got[i]["source"] == "llm" and got[i]["reason"] == "blended"
        np.testing.assert_allclose(got[i]["distribution"], want, atol=1e-3)  # the request rounds to 3 decimals
        assert abs(sum(got[i]["distribution"]) - 1) < 1e-9
    assert got["plain"] == {"id": "plain", "distribution": reference(["happy", "neutral"]), "reason": None,
                            "source": "reference"}
    assert got["blank"]["source"] == "reference"
    assert got["noref"] == {"id": "noref", "distribution": None, "reason": None, "source": "reference"}

    meta = json.loads((tmp_path / "llm.meta.json").read_text())
    assert meta["classes"] == list(CLASSES)
    assert meta["settings"]["model"] == "gpt-4-0125-preview" and meta["settings"]["seed"] == 7
    assert meta["settings"]["base_url"] == api.url
    # 9 rows: 6 described and sent (6 distinct items), "noref" described but without an in-class vote,
    # "plain" and "blank" without a (non-blank) description; the last three keep the reference
    assert meta["counts"] == {"rows": 9, "with_descriptions": 7, "no_reference": 1, "items": 6, "llm": 6,
                              "cache": 0, "reference": 3, "failed": 0, "unsent": 0}
    assert meta["cost"]["requests"] == 3 and meta["cost"]["usd"] == pytest.approx(3 * 0.04)
    assert meta["manifest"]["path"] == str(manifest) and len(meta["manifest"]["sha256"]) == 64
    assert meta["no_reference"] == ["noref"] and meta["error"] is None
    assert_key_not_on_disk(tmp_path)


def test_cache_second_run_sends_zero_requests(api, tmp_path, monkeypatch):
    manifest = write_manifest(tmp_path / "m.jsonl", rows())
    args = ["relabel", "llm", str(manifest), "--base-url", api.url, "--cache", str(tmp_path / "c.sqlite"),
            "--quiet"]
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    first = CliRunner().invoke(main, args + ["--out", str(tmp_path / "a.jsonl")])
    assert first.exit_code == 0, first.output
    assert len(api.requests) == 1  # 6 items, default batch size 30
    monkeypatch.delenv("OPENAI_API_KEY")  # nothing to send: no key needed
    second = CliRunner().invoke(main, args + ["--out", str(tmp_path / "b.jsonl")])
    assert second.exit_code == 0, second.output
    assert len(api.requests) == 1
    a = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [r["source"] for r in b] == ["cache"] * 6 + ["reference"] * 3
    assert [r["distribution"] for r in a] == [r["distribution"] for r in b]
    assert_key_not_on_disk(tmp_path)


def test_cache_keyed_by_model_and_prompt(api, tmp_path):
    cache = AnswerCache(tmp_path / "c.sqlite")
    run(api, cache=cache, batch_size=30)
    run(api, cache=cache, batch_size=30, model="other-model")
    run(api, cache=cache, batch_size=30, prompt="my own prompt", prompt_source="file")
    assert len(api.requests) == 3
    assert api.requests[2]["messages"][0]["content"] == "my own prompt"
    res = run(api, cache=cache, batch_size=30, prompt="my own prompt")
    assert len(api.requests) == 3 and res.meta["counts"]["cache"] == 6
    # a changed rating changes the item, so it is asked again
    rs = rows()
    rs[0]["ratings"] = ["angry", "angry", "angry"]
    run(api, rs, cache=cache, batch_size=30)
    assert len(api.requests) == 4 and len(api.batches[3]) == 1


def test_prompt_file_and_custom_classes(api, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    prompt = tmp_path / "paper.txt"
    prompt.write_text("The paper's exact prompt {with braces}.")
    manifest = write_manifest(tmp_path / "m.jsonl", rows())
    res = CliRunner().invoke(main, ["relabel", "llm", str(manifest), "--out", str(tmp_path / "o.jsonl"),
                                    "--base-url", api.url, "--classes", "angry,happy,neutral", "--model", "local",
                                    "--prompt-file", str(prompt), "--cache", str(tmp_path / "c.sqlite"),
                                    "--quiet"])
    assert res.exit_code == 0, res.output
    body = api.requests[0]
    assert body["model"] == "local" and body["messages"][0]["content"] == prompt.read_text()
    assert all(list(ref) == ["angry", "happy", "neutral"] for _, ref in api.batches[0])
    # only rows with an in-class vote among the three classes are sent (u0, u1, u2, u5)
    assert [d for d, _ in api.batches[0]] == ["shouting, clearly furious; annoyed", "laughing",
                                            "quiet / tearful / low voice", "calm, flat"]
    meta = json.loads((tmp_path / "o.meta.json").read_text())
    assert meta["classes"] == ["angry", "happy", "neutral"] and meta["prompt"]["source"] == str(prompt)
    assert "{with braces}" not in default_prompt(("angry", "happy", "neutral"))
    assert '"angry", "happy", "neutral"' in default_prompt(("angry", "happy", "neutral"))


def test_malformed_json_reasks_the_batch(api):
    api.script.extend([lambda b: completion(b, "this is {not json"), lambda b: completion(b, "")])
    res = run(api, batch_size=30)
    assert len(api.requests) == 3
    assert api.batches[0] == api.batches[1] == api.batches[2]
    assert res.meta["counts"]["llm"] == 6 and res.meta["cost"]["reasks"] == 2


def test_only_failed_items_are_reasked(api):
    def broken(i, e):
        if i == 1:
            return None  # missing
        if i == 2:
            return e | {"angry": 1.5}  # out of range
        if i == 3:
            return e | {"joy": 0.0}  # unknown class
        if i == 4:
            return {c: v * 0.9 for c, v in e.items() if c != "reason"}  # sums to 0.9: beyond tolerance
        if i == 5:
            return {c: v * 1.03 for c, v in e.items() if c != "reason"}  # 1.03: renormalised
        return e
    api.script.append(lambda b: ok(b, broken))
    res = run(api, batch_size=30)
    assert [len(b) for b in api.batches] == [6, 4]
    first, second = api.batches
    assert [d for d, _ in second] == [first[i][0] for i in (1, 2, 3, 4)]
    by_id = {r["id"]: r for r in res.rows}
    assert all(by_id[i]["source"] == "llm" for i in ("u0", "u1", "u2", "u3", "u4", "u5"))
    assert by_id["u5"]["reason"] is None and abs(sum(by_id["u5"]["distribution"]) - 1) < 1e-12
    np.testing.assert_allclose(by_id["u5"]["distribution"],
                               [0.75 * p + 0.25 / 8 for p in reference(DESCRIBED[5][1])], atol=1e-3)


def test_reasks_are_bounded(api):
    api.default = lambda b: ok(b, lambda i, e: None if "laughing" in parse_items(
        b["messages"][1]["content"])[i][0] else e)
    res = run(api, batch_size=30, max_reasks=2)
    assert [len(b) for b in api.batches] == [6, 1, 1]
    by_id = {r["id"]: r for r in res.rows}
    assert by_id["u1"]["source"] == "reference" and by_id["u1"]["distribution"] == reference(["happy", "happy"])
    assert res.meta["failed"] == {"u1": "missing from the response"} and res.meta["counts"]["failed"] == 1
    assert res.meta["counts"]["llm"] == 5


def test_rate_limits_and_server_errors_back_off(api, no_sleep):
    api.script.extend([error(429, headers={"Retry-After": "0"}), error(500), error(503), error(502)])
    res = run(api, batch_size=30, backoff=0.01)
    assert len(api.requests) == 5 and api.batches[0] == api.batches[4]
    assert no_sleep == [0.01, 0.02, 0.04, 0.08]
    assert res.meta["cost"]["retries"] == 4 and res.meta["counts"]["llm"] == 6
    assert res.meta["cost"]["requests"] == 1  # failed attempts cost nothing


def test_retry_after_is_honoured_but_capped(api, no_sleep):
    api.script.extend([error(429, headers={"Retry-After": "3"}), error(429, headers={"Retry-After": "999"})])
    run(api, batch_size=30, backoff=0.01, max_backoff=10)
    assert no_sleep == [3.0, 10]


def test_retries_exhausted_keep_reference(api, no_sleep):
    api.default = error(500)
    res = run(api, batch_size=4, max_retries=2)
    assert len(api.requests) == 2 * 3 and len(no_sleep) == 4
    assert res.error is None
    assert set(res.meta["failed"]) == {f"u{i}" for i in range(6)}
    assert res.meta["failed"]["u0"] == "HTTP 500 after 2 retries"
    assert all(r["source"] == "reference" for r in res.rows)


def test_fatal_error_stops_keeps_done_and_hides_key(api, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    api.script.extend([ok, error(401, f"Incorrect API key provided: {KEY}")])
    manifest = write_manifest(tmp_path / "m.jsonl", rows())
    out = tmp_path / "o.jsonl"
    res = CliRunner().invoke(main, ["relabel", "llm", str(manifest), "--out", str(out), "--base-url", api.url,
                                    "--batch-size", "2", "--concurrency", "1", "--cache", str(tmp_path / "c.sqlite"),
                                    "--quiet"])
    assert res.exit_code == 1
    assert "HTTP 401" in res.output and KEY not in res.output and "SECRET" not in res.output
    assert len(api.requests) == 2  # no third batch after the fatal error
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["source"] for r in got[:6]] == ["llm", "llm", "reference", "reference", "reference", "reference"]
    meta = json.loads(meta_path(out).read_text())
    assert meta["unsent"] == ["u2", "u3", "u4", "u5"] and "HTTP 401" in meta["error"]
    assert_key_not_on_disk(tmp_path)


def test_insufficient_quota_is_not_retried(api, no_sleep):
    api.script.append(error(429, "You exceeded your current quota", code="insufficient_quota"))
    res = run(api, batch_size=30)
    assert len(api.requests) == 1 and no_sleep == [] and "insufficient_quota" in res.error


def test_budget_stops_early_and_keeps_done(api, tmp_path):
    cache = AnswerCache(tmp_path / "c.sqlite")
    # each response bills 1000 + 1000 tokens = $0.04; after two, the third would pass $0.09
    res = run(api, cache=cache, max_cost=0.09)
    assert len(api.requests) == 2
    assert res.meta["budget_exhausted"] is True and res.meta["cost"]["usd"] == pytest.approx(0.08)
    assert res.meta["unsent"] == ["u4", "u5"] and res.meta["counts"]["llm"] == 4
    assert [r["source"] for r in res.rows[:6]] == ["llm"] * 4 + ["reference"] * 2
    # a re-run with more budget pays only for what is missing
    res2 = run(api, cache=cache, max_cost=1.0)
    assert len(api.requests) == 3 and len(api.batches[2]) == 2
    assert res2.meta["counts"] == res2.meta["counts"] | {"cache": 4, "llm": 2, "unsent": 0}
    assert res2.meta["budget_exhausted"] is False


def test_budget_zero_sends_nothing(api):
    res = run(api, max_cost=0.0)
    assert api.requests == [] and res.meta["unsent"] == [f"u{i}" for i in range(6)]


def test_missing_usage_is_estimated(api):
    api.default = lambda b: completion(b, json.dumps(answer(b)), usage=None)
    res = run(api, batch_size=30)
    assert res.meta["cost"]["requests_without_usage"] == 1 and res.meta["cost"]["usd"] > 0


def test_concurrency_is_bounded(api):
    api.delay = 0.05
    described = [(f"c{i}", ["angry", "sad"][: 1 + i % 2], [f"description {i}"]) for i in range(24)]
    res = run(api, rows(described), batch_size=2, concurrency=3)
    assert len(api.requests) == 12 and 1 < api.max_in_flight <= 3
    assert res.meta["counts"]["llm"] == 24
    assert sorted(d for b in api.batches for d, _ in b) == sorted(f"description {i}" for i in range(24))


def test_duplicate_items_are_sent_once(api):
    described = [("a", ["sad"], ["crying"]), ("b", ["sad"], ["crying"]), ("c", ["sad"], ["sobbing"])]
    res = run(api, rows(described), batch_size=30)
    assert len(api.batches[0]) == 2
    assert [r["source"] for r in res.rows[:3]] == ["llm"] * 3


def test_missing_key_is_one_clear_line(api, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    manifest = write_manifest(tmp_path / "m.jsonl", rows())
    res = CliRunner().invoke(main, ["relabel", "llm", str(manifest), "--out", str(tmp_path / "o.jsonl"),
                                    "--base-url", api.url, "--cache", str(tmp_path / "c.sqlite"), "--quiet"])
    assert res.exit_code == 1 and "OPENAI_API_KEY is not set" in res.output
    assert len(res.output.strip().splitlines()) == 1 and api.requests == []


def test_validate_response_units():
    cls = ("a", "b")
    ok_, bad = validate_response('{"items": {"0": {"a": 0.5, "b": 0.5, "reason": "r"}}}', 1, cls, 0.05)
    assert list(ok_) == [0] and not bad
    ok_, bad = validate_response('[{"A": "0.25", "b": 0.75}]', 1, cls, 0.05)
    assert ok_[0][0].tolist() == [0.25, 0.75]
    ok_, bad = validate_response('{"0": {"a": 0, "b": 0}, "1": {"a": true, "b": 1}, "2": [1]}', 3, cls, 0.05)
    assert set(bad) == {0, 1, 2} and "sum" in bad[0] and "number" in bad[1]
    ok_, bad = validate_response('"text"', 2, cls, 0.05)
    assert set(bad) == {0, 1}


def test_write_result_meta_path(tmp_path, api):
    res = run(api, batch_size=30)
    out, mp = write_result(res, tmp_path / "x" / "r.jsonl")
    assert mp == tmp_path / "x" / "r.meta.json" and out.exists() and mp.exists()
    assert meta_path("r.out") == Path("r.out.meta.json")


def test_non_json_http_body_is_retried(api, no_sleep):
    api.script.append(lambda b: (200, b"<html>bad gateway</html>", {}))
    res = run(api, batch_size=30)
    assert len(api.requests) == 2 and res.meta["counts"]["llm"] == 6


def test_connection_refused_gives_up_after_retries(no_sleep):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    st = LLMSettings(base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, backoff=0.01, timeout=2)
    res = relabel_llm(rows(), settings=st, api_key=KEY)
    assert len(no_sleep) == 2 and res.error is None
    assert res.meta["failed"]["u0"] == "APIConnectionError after 2 retries"
    assert res.meta["counts"]["reference"] == 9


# ---------------------------------------------------------------------------------------------- EMO-SUPERB's prompt

EMO_SUPERB_PROMPT = EMO_SUPERB_CHATGPT / "Prompt.txt"


def emo_superb_items(user: str) -> list[tuple[list[str], list[float]]]:
    """EMO-SUPERB's request form: items 'desc,desc#v1,...,v8' joined by '|'."""
    out = []
    for item in user.split("|"):
        desc, dist = item.rsplit("#", 1)
        out.append((desc.split(","), [float(v) for v in dist.split(",")]))
    return out


def test_emo_superb_prompt_preset_on_the_loopback_server(api, tmp_path, emo_superb_chatgpt_dir):
    """--prompt emo-superb sends EMO-SUPERB's Prompt.txt byte for byte, its item form, 30 items per
    request, and reads its reply form (JSON by index; the prompt example's Python-literal form, keyed 1..n)."""
    from emostore.labels.llm.prompt import emo_superb_prompt

    described = [(f"e{k:02d}", ["angry", "angry", "sad"] if k % 2 else ["neutral"], [f"tense {k}", "Concerned"])
                 for k in range(31)]
    rs = [{"id": i, "ratings": r, "raters": [f"r{n}" for n in range(len(r))], "description": d} for i, r, d in described]
    seen = []

    def reply(body):
        items = emo_superb_items(body["messages"][1]["content"])
        seen.append(len(items))
        entries = [dict(zip(CLASSES, [0.75 * p + 0.25 / 8 for p in ref])) | {"reason": "blend"} for _, ref in items]
        if len(seen) == 1:
            return completion(body, json.dumps({str(i): e for i, e in enumerate(entries)}))
        return completion(body, repr({i + 1: e for i, e in enumerate(entries)}))  # {1: {'angry': ...}}

    api.default = reply
    res = relabel_llm(rs, settings=settings(api, batch_size=30, prompt_preset="emo-superb"), cache=AnswerCache(None),
                      api_key=KEY)
    assert res.error is None and sorted(seen) == [1, 30]
    system = api.requests[0]["messages"][0]
    assert system["role"] == "system" and system["content"] == EMO_SUPERB_PROMPT.read_text(encoding="utf-8")
    assert emo_superb_prompt() == EMO_SUPERB_PROMPT.read_bytes().decode()
    first = api.requests[0]["messages"][1]["content"].split("|")
    assert "tense 1,Concerned#0.6666666666666666,0.3333333333333333,0.0,0.0,0.0,0.0,0.0,0.0" in first
    assert "tense 0,Concerned#0.0,0.0,0.0,0.0,0.0,1.0,0.0,0.0" in first  # the prompt's own example form
    by_id = {r["id"]: r for r in res.rows}
    for i, r, _ in described:
        ref = np.array(reference(r))
        assert np.allclose(by_id[i]["distribution"], 0.75 * ref + 0.25 / 8) and by_id[i]["source"] == "llm"
    assert res.meta["prompt"]["preset"] == "emo-superb"
    with pytest.raises(Exception, match="written for the classes angry, sad, disgust"):
        relabel_llm(rs, ["sad", "angry"], settings=settings(api, prompt_preset="emo-superb"), api_key=KEY)


def test_cli_prompt_emo_superb(api, tmp_path, monkeypatch, emo_superb_chatgpt_dir):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    def reply(body):
        items = emo_superb_items(body["messages"][1]["content"])
        return completion(body, json.dumps({str(i): dict(zip(CLASSES, ref)) | {"reason": ""}
                                            for i, (_, ref) in enumerate(items)}))

    api.default = reply
    manifest = write_manifest(tmp_path / "m.jsonl", rows())
    out = tmp_path / "llm.jsonl"
    res = CliRunner().invoke(main, ["relabel", "llm", str(manifest), "--out", str(out), "--base-url", api.url,
                                    "--prompt", "emo-superb", "--cache", str(tmp_path / "c.sqlite"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert len(api.requests) == 1  # 6 described rows: one request of up to 30
    assert api.requests[0]["messages"][0]["content"] == EMO_SUPERB_PROMPT.read_text(encoding="utf-8")
    meta = json.loads(meta_path(out).read_text())
    assert meta["prompt"]["preset"] == "emo-superb" and meta["prompt"]["sha256"] == \
        "4d0c9654c0c0ddbc0651201166a206292f7cd5081b6466b2fb123b66a8bc77a9"

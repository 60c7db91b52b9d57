"""README's step-by-step block runs as written from a clone (the bundled EmoDB subset, FBANK)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

PRELUDE = """set -euo pipefail
emostore() { "$PY" -m emostore.cli "$@"; }
python() { "$PY" "$@"; }
"""


def readme_block(name: str) -> str:
    """The bash block between README's ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"<!-- {name}:start -->\s*```bash\n(.*?)```\s*<!-- {name}:end -->", text, re.S)
    assert m, f"README has no {name} block"
    return m.group(1)


@pytest.mark.timeout(900)
def test_readme_step_by_step_runs_from_a_clone_on_the_bundled_subset(tmp_path):
    block = readme_block("step-by-step")
    # the one change: FBANK instead of the default Whisper encoder, to keep the test fast
    script, n = re.subn(r"^(emostore extract .*)$", r"\1 --encoder fbank", block, flags=re.M)
    assert n == 1
    env = {k: v for k, v in os.environ.items() if k != "EMODB"}
    env.update(PY=sys.executable, PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]),
               EMOSTORE_PROGRESS_INTERVAL="60")
    p = subprocess.run(["bash", "-c", PRELUDE + script], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=840)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "135 utterances" in p.stdout + p.stderr  # the bundled subset (no ../shared here)
    assert p.stdout.count("**UA") == 1  # the leaderboard: single-label EmoDB is scored by UA first
    assert (tmp_path / "report" / "index.html").is_file()
    assert (tmp_path / "layers" / "probe-curves.png").is_file()
    assert len(list((tmp_path / "sweeps" / "emodb" / "runs").iterdir())) == 2 * 3 * 5  # 2 heads x 3 rules x 5 folds

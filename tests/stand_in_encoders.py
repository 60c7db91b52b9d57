"""Stand-in encoders for extraction tests, registered on import: fbank that can stall, and fbank with a bug.

``slow-fbank`` is fbank that appends its call number to the file $EMOSTORE_TEST_CALLS on every
``encode`` and sleeps 120 s in call number $EMOSTORE_TEST_STALL_AT (so a test can signal or kill
the process while it is in the middle of a block). ``buggy-fbank`` raises a TypeError in
``encode``, as a code bug in an encoder would.

Run as a script it is the ``emostore`` command with these encoders available:
``python stand_in_encoders.py extract MANIFEST --encoder slow-fbank ...``.
"""

from __future__ import annotations

import os
import sys
import time

from emostore.extract.encoders.base import Usage, register
from emostore.extract.encoders.fbank import FbankEncoder


@register("slow-fbank", Usage("slow-fbank[:SECONDS]", "test stand-in: fbank that sleeps per batch", "slow-fbank:0.5"))
class SlowFbank(FbankEncoder):
    def __init__(self, path, device):
        super().__init__(None, device)
        self.name, self.calls = "slow-fbank", 0

    def encode(self, waves):
        self.calls += 1
        if os.environ.get("EMOSTORE_TEST_CALLS"):
            with open(os.environ["EMOSTORE_TEST_CALLS"], "a") as fh:
                fh.write(f"{self.calls}\n")
        if self.calls == int(os.environ.get("EMOSTORE_TEST_STALL_AT", "0")):
            time.sleep(120)
        return super().encode(waves)


@register("buggy-fbank", Usage("buggy-fbank", "test stand-in: fbank with a code bug", "buggy-fbank"))
class BuggyFbank(FbankEncoder):
    def __init__(self, path, device):
        super().__init__(None, device)
        self.name = "buggy-fbank"

    def encode(self, waves):
        return super().encode(waves) + len  # a bug: TypeError (list + builtin)


if __name__ == "__main__":
    from emostore.cli import main

    sys.exit(main(sys.argv[1:], prog_name="emostore"))

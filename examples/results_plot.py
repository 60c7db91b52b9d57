"""A sweep's results as a pandas table, and a figure: test UA per layer, one line per head.

    python examples/results_plot.py SWEEP_DIR [OUT.png]      # prints the table, saves the figure

SWEEP_DIR is what `emostore sweep ... --out SWEEP_DIR` wrote (its results.sqlite).
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from emostore.sweep.results import load_results  # noqa: E402


def ua_by_layer(sweep_dir: str):
    """Mean test UA over folds and seeds, rows = encoder layer (-1: all layers / weighted-sum), columns = head."""
    runs = load_results(sweep_dir)
    done = runs[runs["status"] == "done"].copy()
    done["layer"] = done["layer"].fillna(-1).astype(int)
    return done.pivot_table(index="layer", columns="head", values="ua", aggfunc="mean")


if __name__ == "__main__":
    table = ua_by_layer(sys.argv[1])
    print(table.round(3).to_string())
    ax = table.plot(marker="o", xlabel="encoder layer (-1: weighted sum of all)", ylabel="test UA")
    plt.savefig(sys.argv[2] if len(sys.argv) > 2 else "ua_by_layer.png", dpi=120, bbox_inches="tight")

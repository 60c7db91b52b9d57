"""Layer-wise probe curve: a logistic regression on each layer's pooled features, speaker-independent.

    python examples/probe_curve.py STORE [MANIFEST]     # prints one line per layer: UA (5-fold by speaker)

The manifest (default: the one the store recorded) gives each utterance's emotion and speaker.
"""

import sys

from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import emostore


def probe_curve(store: str, manifest: str | None = None, folds: int = 5) -> dict[int, float]:
    """Unweighted accuracy (balanced accuracy) of a linear probe per encoder layer."""
    fs = emostore.open_store(store, manifest=manifest)
    pooled = fs.to_xarray()                       # [id, layer, dim] with the manifest's columns as coordinates
    pooled = pooled.isel(id=pooled["done"].values)  # utterances that have features
    y, speakers = pooled["emotion"].values, pooled["speaker"].values
    curve = {}
    for layer in fs.layers:
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        pred = cross_val_predict(probe, pooled.sel(layer=layer).values, y, groups=speakers, cv=GroupKFold(folds))
        curve[layer] = balanced_accuracy_score(y, pred)
    return curve


if __name__ == "__main__":
    for layer, ua in probe_curve(*sys.argv[1:3]).items():
        print(f"layer {layer:2d}  UA {ua:.3f}")

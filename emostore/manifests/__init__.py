"""Corpus manifests: one row per utterance (id, audio, speaker, session, ratings, ...)."""

from emostore.manifests.manifest import Manifest, ManifestError, load_manifest

__all__ = ["Manifest", "ManifestError", "load_manifest"]

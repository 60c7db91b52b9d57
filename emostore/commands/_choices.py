"""Choices the user types, taken from the library's registries (never typed again here).

A registry is read the first time click needs it (to check a value or to print ``--help`` for that
command), so ``emostore --help`` imports none of them. The training choices come from torch-free
modules (:mod:`emostore.heads.names`, :mod:`emostore.heads.config`): parsing ``train`` / ``sweep``
options imports no torch.
"""

from __future__ import annotations

import importlib

import click


class RegistryChoice(click.Choice):
    """``click.Choice`` over ``module.attr`` (a tuple of names or a dict keyed by name), read lazily."""

    def __init__(self, module: str, attr: str, case_sensitive: bool = True):
        self._where = (module, attr)
        self._names: tuple[str, ...] | None = None
        super().__init__((), case_sensitive)

    @property
    def choices(self) -> tuple[str, ...]:
        if self._names is None:
            module, attr = self._where
            self._names = tuple(getattr(importlib.import_module(module), attr))
        return self._names

    @choices.setter
    def choices(self, value) -> None:  # click.Choice.__init__ assigns; the registry is the source
        pass


def heads() -> RegistryChoice:
    return RegistryChoice("emostore.heads.names", "HEAD_NAMES")


def label_rules() -> RegistryChoice:
    return RegistryChoice("emostore.labels.aggregate", "RULES")


class LibraryDefault:
    """An option's default that is a library constant, imported only when the option is used or its
    help is shown (so ``emostore --help`` imports no library stack, and the value is typed once)."""

    def __init__(self, module: str, attr: str):
        self.module, self.attr = module, attr

    def __call__(self):
        import importlib

        return getattr(importlib.import_module(self.module), self.attr)

    def __str__(self) -> str:  # what click shows as [default: ...]
        return str(self())


N_BOOT = LibraryDefault("emostore.evaluate.bootstrap", "DEFAULT_BOOT")


def partition_rules() -> RegistryChoice:
    return RegistryChoice("emostore.manifests.partitions", "RULES")


def presets() -> RegistryChoice:
    return RegistryChoice("emostore.heads.config", "PRESETS")


def feature_kinds() -> RegistryChoice:
    return RegistryChoice("emostore.heads.config", "FEATURES")


def shuffles() -> RegistryChoice:
    return RegistryChoice("emostore.heads.config", "SHUFFLES")


def class_list(classes: str | None) -> list[str] | None:
    """``--classes A,B,C`` as a list (None when not given); empty or repeated classes are usage errors."""
    if classes is None:
        return None
    out = [c.strip() for c in classes.split(",") if c.strip()]
    if not out:
        raise click.BadParameter("give at least one class", param_hint="--classes")
    if len(set(c.lower() for c in out)) != len(out):
        raise click.BadParameter("a class is listed twice", param_hint="--classes")
    return out


class StoreLocation(click.Path):
    """A feature store: an existing local path, or an fsspec URL (``s3://``...) passed on unchecked
    (the reader says clearly when nothing is there)."""

    def __init__(self):
        super().__init__(exists=True)

    def convert(self, value, param, ctx):
        from emostore.store.urls import is_url

        return str(value) if is_url(value) else super().convert(value, param, ctx)


STORE = StoreLocation()

"""The trainer's one root error; the CLI maps it to exit status 2 with a readable message."""

from __future__ import annotations


class TrainerError(Exception):
    """Anything the user can fix: bad arguments, a missing file, an unusable dataset."""


class SourceError(TrainerError):
    """The labelled-image source (folder or manifest) cannot be read."""


class DatasetError(TrainerError):
    """An HDF5 dataset is missing, malformed, or unsuitable for the request."""


class RunError(TrainerError):
    """A run folder is missing, incomplete, or would be overwritten."""

"""Exception hierarchy: a caller catches what it means.

Every error a user can cause (bad file, bad parameter) derives from :class:`PesnetError`;
the CLI turns these into one clear line and a non-zero exit code instead of a traceback.
"""


class PesnetError(Exception):
    """Base class for every error pesnet raises on purpose."""


class InputError(PesnetError):
    """Bad user input: an unreadable file, an invalid configuration, a bad parameter."""


class DataFormatError(InputError):
    """A pesnet data file (dataset, features, model) is not what it claims to be."""


class ConfigurationError(InputError):
    """One atomic configuration in an input file fails validation.

    The message names the file and the configuration index, e.g.
    ``train.extxyz, configuration 17: atoms 3 and 9 are 0.02 Å apart (minimum 0.1 Å)``.
    """

    def __init__(self, path, index, reason):
        self.path = str(path)
        self.index = index
        self.reason = reason
        where = f"{self.path}, configuration {index}" if index is not None else self.path
        super().__init__(f"{where}: {reason}")


class NotFittedError(PesnetError):
    """A model was asked to predict before it was fitted or loaded."""

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


class NonFiniteResultError(PesnetError):
    """A computation gave NaN or infinite values from finite input (an overflow in the
    descriptor or the networks): refused rather than returned."""


class NotFittedError(PesnetError):
    """A model was asked to predict before it was fitted or loaded."""


def did_you_mean(word, choices) -> str:
    """``" (did you mean 'tanh'?)"`` for the choice closest to a misspelt ``word``, or ``""``
    when none is close (difflib's ratio ≥ 0.6), for the end of an error message."""
    import difflib

    close = difflib.get_close_matches(str(word).lower(), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""

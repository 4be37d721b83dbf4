"""The one error type for bad user input (files, data, configs), so the CLI can print it and exit."""


class InputError(ValueError):
    """Bad user input: a missing or corrupt file, a wrong format, an unusable value.

    The message names the file or setting and what was expected; the CLI prints it as one line
    and exits with status 2.
    """


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; no checkpoint is written from such a state."""

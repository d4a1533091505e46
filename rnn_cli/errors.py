"""The one exception type for bad input. Only cli.py turns it into exit status 2."""


class RnnCliError(Exception):
    """A bad flag value or combination; the message is one line that names the option."""

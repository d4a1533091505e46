"""rnn-cli: see and check what recurrent layers do (shapes, states, values)."""

__version__ = "0.1.0"

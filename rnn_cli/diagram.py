"""Shape-flow diagram (placeholder until issue 7 lands)."""

from rich.text import Text

from rnn_cli.config import RunConfig


def flow_diagram(cfg: RunConfig, plain: bool, width: int = 80) -> Text:
    return Text("")

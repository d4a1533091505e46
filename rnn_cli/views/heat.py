"""The value tables' colour scale: a diverging background centred on 0 (blue below, red
above, dark grey at zero) with white digits, and its legend."""

from __future__ import annotations

import math

from rich.console import Console
from rich.style import Style
from rich.text import Text

from rnn_cli.core.config import View
from rnn_cli.views.wrap import NBSP
from rnn_cli.views.tables import is_plain

HEAT_ZERO = (48, 48, 48)  # dark grey: the white digits read on it on dark and light terminals
HEAT_POSITIVE = (215, 48, 39)  # red; white on it and on the blue keeps > 4.5:1 contrast
HEAT_NEGATIVE = (44, 110, 190)  # blue
# 256-colour steps (xterm palette numbers), zero then 4 deeper: rich's own rounding of the
# blends to that palette would turn the dark reds olive and the blues teal.
HEAT_256 = {1: (236, 52, 88, 124, 160), -1: (236, 17, 18, 19, 20)}


def heat_style(value: float, vmax: float, color_system: str | None = "truecolor") -> Style:
    """Diverging background centred on 0: blue below, red above, dark grey at zero; white digits.

    Blended on truecolor terminals, in 4 steps a side on 256-colour ones. The 16 standard
    colours cannot shade, so there only |value| >= vmax/2 is coloured, white on red or blue."""
    if not math.isfinite(value) or vmax <= 0:
        return Style()
    t = max(-1.0, min(1.0, value / vmax))
    if color_system in ("standard", "windows"):
        return Style(bgcolor="red" if t > 0 else "blue", color="bright_white") if abs(t) >= 0.5 else Style()
    from rich.color import Color

    white = Color.from_rgb(255, 255, 255)
    if color_system == "256":
        step = HEAT_256[1 if t > 0 else -1][int(abs(t) * 4 + 0.5)]
        return Style(bgcolor=Color.from_ansi(step), color=white)
    end = HEAT_POSITIVE if t > 0 else HEAT_NEGATIVE
    rgb = tuple(int(round(b + abs(t) * (e - b))) for b, e in zip(HEAT_ZERO, end))
    return Style(bgcolor=Color.from_rgb(*rgb), color=white)


def heat_legend(vmax: float, precision: int, color_system: str | None) -> Text:
    """The caption line that states the range, its ends and middle drawn as the cells are."""
    lo, hi = f"-{vmax:.{precision}f}", f"+{vmax:.{precision}f}"  # the cells' own format
    return Text.assemble(  # one item: NBSPs, so a narrow screen moves it whole, never `+0.9130` alone
        f"colour{NBSP}scale{NBSP}",
        (lo, heat_style(-vmax, vmax, color_system)),
        f"{NBSP}..{NBSP}",
        ("0", heat_style(0.0, vmax, color_system)),
        f"{NBSP}..{NBSP}",
        (hi, heat_style(vmax, vmax, color_system)),
    )


def use_heatmap(console: Console, view: View) -> bool:
    return view.heatmap and console.color_system is not None and not console.no_color and not is_plain(console)

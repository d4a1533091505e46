"""Follow one rnn-cli run through the code and count how it moves between rooms and layers
(issue 20: "the manual command's flags, followed from the command function through the code,
go down the layers with at most 5 returns upward").

    PYTHONPATH=$PWD python docs/call-graph.py               # rnn-cli manual
    PYTHONPATH=$PWD python docs/call-graph.py manual --json # any command line
    PYTHONPATH=$PWD python docs/call-graph.py --list manual # also every stay, by its path

How it is measured (sys.setprofile, in this process):
- A *room* is a module of rnn_cli; every room has a *layer*, LAYERS below: the edge (cli) over
  what the edge hands data to (views, documents, inputs) over file formats over the numeric
  core over the shared base (errors, printable, stops).
- Counting starts when the command function (`manual_command`) is called, and stops when it
  returns. Code run while a module is imported (`<module>`) is not counted: it is not the flags'
  flow. Frames outside rnn_cli (typer, numpy, rich, generated dataclass methods) are looked
  through: a call is attributed from the nearest rnn_cli frame to the rnn_cli function called.
- A *stay* is a stretch of calls inside one room; entering another room starts a new stay. Stays
  form a tree, each named by its path of rooms from the command's room; each distinct path is
  counted once (a loop calling the same room a thousand times is one stay).
- A *climb back up* is a stay whose room is in a higher layer than the room that called it
  (core calling formats, formats calling views, ...).
- A *return to a room already left* is a stay whose room is already on its own path, with
  another room in between (a -> b -> a).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

# Highest first. A module not listed by its full name takes its package's layer.
LAYERS = {
    "rnn_cli.cli": 4,  # the edge: flags, exit codes
    "rnn_cli.views": 3,  # rich screens
    "rnn_cli.documents": 3,  # JSON documents
    "rnn_cli.inputs": 3,  # what to run -> RunConfig and Sample (reads files through formats)
    "rnn_cli.formats": 2,  # files
    "rnn_cli.core": 1,  # numbers
    "rnn_cli": 0,  # errors, printable, stops: used by every layer
}
NAMES = {4: "cli", 3: "views/documents/inputs", 2: "formats", 1: "core", 0: "base"}
START = "manual_command"


def layer_of(room: str) -> int:
    parts = room.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYERS:
            return LAYERS[".".join(parts[:n])]
    raise KeyError(room)


def room_of(frame) -> str | None:
    name = frame.f_globals.get("__name__", "")
    return name if name == "rnn_cli" or name.startswith("rnn_cli.") else None


class Tracer:
    """Records the distinct room paths (stays) of the run, from the START function down."""

    def __init__(self, start: str = START) -> None:
        self.start = start
        self.paths: dict[tuple[str, ...], str] = {}  # room path -> the first function entered there
        self.where: dict[int, tuple[str, ...] | None] = {}  # id(frame) -> its stay's path (None: not counted)
        self.active = False

    def __call__(self, frame, event, arg) -> None:
        if event == "call":
            self._call(frame)
        elif event == "return":
            if self.active and frame.f_code.co_name == self.start and room_of(frame):
                self.active = False
            self.where.pop(id(frame), None)

    def _caller_path(self, frame) -> tuple[str, ...] | None:
        f = frame.f_back
        while f is not None:
            if id(f) in self.where:
                return self.where[id(f)]
            f = f.f_back
        return None

    def _call(self, frame) -> None:
        room = room_of(frame)
        if room is None:
            return
        code = frame.f_code
        if code.co_name == "<module>":  # an import: its module-level code is not the flow
            self.where[id(frame)] = None
            return
        if not self.active:
            if code.co_name != self.start:
                return
            self.active = True
            path = (room,)
        else:
            caller = self._caller_path(frame)
            if caller is None:
                self.where[id(frame)] = None
                return
            path = caller if caller[-1] == room else caller + (room,)
        self.paths.setdefault(path, f"{room}.{code.co_qualname}")
        self.where[id(frame)] = path


def measure(argv: list[str]) -> Tracer:
    from rnn_cli.cli import app

    tracer = Tracer()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        sys.setprofile(tracer)
        try:
            app.main(argv)
        except SystemExit:
            pass
        finally:
            sys.setprofile(None)
    return tracer


def summary(paths: dict[tuple[str, ...], str]) -> dict:
    climbs = [p for p in paths if len(p) > 1 and layer_of(p[-1]) > layer_of(p[-2])]
    returns = [p for p in paths if p[-1] in p[:-2]]
    return {
        "stays": len(paths),
        "rooms": len({r for p in paths for r in p}),
        "climbs": climbs,
        "returns": returns,
    }


def short(room: str) -> str:
    return room.removeprefix("rnn_cli.")


def main() -> None:
    args = sys.argv[1:]
    listing = "--list" in args
    argv = [a for a in args if a != "--list"] or ["manual"]
    tracer = measure(argv)
    if not tracer.paths:
        raise SystemExit(f"{START} was never called: is {argv[0]!r} the manual command?")
    s = summary(tracer.paths)
    print(f"rnn-cli {' '.join(argv)} (PYTHONPATH={os.environ.get('PYTHONPATH', '')}), from {START}:")
    print(f"  {s['stays']} stays in {s['rooms']} rooms, {len(s['climbs'])} climbs back up, "
          f"{len(s['returns'])} returns to a room already left")
    rooms = sorted({r for p in tracer.paths for r in p}, key=lambda r: (-layer_of(r), r))
    print("  rooms: " + ", ".join(f"{short(r)} ({NAMES[layer_of(r)]})" for r in rooms))
    for title, found in (("climbs back up", s["climbs"]), ("returns to a room already left", s["returns"])):
        print(f"  {title}:")
        for p in found:
            print(f"    {' > '.join(map(short, p))}   [{tracer.paths[p]}]")
    if listing:
        print("  stays:")
        for p, fn in tracer.paths.items():
            print(f"    {' > '.join(map(short, p))}   [{fn.removeprefix(p[-1] + '.')}]")


if __name__ == "__main__":
    main()

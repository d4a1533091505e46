"""A stop signal (SIGINT, SIGTERM, SIGHUP) that lands between making a file and recording it
(rnn_cli.stops.held). Bug caught: under load, SIGHUP during `--save` left a `.rnn-cli.*.tmp`
beside the target (seen once in CI's run of test_hostile_outputs): the KeyboardInterrupt raised
by the handler came after mkstemp (or the backup's os.link) made the file and before write_all
knew of it. The signal is simulated by calling the handler at exactly that moment."""

from __future__ import annotations

import os
import signal

import pytest

from rnn_cli.formats import save
from rnn_cli import stops


@pytest.fixture(autouse=True)
def _fresh_stops():
    yield
    stops.STOPPED_BY.clear()
    stops._deferred.clear()
    stops._depth[0] = 0


def _signal_right_after(monkeypatch, module, name: str, signum: int) -> None:
    real = getattr(module, name)

    def made_then_signalled(*args, **kwargs):
        out = real(*args, **kwargs)
        stops.handler(signum, None)  # as if the signal arrived the moment the file exists
        return out

    monkeypatch.setattr(module, name, made_then_signalled)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_just_after_the_temporary_is_made_leaves_nothing(signum, tmp_path, monkeypatch):
    import tempfile

    (tmp_path / "run.npz").write_bytes(b"old")
    _signal_right_after(monkeypatch, tempfile, "mkstemp", signum)
    with pytest.raises(KeyboardInterrupt):
        save.write_all([(str(tmp_path / "run.npz"), "--save", lambda f: f.write(b"new"))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]
    assert (tmp_path / "run.npz").read_bytes() == b"old"


def test_a_signal_just_after_the_backup_link_leaves_nothing_and_the_old_file(tmp_path, monkeypatch):
    (tmp_path / "run.npz").write_bytes(b"old")
    (tmp_path / "run.svg").write_bytes(b"old svg")
    _signal_right_after(monkeypatch, os, "link", signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        save.write_all([(str(tmp_path / "run.npz"), "--save", lambda f: f.write(b"new")),
                        (str(tmp_path / "run.svg"), "--export-svg", lambda f: f.write(b"new svg"))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz", "run.svg"]
    # all or none: the first rename (held with its backup) completed, then was put back
    assert (tmp_path / "run.npz").read_bytes() == b"old" and (tmp_path / "run.svg").read_bytes() == b"old svg"


def test_outside_a_held_block_the_handler_stops_at_once():
    with pytest.raises(KeyboardInterrupt):
        stops.handler(signal.SIGTERM, None)
    assert stops.STOPPED_BY == [signal.SIGTERM]
    stops.handler(signal.SIGHUP, None)  # already stopping: the cleanup is not interrupted again
    assert stops.STOPPED_BY == [signal.SIGTERM]

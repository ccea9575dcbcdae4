"""The embedded localstripe keeps its store in memory: it used to pickle all of it to disk on every write."""

from __future__ import annotations

import builtins

import pytest
from localstripe import resources

from buyit import fake_stripe


def test_a_write_touches_no_file(monkeypatch):
    monkeypatch.setattr(resources.Store, "dump_to_disk", resources.Store.dump_to_disk)  # put back afterwards
    fake_stripe.quiet()

    def no_file(*args, **kwargs):
        raise AssertionError(f"localstripe opened {args[0]!r}")
    store = resources.Store()
    with monkeypatch.context() as m:
        m.setattr(builtins, "open", no_file)
        store["payment_intent:pi_1"] = object()
        del store["payment_intent:pi_1"]
    assert store == {}


def test_localstripe_alone_still_writes_its_file(monkeypatch):
    """What `quiet` undoes is localstripe's own doing: if a release of it stops writing, `quiet` can go."""
    class Opened(Exception):
        pass
    opened = []

    def recording(path, *args, **kwargs):
        opened.append(path)
        raise Opened
    monkeypatch.setattr(builtins, "open", recording)
    with pytest.raises(Opened):
        resources.Store()["x"] = 1
    assert opened == ["/tmp/localstripe.pickle"]

"""gradlang.gc_pause: the cyclic collector is off while a program is built and a fit starts, back on
(as it was) afterwards and in the loop, also after an error; pauses nest."""

import gc

import numpy as np
import pytest

import gradlang
from gradlang.errors import GradlangError
from gradlang.gc_pause import paused

SOURCE = "data y: real[N]\nparam m: real = 0\nminimize mean((y - m)^2)\nsolve { optimizer = sgd(lr = 0.25); steps = 200; log_every = 10 }\n"


def test_pauses_nest_and_restore_the_collectors_state():
    assert gc.isenabled()
    outer = paused()
    with paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the outer pause still holds
    outer.resume()
    outer.resume()  # a second resume does nothing
    assert gc.isenabled()
    gc.disable()
    try:
        with paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


def test_compile_and_fit_pause_the_collector_and_the_loop_does_not(monkeypatch):
    from gradlang import api
    from gradlang.backend import runtime

    building, starting, seen = [], [], []
    compile_source, prepare = api.compile_source, runtime.Loop.prepare
    monkeypatch.setattr(api, "compile_source", lambda *a: (building.append(gc.isenabled()), compile_source(*a))[1])
    monkeypatch.setattr(runtime.Loop, "prepare", lambda *a: (starting.append(gc.isenabled()), prepare(*a))[1])
    program = gradlang.compile(SOURCE)
    assert gc.isenabled()
    result = program.fit(data={"y": np.array([1.0, 2.0, 3.0], np.float32)},
                         progress=lambda done, total, objective: seen.append(gc.isenabled()))
    assert building == [False] and starting and not any(starting)  # paused while building and starting
    assert gc.isenabled() and seen and all(seen)  # the progress callback runs with the collector on
    assert result.params["m"] == pytest.approx(2.0, abs=1e-3)


def test_an_error_while_building_leaves_the_collector_on():
    with pytest.raises(GradlangError):
        gradlang.compile("param x: real = 0\nminimize (x - \n")
    assert gc.isenabled()
    with pytest.raises(GradlangError):
        gradlang.compile(SOURCE).fit(data={"y": np.array([[1.0]], np.float32)})  # y is a vector
    assert gc.isenabled()

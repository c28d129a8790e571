"""The Swabian driver and its stand-in against Swabian's real package (swabian-timetagger, a
test dependency): every name the driver uses exists, every call binds to the real signature
with arguments of the types the C++ layer accepts, the stand-in offers nothing the real API
lacks, and the driver runs on the real library up to where a device is needed.

The package is a SWIG wrapper: most functions carry their C++ signature as annotations
(``inspect.signature`` works); overloaded ones are ``(*args, **kwargs)`` and document their
parameters as ``:param name:`` / ``:type name: ..., optional`` in the docstring, which is read
instead.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import numpy as np
import pytest
import Swabian.TimeTagger as real_api
from spad.drivers.swabian import SwabianTagger

from spad.errors import DeviceError
from tests.swabian_standin import STAND_INS, Call, StandInAPI

INTEGER = {"int", "long long", "unsigned int", "uint64_t", "int64_t", "timestamp_t",
           "channel_t"}


def real_object(real: str) -> Any:
    """The module (``""``) or the class of ``Swabian.TimeTagger`` named ``real``."""
    return real_api if real == "" else getattr(real_api, real)


def from_docstring(obj: Any) -> inspect.Signature:
    """The signature a SWIG ``(*args, **kwargs)`` wrapper documents with :param:/:type:."""
    doc = inspect.getdoc(obj) or ""
    optional = set(re.findall(r":type (\w+):.*optional", doc))
    params = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                default=None if name in optional else inspect.Parameter.empty)
              for name in re.findall(r":param (\w+):", doc)]
    return inspect.Signature(params)


def real_signature(owner: Any, name: str) -> tuple[inspect.Signature, bool]:
    """Signature of ``owner.name`` and whether it is a method (takes ``self``)."""
    obj = getattr(owner, name)
    is_method = inspect.isclass(owner) and not isinstance(obj, (staticmethod, classmethod))
    sig = inspect.signature(obj)
    kinds = {p.kind for p in sig.parameters.values()}
    if inspect.Parameter.VAR_POSITIONAL in kinds:       # overloaded: use the documented one
        sig = from_docstring(obj)
        if is_method:
            self_ = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
            sig = sig.replace(parameters=[self_, *sig.parameters.values()])
    return sig, is_method


def check_types(sig: inspect.Signature, bound: inspect.BoundArguments) -> list[str]:
    """Arguments the C++ layer would refuse: a float for an integer, a non-list for channels."""
    wrong = []
    for pname, value in bound.arguments.items():
        ann = sig.parameters[pname].annotation
        if not isinstance(ann, str):
            continue
        if ann in INTEGER and not isinstance(value, (int, np.integer)):
            wrong.append(f"{pname}={value!r} is not an integer ({ann})")
        elif ann == "double" and not isinstance(value, (int, float, np.integer, np.floating)):
            wrong.append(f"{pname}={value!r} is not a number ({ann})")
        elif ann == "_IntVector" and not all(isinstance(v, (int, np.integer)) for v in value):
            wrong.append(f"{pname}={value!r} is not a list of integers")
    return wrong


def check_call(call: Call) -> list[str]:
    """What is wrong with one use of the API, against the real package (empty: nothing)."""
    owner = real_object(call.real)
    where = f"{call.real or 'Swabian.TimeTagger'}.{call.name}"
    if not hasattr(owner, call.name):
        return [f"{where} does not exist in swabian-timetagger {real_api.getVersion()}"]
    if call.args is None:
        return []
    sig, is_method = real_signature(owner, call.name)
    args = (None, *call.args) if is_method else call.args
    try:
        bound = sig.bind(*args, **call.kwargs)
    except TypeError as exc:
        return [f"{where}{sig}: the driver's call ({call.args}, {call.kwargs}) does not bind: "
                f"{exc}"]
    return [f"{where}: {w}" for w in check_types(sig, bound)]


def test_the_real_package_loads_under_the_name_the_wheel_installs():
    from spad.drivers.swabian.api import load_api
    assert load_api("tagger") is real_api


@pytest.fixture(scope="module")
def driver_calls() -> list[Call]:
    """Every use of the API by the driver in a full session on the stand-in: open, T2 and T3
    streams, rates, stop, close."""
    rng = np.random.default_rng(0)
    sync = np.arange(2000, dtype=np.int64) * 50_000 + 1_000_000
    photons = np.sort(rng.integers(sync[0], sync[-1], 400))
    ts = np.concatenate([sync, photons])
    ch = np.concatenate([np.full(sync.size, 3), rng.integers(1, 3, photons.size)])
    order = np.argsort(ts, kind="stable")
    api = StandInAPI(ts[order], ch[order], {1: 3e4, 2: 2e4, 3: 2e7}, per_read=500)
    for mode in ("T2", "T3"):
        with SwabianTagger(api=api, sync_level_v=-0.2, input_levels_v=(0.5, 0.4)) as tagger:
            tagger.configure(mode, sync_divider=2, binning=3, offsets_s=(1e-9, 0.0),
                             sync_offset_s=2.5e-9)
            tagger.count_rates_hz()
            tagger.start(0.5)
            while tagger.read() is not None:
                pass
            tagger.stop()
    assert api.freed
    return list(api.log)


def test_every_name_and_call_of_the_driver_is_in_the_real_package(driver_calls):
    problems = sorted({p for call in driver_calls for p in check_call(call)})
    assert not problems, "\n".join(problems)
    used = {(c.real, c.name) for c in driver_calls}
    # the session reaches every part of the API the driver uses
    assert {("", "createTimeTagger"), ("", "TimeTagStream"), ("TimeTagger", "setInputDelay"),
            ("TimeTagStream", "getData"), ("TimeTagStreamBuffer", "hasOverflows")} <= used


def test_a_wrong_name_or_argument_is_caught():
    # the checker itself: a renamed method, a missing argument, a float for an integer
    assert check_call(Call("TimeTagger", "setInputDelays", (1, 0), {}))
    assert check_call(Call("TimeTagger", "setTriggerLevel", (1,), {}))
    assert check_call(Call("TimeTagger", "setInputDelay", (1, 2.5), {}))
    assert check_call(Call("", "TimeTagStream", (None, 10, [1.5]), {}))
    assert not check_call(Call("", "createTimeTagger", ("1234",), {}))


@pytest.mark.parametrize("stand_in", STAND_INS, ids=lambda c: c.__name__)
def test_the_stand_in_offers_only_what_the_real_api_has(stand_in):
    owner = real_object(stand_in.REAL)
    public = [n for n in vars(stand_in) if not n.startswith("_")
              and n not in ("REAL", "CONTROLS") and n not in stand_in.CONTROLS]
    assert public
    for name in public:
        assert hasattr(owner, name), f"{stand_in.__name__}.{name}: not in the real API"
        ours = vars(stand_in)[name]
        if isinstance(ours, property) or not callable(ours):
            continue
        sig, is_method = real_signature(owner, name)
        real_params = [p for p in sig.parameters.values()][1 if is_method else 0:]
        our_params = list(inspect.signature(ours).parameters.values())[1:]     # self
        names = [p.name for p in our_params]
        assert names == [p.name for p in real_params[:len(names)]], \
            f"{stand_in.__name__}.{name}{inspect.signature(ours)} vs the real {name}{sig}"
        assert all(p.default is not inspect.Parameter.empty for p in real_params[len(names):]), \
            f"{stand_in.__name__}.{name} lacks a required parameter of the real {name}{sig}"


def test_the_real_library_without_a_device_says_so():
    tagger = SwabianTagger()
    with pytest.raises(DeviceError) as err:
        tagger.open()
    message = str(err.value)
    assert message.startswith("Swabian Time Tagger: no Time Tagger connected")
    assert real_api.getVersion() in message and "not installed" not in message
    assert not tagger.is_opened()
    with pytest.raises(DeviceError, match="Swabian Time Tagger 1234567: no Time Tagger conn"):
        SwabianTagger(serial="1234567").open()


def test_the_real_connect_error_becomes_a_device_error(monkeypatch):
    # past the scan (a device that vanished in between): the real createTimeTagger's
    # RuntimeError becomes a DeviceError naming the instrument, and nothing stays claimed
    monkeypatch.setattr(real_api, "scanTimeTagger", lambda *a: ("1234567",))
    tagger = SwabianTagger(serial="1234567")
    with pytest.raises(DeviceError, match="Swabian Time Tagger 1234567: connecting: .*Time "
                                          "Tagger"):
        tagger.open()
    assert not tagger.is_opened()

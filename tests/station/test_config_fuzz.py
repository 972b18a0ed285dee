"""Fuzzing the configuration readers: station configs, machine profiles and calibrations either load or raise
one ConfigError whose every line is `file: key: message`; never another exception, never a hang."""

import copy
import re
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from excap.core.errors import ConfigError
from excap.drivers.joystick.calibration import load_calibration
from excap.drivers.machine.profiles import PROFILES_DIR, load_profile
from excap.station.config import load_station_config
from excap.station.json_schema import json_schema
from tests.support.fuzzing import fuzz_settings, tried
from tests.support.paths import REPO

PER_INPUT_LIMIT_S = 10


def _property_names(schema: Any) -> set[str]:
    names: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            names.update(node.get("properties", {}))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


KNOWN_KEYS = sorted(_property_names(json_schema("station")) | _property_names(json_schema("profile")) |
                    {"centre", "min", "max", "invert", "axes", "device"})
WORDS = ["0x2C", "1e400", "nan", "-.inf", "sim:side", "sim:top", "can0", "virtual", "socketcan", "hid", "serial",
         "j1939", "sim", "iso", "sae", "single_lever", "operator.left_x", "operator.enable", "left.ABS_X", "enable",
         "boom", "arm", "horn", "marker", "excavator_20t", "wheel_loader_20t", "/dev/video0", "exjs1", "ascii", ""]

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.sampled_from(WORDS))
values = st.recursive(scalars, lambda children: st.lists(children, max_size=4) |
                      st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=6), children, max_size=4),
                      max_leaves=10)


def _places(document: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a document, the root's own keys included."""
    found: list[tuple[Any, Any]] = []
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.extend((node, key) for key in node)
            stack.extend(node.values())
        elif isinstance(node, list):
            found.extend((node, index) for index in range(len(node)))
            stack.extend(node)
    return found


@st.composite
def mutated(draw: st.DrawFn, bases: list[dict[str, Any]]) -> dict[str, Any]:
    """A base document with one to four random edits: a value replaced, a key removed, a key added."""
    document = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 4))):
        places = _places(document)
        if not places:
            break
        container, key = draw(st.sampled_from(places))
        action = draw(st.sampled_from(("replace", "replace", "delete", "add")))
        if action == "replace":
            container[key] = draw(values)
        elif action == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[draw(st.sampled_from(KNOWN_KEYS))] = draw(values)
        else:
            container.insert(key, draw(values))
    return document


@st.composite
def garbled(draw: st.DrawFn, texts: list[str]) -> str:
    """A base YAML text with a few characters inserted, removed or replaced by YAML-significant ones."""
    text = draw(st.sampled_from(texts))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        piece = draw(st.text(alphabet=":[]{}&*!|>-#'\"\n .,0123456789abe", max_size=4))
        cut = draw(st.integers(0, 3))
        text = text[:at] + piece + text[at + cut:]
    return text


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging) when one input takes longer than `seconds`."""
    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"one input took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def load_or_one_line_per_problem(load: Callable[[Path], object], path: Path) -> None:
    with time_limit(PER_INPUT_LIMIT_S):
        try:
            load(path)
        except ConfigError as exc:
            lines = str(exc).split("\n")
            assert lines and all(re.match(rf"^{re.escape(str(path))}: \S", line) for line in lines), lines
            assert all(len(line) < 2000 for line in lines)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/ (calibration files beside the station configs, as the examples expect)."""
    target = tmp_path_factory.mktemp("fuzz") / "examples"
    shutil.copytree(REPO / "examples", target)
    return target


STATION_TEXTS = [path.read_text() for path in sorted((REPO / "examples").glob("*.yaml"))]
STATION_BASES = [yaml.safe_load(text) for text in STATION_TEXTS]
PROFILE_TEXTS = [path.read_text() for path in sorted(PROFILES_DIR.glob("*.yaml"))]
PROFILE_BASES = [yaml.safe_load(text) for text in PROFILE_TEXTS]
CALIBRATION_BASES = [yaml.safe_load(path.read_text()) for path in sorted((REPO / "examples/calibration").glob("*"))]


def _write(path: Path, document: Any) -> Path:
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


@fuzz_settings(250)
@given(document=mutated(STATION_BASES))
def test_fuzz_station_config_documents(folder: Path, document: dict[str, Any]) -> None:
    tried("station config documents")
    load_or_one_line_per_problem(load_station_config, _write(folder / "fuzzed.yaml", document))


@fuzz_settings(150)
@given(text=garbled(STATION_TEXTS))
def test_fuzz_station_config_text(folder: Path, text: str) -> None:
    tried("station config text")
    path = folder / "garbled.yaml"
    path.write_text(text, encoding="utf-8")
    load_or_one_line_per_problem(load_station_config, path)


@fuzz_settings(100)
@given(document=st.dictionaries(st.sampled_from(KNOWN_KEYS), values, max_size=8))
def test_fuzz_station_config_from_random_structures(folder: Path, document: dict[str, Any]) -> None:
    tried("station config random structures")
    load_or_one_line_per_problem(load_station_config, _write(folder / "random.yaml",
                                                             {"schema": "excap.station", **document}))


@fuzz_settings(250)
@given(document=mutated(PROFILE_BASES))
def test_fuzz_machine_profile_documents(tmp_path: Path, document: dict[str, Any]) -> None:
    tried("machine profile documents")
    load_or_one_line_per_problem(load_profile, _write(tmp_path / "machine.yaml", document))


@fuzz_settings(150)
@given(text=garbled(PROFILE_TEXTS))
def test_fuzz_machine_profile_text(tmp_path: Path, text: str) -> None:
    tried("machine profile text")
    path = tmp_path / "machine.yaml"
    path.write_text(text, encoding="utf-8")
    load_or_one_line_per_problem(load_profile, path)


@fuzz_settings(100)
@given(document=st.dictionaries(st.sampled_from(KNOWN_KEYS), values, max_size=8))
def test_fuzz_machine_profile_from_random_structures(tmp_path: Path, document: dict[str, Any]) -> None:
    tried("machine profile random structures")
    load_or_one_line_per_problem(load_profile, _write(tmp_path / "machine.yaml",
                                                      {"schema": "excap.machine_profile", **document}))


@fuzz_settings(150)
@given(document=mutated(CALIBRATION_BASES))
def test_fuzz_calibration_documents(tmp_path: Path, document: dict[str, Any]) -> None:
    tried("calibration documents")
    load_or_one_line_per_problem(load_calibration, _write(tmp_path / "calibration.yaml", document))

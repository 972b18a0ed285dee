"""User YAML is bounded: alias bombs, self-referring aliases, deep nesting, huge files fail fast with one line."""

import resource
import subprocess
import time

import pytest

from excap.core.errors import ConfigError
from excap.core.yaml_files import MAX_BYTES, load_yaml, parse_yaml
from tests.support import report
from tests.support.commands import excap_command
from tests.support.paths import REPO


def laughs(levels: int = 9) -> list[str]:
    """The classic 'billion laughs': `levels` levels of 9 aliases, 9**levels strings once expanded."""
    nodes = ['&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    nodes += [f"&a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]" for level in range(1, levels + 1)]
    return nodes


def alias_bomb(levels: int = 9) -> str:
    return "laughs: [" + ", ".join(laughs(levels)) + "]\n"


def test_an_alias_bomb_in_a_station_config_fails_fast_under_a_memory_limit(tmp_path):
    config = "\n".join(line for line in (REPO / "examples/station_sim.yaml").read_text().splitlines()
                       if not line.startswith("session:"))
    bomb = tmp_path / "station.yaml"
    bomb.write_text(f"{config}\nsession: {{operator: op-1, notes: [{', '.join(laughs())}]}}\n")
    assert bomb.stat().st_size < 3000

    def limit_memory() -> None:  # reading this file without bounds took 2.6 GB and did not end
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    started = time.monotonic()
    result = subprocess.run(excap_command("check-config", str(bomb)), capture_output=True, text=True, timeout=60,
                            preexec_fn=limit_memory)
    report.record("yaml bounds", "alias bomb check-config seconds", round(time.monotonic() - started, 2))
    assert result.returncode == 1, result.stderr
    assert result.stdout == (f"{bomb}: station config: expands to more than 100000 values (anchors and aliases): "
                             "refused\n")
    assert result.stderr == ""


@pytest.mark.parametrize(("text", "message"), [
    (alias_bomb(), "expands to more than 100000 values"),
    ("a: &a [1, *a]\n", "an alias refers to the node that contains it"),
    ("a: &a {b: *a}\n", "an alias refers to the node that contains it"),
    ("a: " + "[" * 200 + "]" * 200 + "\n", "nested deeper than 64 levels"),
    ("rate_hz: 50\nrate_hz: 5\n", "line 2: key 'rate_hz' is given twice"),
    ("n: " + "9" * 5000 + "\n", "Exceeds the limit"),
    ("a: [unclosed\n", "not valid YAML"),
    ("a: !!python/object:os.system {}\n", "not valid YAML"),
])
def test_unbounded_or_broken_documents_are_one_line(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_yaml(text, "cfg.yaml", "station config")
    assert str(caught.value).startswith("cfg.yaml: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_ordinary_anchors_and_merge_keys_still_work():
    text = "base: &base {fps: 30, width: 640}\ncameras:\n  - {<<: *base, name: a}\n  - {<<: *base, name: b}\n"
    data = parse_yaml(text, "cfg.yaml", "station config")
    assert data["cameras"] == [{"fps": 30, "width": 640, "name": "a"}, {"fps": 30, "width": 640, "name": "b"}]
    assert parse_yaml("", "cfg.yaml", "x") is None


def test_file_limits(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * MAX_BYTES + b"\n")
    with pytest.raises(ConfigError, match=r"big\.yaml: station config is larger than 1 MB: refused$"):
        load_yaml(big, "station config")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"site: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin\.yaml: not UTF-8 text \(byte 9\)$"):
        load_yaml(latin, "station config")
    with pytest.raises(ConfigError, match="is a folder"):
        load_yaml(tmp_path, "station config")
    with pytest.raises(ConfigError, match="no such file"):
        load_yaml(tmp_path / "absent.yaml", "station config")


def test_every_reader_of_user_yaml_uses_the_bounded_loader():
    readers = []
    for path in sorted([*(REPO / "capture_node").rglob("*.py"), *(REPO / "drivers").rglob("*.py")]):
        text = path.read_text(encoding="utf-8")
        if "yaml.safe_load(" in text or "yaml.load(" in text:
            readers.append(str(path.relative_to(REPO)))
    # the CLI parses one `--set KEY=VALUE` value at a time; the episode schema is excap's own file
    assert readers == ["capture_node/cli/joystick.py", "capture_node/episode/schema.py"]


def test_the_bomb_is_refused_before_any_object_is_built():
    started = time.process_time()
    with pytest.raises(ConfigError):
        parse_yaml(alias_bomb(12), "cfg.yaml", "station config")
    report.record("yaml bounds", "alias bomb (9**12 nodes) parse cpu seconds", round(time.process_time() - started, 3))

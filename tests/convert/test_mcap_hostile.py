"""Hostile episodes (tests/support/hostile_episodes.py: truncated, bit-flipped, forged) converted to MCAP: each is
a finished, readable MCAP file or one ExcapError line, and a refused conversion leaves no file behind."""

from pathlib import Path

import pytest

from excap.convert.mcap_foxglove import episode_to_foxglove_mcap
from excap.convert.mcap_ros2 import episode_to_ros2_mcap
from excap.core.errors import ExcapError
from tests.support import mcap_files
from tests.support.hostile_episodes import HostileEpisode, hostile_corpus, sample_by_category
from tests.support.report import add


@pytest.fixture(scope="module")
def hostile(sim_episode: Path, tmp_path_factory: pytest.TempPathFactory) -> list[HostileEpisode]:
    return sample_by_category(hostile_corpus(sim_episode, tmp_path_factory.mktemp("hostile")), 2)


@pytest.mark.parametrize("convert", [episode_to_foxglove_mcap, episode_to_ros2_mcap], ids=["foxglove", "ros2"])
def test_hostile_episodes_convert_or_are_refused_in_one_line(hostile: list[HostileEpisode], tmp_path: Path,
                                                            convert: object) -> None:
    refused = 0
    for number, episode in enumerate(hostile):
        out = tmp_path / f"{number}.mcap"
        try:
            report = convert(episode.path, out)  # type: ignore[operator]
        except ExcapError as exc:
            refused += 1
            assert "\n" not in str(exc), episode.name
            assert not out.exists(), episode.name
        else:
            assert mcap_files.topic_counts(out) == {k: v for k, v in report.messages.items() if v}, episode.name
        add("mcap hostile episodes", "refused" if not out.exists() else "converted")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no partial file left
    assert 0 < refused < len(hostile)

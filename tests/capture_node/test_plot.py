import cv2
import pytest

from capture_node.errors import EpisodeError
from capture_node.plot import DEFAULT_PLOT_SIGNALS, plot_signals, plot_size_px, signal_names


def test_default_plot_has_every_key_signal(sim_episode, tmp_path):
    out = plot_signals(sim_episode, tmp_path / "plots" / "signals.png", None)
    image = cv2.imread(str(out))
    assert image is not None
    assert (image.shape[1], image.shape[0]) == plot_size_px(len(DEFAULT_PLOT_SIGNALS)) == (1200, 1250)
    assert image.std() > 10  # not blank


def test_plot_of_chosen_signals(sim_episode, tmp_path):
    names = signal_names(sim_episode)
    assert "EEC1.EngSpeed" in names and "HydraulicPressures2.ArmHeadPressure" in names
    out = plot_signals(sim_episode, tmp_path / "two.png", ["EEC1.EngSpeed", "HydraulicPressures2.ArmHeadPressure"])
    image = cv2.imread(str(out))
    assert (image.shape[1], image.shape[0]) == plot_size_px(2) == (1200, 650)
    with pytest.raises(EpisodeError, match="no decoded CAN signal"):
        plot_signals(sim_episode, tmp_path / "bad.png", ["EEC1.NoSuchSignal"])

import shutil

import cv2
import h5py
import numpy as np
import pytest

from excap.core.errors import EpisodeError
from excap.review.kinds import kind_review
from excap.review.plot import plot_signals, plot_size_px, signal_names

EXCAVATOR_SIGNALS = kind_review("excavator").signals


def test_default_plot_has_every_key_signal(sim_episode, tmp_path):
    out = plot_signals(sim_episode, tmp_path / "plots" / "signals.png", None)
    image = cv2.imread(str(out))
    assert image is not None
    assert (image.shape[1], image.shape[0]) == plot_size_px(len(EXCAVATOR_SIGNALS)) == (1200, 1400)
    assert image.std() > 10  # not blank


def test_plot_of_chosen_signals(sim_episode, tmp_path):
    names = signal_names(sim_episode)
    assert "EEC1.EngSpeed" in names and "HydraulicPressures2.ArmHeadPressure" in names
    out = plot_signals(sim_episode, tmp_path / "two.png", ["EEC1.EngSpeed", "HydraulicPressures2.ArmHeadPressure"])
    image = cv2.imread(str(out))
    assert (image.shape[1], image.shape[0]) == plot_size_px(2) == (1200, 650)
    with pytest.raises(EpisodeError, match="no decoded CAN signal"):
        plot_signals(sim_episode, tmp_path / "bad.png", ["EEC1.NoSuchSignal"])


def test_plot_of_nan_and_infinite_values_and_far_timestamps(sim_episode, tmp_path):
    copy = tmp_path / sim_episode.name
    shutil.copyfile(sim_episode, copy)
    with h5py.File(copy, "r+") as handle:
        handle["control/commands"][::2] = np.nan
        handle["can/can0/decoded/EEC1/EngSpeed"][::2] = np.inf
        handle["can/can0/decoded/EEC1/EngSpeed"][1::4] = -np.inf
        swing = handle["can/can0/decoded/SwingStatus/SwingAngle"]
        swing[...] = np.nan
        handle["can/can0/decoded/BoomSSI2/t_ns"][-1] = 2**62  # far in the future (int64 differences would wrap)
    out = plot_signals(copy, tmp_path / "nan.png", None)
    image = cv2.imread(str(out))
    assert (image.shape[1], image.shape[0]) == plot_size_px(len(EXCAVATOR_SIGNALS)) and image.std() > 10

"""robomimic's documented HDF5 dataset layout, checked the way its loader (robomimic.utils.dataset.SequenceDataset
and robomimic.utils.file_utils) reads a file: `data` attrs total and env_args (JSON with env_name, type,
env_kwargs); demos `data/demo_N` (sorted by N) with attr num_samples, `obs/<key>` and `next_obs/<key>` (the same
keys and shapes; loaded by default), `actions`, `rewards`, `dones`, optionally `states`, every one num_samples
long; filter keys `mask/<name>` as arrays of byte strings naming demos (robomimic decodes them as UTF-8)."""

import json
from pathlib import Path

import h5py
import numpy as np


def _demo_problems(name: str, demo: h5py.Group) -> list[str]:
    problems = []
    if "num_samples" not in demo.attrs:
        return [f"{name}: no num_samples attribute"]
    count = int(demo.attrs["num_samples"])
    for key in ("actions", "rewards", "dones"):
        if not isinstance(demo.get(key), h5py.Dataset) or len(demo[key]) != count:
            problems.append(f"{name}/{key}: missing or not {count} long")
    if "states" in demo and len(demo["states"]) != count:
        problems.append(f"{name}/states: not {count} long")
    obs, following = demo.get("obs"), demo.get("next_obs")
    if not isinstance(obs, h5py.Group) or not isinstance(following, h5py.Group):
        return [*problems, f"{name}: obs or next_obs group missing"]
    if sorted(obs) != sorted(following):
        problems.append(f"{name}: next_obs keys {sorted(following)} differ from obs keys {sorted(obs)}")
    for key in obs:
        if obs[key].shape[0] != count or (key in following and following[key].shape != obs[key].shape):
            problems.append(f"{name}/obs/{key}: shape {obs[key].shape} does not fit {count} samples / next_obs")
    return problems


def check_robomimic_layout(path: Path) -> list[str]:
    """What in the file departs from robomimic's documented dataset structure (empty: nothing)."""
    problems: list[str] = []
    with h5py.File(path, "r") as handle:
        data = handle["data"]
        env_args = json.loads(data.attrs["env_args"])
        if not {"env_name", "type", "env_kwargs"} <= set(env_args):
            problems.append(f"env_args lacks env_name/type/env_kwargs: {sorted(env_args)}")
        demos = sorted(data, key=lambda name: int(name[5:]))  # robomimic sorts demo keys this way
        if demos != [f"demo_{i}" for i in range(len(demos))]:
            problems.append(f"demo keys are not demo_0..demo_{len(demos) - 1}: {demos}")
        total = 0
        for name in demos:
            problems += _demo_problems(name, data[name])
            total += int(data[name].attrs.get("num_samples", 0))
        if int(data.attrs["total"]) != total:
            problems.append(f"data total {int(data.attrs['total'])} != sum of num_samples {total}")
        masks = {key: [elem.decode("utf-8") for elem in np.array(handle[f"mask/{key}"][:])]
                 for key in handle.get("mask", {})}
        for key, names in masks.items():
            if not set(names) <= set(demos):
                problems.append(f"mask/{key} names unknown demos")
        if sorted(masks.get("train", []) + masks.get("valid", [])) != sorted(demos):
            problems.append("mask/train and mask/valid do not split the demos")
    return problems

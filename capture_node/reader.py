"""Reading episodes: which streams a file holds, and their basic numbers."""

import h5py


def stream_paths(handle: h5py.File) -> list[str]:
    """Every group holding a `t_ns` dataset, as a path without the leading slash."""
    found: list[str] = []

    def visit(name: str, item: h5py.HLObject) -> None:
        if isinstance(item, h5py.Group) and isinstance(item.get("t_ns"), h5py.Dataset):
            found.append(name)

    handle.visititems(visit)
    return sorted(found)

"""Reading MP4 / QuickTime files as a player sees them: the top-level atoms in file order (`ftyp`, `moov`, `mdat`,
...), and the first video stream's codec, pixel format and frame count (PyAV)."""

import struct
from pathlib import Path


def top_level_atoms(path: Path) -> list[str]:
    """The names of the file's top-level boxes, in order (sizes 0 = to the end, 1 = 64-bit, handled)."""
    names = []
    with path.open("rb") as handle:
        total = path.stat().st_size
        offset = 0
        while offset + 8 <= total:
            handle.seek(offset)
            size, name = struct.unpack(">I4s", handle.read(8))
            if size == 1:
                size = struct.unpack(">Q", handle.read(8))[0]
            elif size == 0:
                size = total - offset
            if size < 8:
                raise ValueError(f"{path}: box {name!r} at {offset} has size {size}")
            names.append(name.decode("latin-1"))
            offset += size
    return names


def video_stream(path: Path) -> dict[str, object]:
    """codec, pix_fmt, width, height and frames of the first video stream (decoded, not the header's count)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                "width": stream.codec_context.width, "height": stream.codec_context.height, "frames": frames}

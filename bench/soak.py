"""Soak: hours of rolling episodes, sampling memory, drops, disk use and CPU; JSON lines + a summary.

    python bench/soak.py [--hours 8] [--episode-minutes 10] [--interval 30] [--cameras 2] [--keep 3]
                         [--station | --config STATION.yaml] [--out DIR] [--log soak.jsonl]
    python bench/soak.py --report LOG

The same as `excap bench soak` (`excap.bench.soak` says what it does and measures): one episode after another on
the simulated station, each a whole session (devices opened and closed with it); `--station` keeps the devices
open for the whole run, as `excap station` does; `--config` soaks a station config's devices. `--hours 0.05` is a
smoke run of three minutes. Exit status 0 when no drop and no invalid episode, 1 otherwise, 130 when stopped.
"""

import sys

from excap.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["bench", "soak", *sys.argv[1:]]))

"""A Lawicel SLCAN adapter on a pseudo-terminal, run as its own process by the slcan tests.

Creates a pty pair and keeps the master side; python-can's `slcan` interface opens the slave tty.
Protocol on the tty (every command and reply ends with CR; BEL means error):

    S0..S8, s<btr>, Y<n>, ''   set bit rate            -> CR
    O / L / C                  open / listen / close   -> CR
    V / N / F                  version, serial, flags  -> V1013 / NEXCP / F00, then CR
    t<id3><dlc><data>          transmit standard frame -> z CR (BEL while closed)
    T<id8><dlc><data>          transmit extended frame -> Z CR (BEL while closed)

Control, line by line:
    stdout  `PTY <slave path>` once ready, then `CMD <command>` for every command the host sent
    stdin   one SLCAN frame per line (e.g. `t1232ABCD` or `T18FEF10081122334455667788` plus an optional
            4-hex-digit timestamp); it is sent to the host followed by CR. End of input ends the peer.

`--link PATH` also points the symlink PATH at the slave tty, so a restarted peer appears under the
same name, like a USB adapter plugged back in.
"""

import argparse
import os
import pty
import select
import sys
import tty


def reply_for(command: bytes, state: dict[str, bool]) -> bytes:
    head = command[:1]
    if command == b"" or head in (b"S", b"s", b"Y"):
        return b"\r"
    if head in (b"O", b"L"):
        state["open"] = True
        return b"\r"
    if head == b"C":
        state["open"] = False
        return b"\r"
    if head == b"V":
        return b"V1013\r"
    if head == b"N":
        return b"NEXCP\r"
    if head == b"F":
        return b"F00\r"
    if head in (b"t", b"T", b"r", b"R"):
        if not state["open"]:
            return b"\a"
        return b"z\r" if head in (b"t", b"r") else b"Z\r"
    return b"\a"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--link", default="")
    args = parser.parse_args()
    master, slave = pty.openpty()
    tty.setraw(slave)  # no echo, no line editing: bytes pass through unchanged
    slave_path = os.ttyname(slave)
    if args.link:
        temporary = f"{args.link}.{os.getpid()}"
        os.symlink(slave_path, temporary)
        os.replace(temporary, args.link)
    # The slave stays open here too, so the master never sees a hang-up while the host reopens it.
    print(f"PTY {slave_path}", flush=True)
    state = {"open": False}
    pending = b""
    to_send = b""
    stdin = sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([master, stdin], [], [])
        if stdin in ready:
            chunk = os.read(stdin, 65536)
            if not chunk:
                return 0
            to_send += chunk
            *lines, to_send = to_send.split(b"\n")
            for frame in lines:
                if frame.strip():
                    os.write(master, frame.strip() + b"\r")
        if master in ready:
            pending += os.read(master, 65536)
            *commands, pending = pending.split(b"\r")
            for command in commands:
                print(f"CMD {command.decode('ascii', 'replace')}", flush=True)
                os.write(master, reply_for(command, state))


if __name__ == "__main__":
    sys.exit(main())

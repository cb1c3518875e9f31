"""``python -m uintr_loop info``: what this machine offers and the mode chosen."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uintr_loop")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print the UINTR probe and the delivery mode")
    parser.parse_args(argv)

    import uintr_loop

    try:
        caps = uintr_loop.capabilities()
    except (uintr_loop.HardwareUnavailableError, ValueError) as exc:
        print(f"uintr_loop: {exc}", file=sys.stderr)
        return 2
    print(f"uintr_loop {uintr_loop.__version__}")
    print(caps.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())

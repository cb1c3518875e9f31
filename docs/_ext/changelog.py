"""Collect the changelog fragments in changes/ into CHANGELOG.md.

Each branch that changes something users see adds one fragment,
``changes/<branch>.md``: a Markdown bullet list in the present tense (what
changes for a user, which bug is fixed), no heading. At a release,

    make changelog VERSION=0.2.0

moves every fragment, in file-name order, into a new section at the top of
CHANGELOG.md and deletes the fragments (towncrier's newsfragments, without
the tool). ``--draft`` prints the section instead and touches nothing; the
documentation build shows that draft as "Unreleased".
"""
from __future__ import annotations

import argparse
import datetime
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHANGES = ROOT / "changes"
CHANGELOG = ROOT / "CHANGELOG.md"
MARKER = "<!-- new releases go below this line (make changelog) -->"


def fragments(folder: Path = CHANGES) -> list[Path]:
    """The fragment files, in the order they are collected."""
    return sorted(p for p in folder.glob("*.md") if p.name.lower() != "readme.md")


def render(paths: list[Path], heading: str) -> str:
    """One changelog section of ``paths`` under ``heading``. Headings inside
    a fragment move down so its top one is ``###``, below the section's
    ``##``: no fragment can end the section early or skip a level."""
    parts = [f"## {heading}", ""]
    for path in paths:
        text = path.read_text(encoding="utf-8").strip()
        levels = [len(m) for m in re.findall(r"^(#+) ", text, flags=re.M)]
        if levels:     # the fragment's top heading level becomes ### (below the ##)
            shift = 3 - min(levels)
            text = re.sub(r"^(#+) ", lambda m: "#" * max(3, len(m.group(1)) + shift) + " ", text, flags=re.M)
        if text:
            parts += [text, ""]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", help="the release being made (e.g. 0.2.0)")
    parser.add_argument("--draft", action="store_true", help="print the section, change nothing")
    args = parser.parse_args(argv)
    paths = fragments()
    if args.draft:
        sys.stdout.write(render(paths, "Unreleased"))
        return 0
    if not args.version:
        parser.error("--version is required (or --draft)")
    if not paths:
        print("changelog: no fragments in changes/", file=sys.stderr)
        return 1
    text = CHANGELOG.read_text(encoding="utf-8")
    if MARKER not in text:
        print(f"changelog: CHANGELOG.md lost its marker line {MARKER!r}", file=sys.stderr)
        return 1
    section = render(paths, f"{args.version} ({datetime.date.today().isoformat()})")
    CHANGELOG.write_text(text.replace(MARKER, MARKER + "\n\n" + section.rstrip(), 1), encoding="utf-8")
    for path in paths:
        path.unlink()
    print(f"changelog: {len(paths)} fragments into CHANGELOG.md as {args.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

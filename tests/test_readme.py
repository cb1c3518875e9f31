"""The README stays short and its links stay live: at most 150 lines (the
rest belongs in docs/), the two commands in it, and every relative link
pointing at a file of the repository (a heading anchor in a Markdown file
included)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_LINES = 150


def _anchors(markdown: str) -> set[str]:
    """GitHub/MyST heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6} (.*)", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def _links(text: str) -> list[str]:
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", t)]


def dead_links(path: Path) -> list[str]:
    """The relative links of Markdown file ``path`` that point at no file,
    or at no heading of a Markdown file."""
    dead = []
    for link in _links(path.read_text(encoding="utf-8")):
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.exists():
            dead.append(link)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text(encoding="utf-8")):
            dead.append(link)
    return dead


def test_the_readme_is_at_most_150_lines() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; move the rest into docs/"


def test_the_readme_keeps_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text


@pytest.mark.parametrize("source", ["README.md", "CHANGELOG.md"])
def test_relative_links_point_at_files_and_headings(source: str) -> None:
    path = ROOT / source
    assert _links(path.read_text(encoding="utf-8")), f"{source} links nowhere"
    assert dead_links(path) == []


def test_the_link_check_catches_a_dead_link(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A section\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n[gone](missing.md) [here](#title) [no](#nope) "
        "[there](other.md#a-section) [not there](other.md#b-section) [web](https://example.org)\n"
    )
    assert dead_links(page) == ["missing.md", "#nope", "other.md#b-section"]

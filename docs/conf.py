"""Sphinx configuration: Markdown pages (MyST), the furo theme, the API
reference from the package's docstrings and stubs, and two pages generated
from the source at build time (the architecture diagram, the unreleased
changelog fragments). Build with ``make docs``."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))          # the package, built in place by make build

import uintr_loop  # noqa: E402  (the reference needs the compiled core)

project = "uintr_loop"
author = "the uintr_loop authors"
copyright = "2026, the uintr_loop authors"
release = version = uintr_loop.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "architecture",     # docs/_ext: the diagram, drawn from the source
    "stubsig",          # docs/_ext: typed signatures of the compiled core from its .pyi stubs
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]

# Links between pages are Markdown links to .md files; headings get anchors,
# so [text](page.md#a-heading) is checked too (a missing one is a warning,
# and make docs turns warnings into errors).
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence", "deflist"]


autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
autoclass_content = "class"

html_theme = "furo"
html_title = f"uintr_loop {release}"
html_static_path: list[str] = []


def _unreleased(app) -> None:
    """docs/_generated/unreleased.md: the fragments in changes/, as the next
    release's changelog section would read (history.md includes it)."""
    out = DOCS / "_generated"
    out.mkdir(exist_ok=True)
    text = subprocess.run(
        [sys.executable, str(DOCS / "_ext" / "changelog.py"), "--draft"],
        check=True, capture_output=True, text=True,
    ).stdout
    target = out / "unreleased.md"
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")


def setup(app):
    app.connect("builder-inited", _unreleased)
highlight_language = "text"

# The compiled classes have no introspectable signature; the documenter
# Sphinx 8 has (and Sphinx 9 keeps behind this switch) lets stubsig supply
# one where there is none, the newer one only replaces one that exists.
autodoc_use_legacy_class_based = True


class _EmptyGlobFilter(logging.Filter):
    """A section's glob (guide/*, ...) picks up pages added later; until
    then it matches nothing, which is fine. Sphinx gives that warning no
    type, so suppress_warnings cannot name it: this drops it alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "didn't match any documents" not in str(record.msg)


logging.getLogger("sphinx.sphinx.directives.other").addFilter(_EmptyGlobFilter())

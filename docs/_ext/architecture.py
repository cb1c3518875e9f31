"""The architecture diagram, drawn from the source at every documentation build.

Four columns, one per layer: the Python package (``uintr_loop/*.py``), the
compiled extensions (``cython_src/**/*.pyx``), the files they include
(``*.pxi``) and the C headers (``cython_src/includes``, ``cython_src/hw``).
An edge is an import, an ``include``, a ``cimport`` of a header's ``.pxd``
or a ``#include``, read from the files themselves, so the picture cannot
drift from the code. Dependencies should run one way, from the package down
to the headers; an edge that points back up (the core importing the
package) is drawn in red and listed under the picture.

    python docs/_ext/architecture.py --text     # the same graph as text
    python docs/_ext/architecture.py out.svg    # the picture alone

As a Sphinx extension it writes ``docs/_generated/architecture.svg`` when
the build starts. No Graphviz: the layout is a small layered drawing.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("Python package", "extensions (.pyx)", "included (.pxi)", "C (.h, .c)")


@dataclass
class Graph:
    layer: dict[str, int] = field(default_factory=dict)   # node -> column
    edges: set[tuple[str, str]] = field(default_factory=set)

    def add(self, node: str, layer: int) -> None:
        self.layer.setdefault(node, layer)

    def upward(self) -> list[tuple[str, str]]:
        """Edges from the compiled side back into the Python package (the
        core importing the package). One extension importing another is not
        one of them: both are compiled code below the package."""
        return sorted((a, b) for a, b in self.edges if self.layer[a] > 0 and self.layer[b] == 0)


def _python_imports(path: Path) -> set[str]:
    """Modules of uintr_loop that ``path`` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("uintr_loop."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("uintr_loop."):
                    found.add(alias.name.split(".")[1])
    return found


_CY_IMPORT = re.compile(r"^\s*(?:from\s+uintr_loop\.(\w+)\s+c?import|import\s+uintr_loop\.(\w+))", re.M)
_CY_INCLUDE = re.compile(r'^\s*include\s+"([\w./]+\.pxi)"', re.M)
_CY_CIMPORT = re.compile(r"^\s*from\s+(\w+)\s+cimport", re.M)
_CY_EXTERN = re.compile(r'^\s*cdef\s+extern\s+from\s+"([\w./]+\.h)"', re.M)
_C_INCLUDE = re.compile(r'^\s*#\s*include\s+"([\w./]+\.h)"', re.M)


def build(root: Path = ROOT) -> Graph:
    """The dependency graph of the source tree under ``root``."""
    g = Graph()
    package = root / "uintr_loop"
    src = root / "cython_src"
    headers = {
        p.name: p for d in ("includes", "hw") for ext in ("*.h", "*.c") for p in sorted((src / d).glob(ext))
        if not p.with_suffix(".pyx").exists()      # not a file Cython generated
    }
    extensions = {p.stem: p for p in sorted(src.rglob("*.pyx")) if "model" not in p.parts}
    py_modules = {p.stem for p in package.glob("*.py")}

    def rel(path: Path) -> str:          # a node's name: its path under cython_src
        return path.resolve().relative_to(src.resolve()).as_posix()

    def resolve_include(path: Path, inc: str) -> Path:
        # Cython's include path, as setup.py gives it: the including file's
        # folder, then the repository, cython_src/includes and cython_src
        for base in (path.parent, root, src / "includes", src):
            if (base / inc).is_file():
                return base / inc
        raise FileNotFoundError(f"{path}: include {inc!r} not found")

    def python_node(name: str) -> str | None:
        if name in extensions:
            return rel(extensions[name])
        if name in py_modules:
            return f"{name}.py"
        return None

    for path in sorted(package.glob("*.py")):
        g.add(path.name, 0)
        for name in _python_imports(path):
            target = python_node(name)
            if target is not None and target != path.name:
                g.edges.add((path.name, target))
    for path in extensions.values():
        g.add(rel(path), 1)
    for h in headers:
        g.add(h, 3)

    def scan_cython(path: Path, node: str) -> None:
        text = path.read_text(encoding="utf-8")
        for inc in _CY_INCLUDE.findall(text):
            target = resolve_include(path, inc)
            g.add(rel(target), 2)
            g.edges.add((node, rel(target)))
            scan_cython(target, rel(target))
        for a, b in _CY_IMPORT.findall(text):
            target = python_node(a or b)
            if target is not None and target != node:
                g.edges.add((node, target))
        for pxd in _CY_CIMPORT.findall(text):
            if f"{pxd}.h" in headers:
                g.edges.add((node, f"{pxd}.h"))
        for h in _CY_EXTERN.findall(text):
            if Path(h).name in headers:
                g.edges.add((node, Path(h).name))

    for path in extensions.values():
        scan_cython(path, rel(path))
    for name, path in headers.items():
        for inc in _C_INCLUDE.findall(path.read_text(encoding="utf-8")):
            inc = Path(inc).name
            if inc in headers and inc != name:
                g.edges.add((name, inc))
    return g


def _order(g: Graph) -> list[list[str]]:
    """Nodes per column, ordered to keep edges short: each column sorted by
    the mean position of its neighbours, a few sweeps each way."""
    cols = [sorted(n for n, l in g.layer.items() if l == i) for i in range(len(LAYERS))]
    nbrs: dict[str, set[str]] = {n: set() for n in g.layer}
    for a, b in g.edges:
        nbrs[a].add(b)
        nbrs[b].add(a)
    for _ in range(4):
        for sweep in (range(1, len(cols)), range(len(cols) - 2, -1, -1)):
            for i in sweep:
                pos = {n: k / max(len(c), 1) for c in cols for k, n in enumerate(c)}
                def key(n: str) -> tuple[float, str]:
                    near = [pos[m] for m in nbrs[n] if g.layer[m] != i]
                    return (sum(near) / len(near) if near else pos[n], n)
                cols[i].sort(key=key)
    return cols


def svg(g: Graph) -> str:
    """The graph drawn as SVG."""
    cols = _order(g)
    box_w, box_h, gap, col_gap, top, left = 150, 22, 8, 120, 40, 90   # left: room for arcs
    rows = max(len(c) for c in cols)
    height = top + rows * (box_h + gap) + 20
    width = left + len(cols) * box_w + (len(cols) - 1) * col_gap + 20
    where: dict[str, tuple[float, float]] = {}
    for i, col in enumerate(cols):
        x = left + i * (box_w + col_gap)
        y0 = top + (rows - len(col)) * (box_h + gap) / 2
        for k, n in enumerate(col):
            where[n] = (x, y0 + k * (box_h + gap))
    up = set(g.upward())
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height:.0f}" '
        f'width="{width}" height="{height:.0f}" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    for i, title in enumerate(LAYERS):
        x = left + i * (box_w + col_gap) + box_w / 2
        out.append(f'<text x="{x}" y="22" text-anchor="middle" font-weight="bold">{escape(title)}</text>')
    for a, b in sorted(g.edges, key=lambda e: e in up):
        (xa, ya), (xb, yb) = where[a], where[b]
        ya += box_h / 2
        yb += box_h / 2
        colour, w = ("#d62728", 1.6) if (a, b) in up else ("#8899aa", 0.8)
        if g.layer[a] == g.layer[b]:            # within a column: an arc on its left
            bend = min(30 + abs(yb - ya) / 6, left - 5)
            path = f"M{xa},{ya} C{xa - bend},{ya} {xb - bend},{yb} {xb},{yb}"
        else:
            if g.layer[a] > g.layer[b]:
                xa, xb = xa, xb + box_w
            else:
                xa += box_w
            mid = (xa + xb) / 2
            path = f"M{xa},{ya} C{mid},{ya} {mid},{yb} {xb},{yb}"
        out.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="{w}" opacity="0.8"/>')
    fills = ("#e8f0fe", "#fde7d3", "#fff4c2", "#e2f5e1")
    for n, (x, y) in where.items():
        out.append(
            f'<rect x="{x}" y="{y:.1f}" width="{box_w}" height="{box_h}" rx="4" '
            f'fill="{fills[g.layer[n]]}" stroke="#555"/>'
            f'<text x="{x + box_w / 2}" y="{y + 15:.1f}" text-anchor="middle">{escape(n)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def text(g: Graph) -> str:
    """The graph as text: each node and what it depends on, then the
    upward edges."""
    lines = []
    for i, title in enumerate(LAYERS):
        lines.append(f"{title}:")
        for n in sorted(x for x, l in g.layer.items() if l == i):
            deps = sorted(b for a, b in g.edges if a == n)
            lines.append(f"  {n} -> {', '.join(deps) if deps else '(nothing)'}")
    up = g.upward()
    lines.append(f"upward edges ({len(up)}): " + (", ".join(f"{a} -> {b}" for a, b in up) or "none"))
    return "\n".join(lines) + "\n"


def markdown_upward(g: Graph) -> str:
    """The upward edges as a Markdown list, for the design page."""
    up = g.upward()
    if not up:
        return "No edge points back up: every dependency runs from the package down to the headers.\n"
    return "".join(f"- `{a}` → `{b}`\n" for a, b in up)


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    m = re.match(r"(.+?\.)(\s|$)", text)
    return (m.group(1) if m else text).rstrip(".")


def describe(path: Path) -> str:
    """What a source file is, in the words of its own header: the module
    docstring, the leading comment of a .pxi, or the first C comment (less
    its "name.h - " prefix), up to the first full stop."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        doc = ast.get_docstring(ast.parse(text)) or ""
    elif path.suffix == ".pyx":
        m = re.search(r'"""(.*?)(\n\n|""")', text, re.S)
        doc = m.group(1) if m else ""
    elif path.suffix == ".pxi":
        lines = []
        for line in text.splitlines():
            if line.startswith("# cython:"):
                continue
            if not line.startswith("#") or line.strip() == "#":
                break
            lines.append(line.lstrip("# "))
        doc = " ".join(lines)
    else:
        m = re.match(r"\s*/\*(.*?)(\*/|\n \*\n)", text, re.S)
        doc = re.sub(r"\n\s*\* ?", " ", m.group(1)) if m else ""
        doc = re.sub(r"^\s*[\w.]+\s+-\s+", "", doc)
    return _first_sentence(doc) or "(no header comment)"


def markdown_files(g: Graph, root: Path = ROOT) -> str:
    """A table per layer: each file and what its header says it is."""
    out = []
    places = {0: root / "uintr_loop", 1: root / "cython_src", 2: root / "cython_src"}
    headers = {p.name: p for d in ("includes", "hw") for p in (root / "cython_src" / d).glob("*.[hc]")}
    for i, title in enumerate(LAYERS):
        out += [f"### {title}", "", "| file | what it is |", "|---|---|"]
        for n in sorted(x for x, l in g.layer.items() if l == i):
            path = headers[n] if i == 3 else places[i] / n
            shown = path.relative_to(root).as_posix()
            out.append(f"| `{shown}` | {describe(path).replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


def generate(outdir: Path) -> None:
    """Write architecture.svg, architecture-upward.md and
    architecture-files.md into ``outdir``."""
    g = build()
    outdir.mkdir(parents=True, exist_ok=True)
    for name, content in (
        ("architecture.svg", svg(g)),
        ("architecture-upward.md", markdown_upward(g)),
        ("architecture-files.md", markdown_files(g)),
    ):
        target = outdir / name
        if not target.exists() or target.read_text(encoding="utf-8") != content:
            target.write_text(content, encoding="utf-8")


def setup(app):  # Sphinx extension entry point
    app.connect("builder-inited", lambda app: generate(Path(app.srcdir) / "_generated"))
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", help="write the SVG here")
    parser.add_argument("--text", action="store_true", help="print the graph as text")
    args = parser.parse_args(argv)
    g = build()
    if args.text or not args.out:
        sys.stdout.write(text(g))
    if args.out:
        Path(args.out).write_text(svg(g), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

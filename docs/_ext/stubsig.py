"""Signatures of the compiled core taken from its type stubs.

The compiled classes carry their docstrings (Cython keeps them), but only
untyped signatures. Their types are written once, in ``uintr_loop/*.pyi``;
this extension reads those stubs with ``ast`` and gives autodoc the typed
signature of every class and function they declare, so the reference shows
the docstring from the code and the types from the stub, neither copied.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "uintr_loop"


def _signature(fn: ast.FunctionDef, drop_first: bool) -> tuple[str, str | None]:
    args = fn.args
    if drop_first:
        if args.posonlyargs:
            args.posonlyargs = args.posonlyargs[1:]
        elif args.args:
            args.args = args.args[1:]
    ret = ast.unparse(fn.returns) if fn.returns is not None else None
    return f"({ast.unparse(args)})", ret


def stub_signatures(package: Path = PACKAGE) -> dict[str, tuple[str, str | None]]:
    """``{"module.Qual.name": (signature, return annotation)}`` for every
    class (its ``__init__``) and function in the package's ``.pyi`` stubs."""
    found: dict[str, tuple[str, str | None]] = {}
    for stub in sorted(package.glob("*.pyi")):
        module = f"{package.name}.{stub.stem}"
        tree = ast.parse(stub.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                found[f"{module}.{node.name}"] = _signature(node, drop_first=False)
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if not isinstance(item, ast.FunctionDef):
                        continue
                    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in item.decorator_list)
                    sig = _signature(item, drop_first=not static)
                    if item.name == "__init__":
                        found[f"{module}.{node.name}"] = (sig[0], None)
                    else:
                        found[f"{module}.{node.name}.{item.name}"] = sig
    return found


def merge(stub_sig: str, runtime_sig: str | None) -> str:
    """The stub's signature with each ``...`` default replaced by the default
    the compiled function really has (from its embedded signature)."""
    if not runtime_sig:
        return stub_sig
    try:
        stub = ast.parse(f"def f{stub_sig}: pass").body[0].args  # type: ignore[attr-defined]
        real = ast.parse(f"def f{runtime_sig}: pass").body[0].args  # type: ignore[attr-defined]
    except SyntaxError:
        return stub_sig

    def defaults(a: ast.arguments) -> dict[str, ast.expr]:
        positional = a.posonlyargs + a.args
        out = {arg.arg: d for arg, d in zip(positional[len(positional) - len(a.defaults):], a.defaults)}
        out.update({arg.arg: d for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None})
        return out

    real_defaults = defaults(real)
    positional = stub.posonlyargs + stub.args
    for i, d in enumerate(stub.defaults):
        name = positional[len(positional) - len(stub.defaults) + i].arg
        if isinstance(d, ast.Constant) and d.value is Ellipsis and name in real_defaults:
            stub.defaults[i] = real_defaults[name]
    for i, (arg, d) in enumerate(zip(stub.kwonlyargs, stub.kw_defaults)):
        if isinstance(d, ast.Constant) and d.value is Ellipsis and arg.arg in real_defaults:
            stub.kw_defaults[i] = real_defaults[arg.arg]
    return f"({ast.unparse(stub)})"


def setup(app):  # Sphinx extension entry point
    stubs = stub_signatures()

    def process_signature(app, what, name, obj, options, signature, return_annotation):
        module = getattr(obj, "__module__", None) or ""
        qualname = getattr(obj, "__qualname__", None) or name.rsplit(".", 1)[-1]
        hit = stubs.get(f"{module}.{qualname}")
        if hit is None:
            return None
        return merge(hit[0], signature), hit[1]

    def drop_embedded_signature(app, what, name, obj, options, lines):
        # Cython embeds "name(args)" as a docstring's first line; autodoc
        # strips it only when the name matches the documented one, which it
        # does not for a function bound under another name (the uvloop base's
        # call_soon_threadsafe is the core's mailbox_call_soon_threadsafe).
        if lines and type(obj).__name__ == "cython_function_or_method":
            if re.match(r"^[\w.]+\(.*\)(\s*->.*)?$", lines[0]):
                del lines[: 2 if len(lines) > 1 and not lines[1].strip() else 1]

    app.connect("autodoc-process-signature", process_signature)
    app.connect("autodoc-process-docstring", drop_embedded_signature)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

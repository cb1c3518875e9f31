"""The package as a user meets it: the issue's one-liner, the policy's
inherited API, and the nogil cimport API compiled into a third-party
extension exactly as docs/recipes/native-senders.md says."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import uintr_loop
from uintr_loop._bases import default_base


@pytest.mark.parametrize("base", [None, "asyncio", "uvloop"])
def test_policy_one_liner_runs_on_a_uintr_loop(base: str | None) -> None:
    policy_args = "" if base is None else f"base={base!r}"
    script = (
        "import asyncio, uintr_loop\n"
        f"asyncio.set_event_loop_policy(uintr_loop.UintrPolicy({policy_args}))\n"
        "async def main():\n"
        "    return type(asyncio.get_running_loop()).__name__\n"
        "print(asyncio.run(main()))\n"
        "asyncio.run(asyncio.sleep(0))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    expected = {"uvloop": "UintrUVLoop", "asyncio": "UintrEventLoop"}[base or default_base()]
    assert out.stdout.strip() == expected


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="child watchers are deprecated from 3.12 (probed sys.version_info)")
def test_policy_keeps_child_watchers_on_310_311() -> None:
    policy = uintr_loop.UintrPolicy()
    watcher = policy.get_child_watcher()
    assert isinstance(watcher, asyncio.AbstractChildWatcher)
    policy.set_child_watcher(watcher)
    assert policy.get_child_watcher() is watcher


@pytest.mark.skipif(sys.version_info < (3, 14), reason="policies are deprecated only from 3.14 (probed sys.version_info)")
def test_policy_warns_like_asyncio_on_314() -> None:
    with pytest.warns(DeprecationWarning, match="deprecated"):
        uintr_loop.UintrPolicy()


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="3.14 deprecates policies (probed sys.version_info)")
def test_policy_does_not_warn_before_314() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        uintr_loop.UintrPolicy()


PYX = textwrap.dedent(
    """
    # cython: language_level=3
    from uintr_loop._core cimport uintr_sender_handle, uintr_send

    def send_many(sender, int n):
        cdef const void *h = uintr_sender_handle(sender)
        cdef int i, rc = 0
        with nogil:
            for i in range(n):
                rc = uintr_send(h)
                if rc != 0:
                    break
        return rc
    """
)

SETUP = textwrap.dedent(
    """
    import os, uintr_loop
    from setuptools import setup, Extension
    from Cython.Build import cythonize
    setup(name="third_party", ext_modules=cythonize(
        [Extension("third_party", ["third_party.pyx"])],
        include_path=[os.path.dirname(uintr_loop.__path__[0])], quiet=True))
    """
)


@pytest.mark.timeout(300)
def test_third_party_extension_cimports_the_nogil_api(tmp_path: Path) -> None:
    pytest.importorskip("Cython", reason="building a cimporting extension needs Cython (probed import)")
    package_root = os.path.dirname(uintr_loop.__path__[0])
    env = {**os.environ, "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    (tmp_path / "third_party.pyx").write_text(PYX)
    (tmp_path / "setup.py").write_text(SETUP)
    build = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=tmp_path, capture_output=True, text=True, timeout=280, env=env,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    script = textwrap.dedent(
        """
        import asyncio, errno, uintr_loop, third_party
        async def main():
            got = []
            r = uintr_loop.Receiver(got.append)
            s = uintr_loop.Sender(r.vector_fd(17))
            rc = await asyncio.to_thread(third_party.send_many, s, 1000)
            while not got:
                await asyncio.sleep(0.001)
            r.close()
            # a burst may be recognised more than once while it lands: every
            # delivery is vector 17, and all 1000 posts were accepted
            return rc, sorted(set(got)), r.statistics().posted, third_party.send_many(s, 1) == -errno.ESHUTDOWN
        print(uintr_loop.run(main()))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "(0, [17], 1000, True)"

"""The compiled build: with ``TLSGATE_COMPILE=1`` the proxy's per-request modules become C extensions.

mypyc compiles these modules from the same typed sources (no second implementation): HTTP/1
parsing around llhttp, the head rewrites, the exchange and its events, where most of tlsgate's
own Python per request runs (``bench/proxy/python_path.py``: ~16 µs interpreted, ~10 compiled,
of the proxy's ~45 µs of CPU per keep-alive request). Everything else stays interpreted. Without
the variable (editable installs, the test venv) nothing is compiled.

    TLSGATE_COMPILE=1 pip install --no-build-isolation .    # needs mypy (mypyc), a C compiler, Python.h

``scripts/lib.sh`` (``build_native``) builds it for the gateway, the bench and the test suite's
second pass.
"""

from __future__ import annotations

import os
import runpy

from setuptools import setup

ext_modules = []
if os.environ.get("TLSGATE_COMPILE") == "1":
    try:
        from mypyc.build import mypycify
    except ImportError as exc:  # a clear line instead of a build traceback
        raise SystemExit("TLSGATE_COMPILE=1 needs mypy (mypyc) installed in the build environment") from exc
    modules = runpy.run_path("src/tlsgate/compiled.py")["MODULES"]  # the list lives with the code
    files = ["src/" + name.replace(".", "/") + ".py" for name in modules]
    # pyproject.toml's mypy settings apply; its sections for the modules not compiled here go unused
    ext_modules = mypycify(["--no-warn-unused-configs", *files], opt_level="3")

setup(ext_modules=ext_modules)

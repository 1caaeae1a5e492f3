"""The compat services of compat_services.py, served with rstq.sdk instead of restate-sdk.

Not a copy: the very same source is loaded with the name `restate` bound to `rstq.sdk` (the
two share their API, and that module only uses it through `import restate` / `from restate
import ...`), so both SDKs always run identical handlers.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import rstq.sdk


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        __name__ + "_impl", Path(__file__).with_name("compat_services.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("restate")
    sys.modules["restate"] = rstq.sdk
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["restate"]
        else:
            sys.modules["restate"] = saved
    return module


_impl = _load()
assert _impl.restate is rstq.sdk
app: Any = _impl.app

"""A fake `pynvml` for `scripts/gpu_check.sh --fake-nvml` (a rehearsal on a machine without
a GPU). The script puts this folder first on PYTHONPATH, so every process that imports
pynvml gets tests/energy_fakes.py's fake: one GPU at a constant 250 W on the real clock.
Never on PYTHONPATH on a real GPU machine."""

import sys
import time

from tests.energy_fakes import FakeGpu, make_pynvml

_t0 = time.perf_counter()
_gpu = FakeGpu(
    "GPU-00000000-fake-0000-0000-000000000000",
    "00000000:3B:00.0",
    lambda t: 250.0,
    lambda t: 250.0 * t,
)
_nv = make_pynvml(lambda: time.perf_counter() - _t0, [_gpu])
_nv.FAKE = True
sys.modules[__name__] = _nv  # the import statement returns the fake module

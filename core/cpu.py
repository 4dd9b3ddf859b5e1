"""CPU thread policy for inference.

numpy's bundled OpenBLAS keeps its worker threads busy-waiting for a while after every
multi-threaded call.  Inference calls numpy BLAS only for small products (the log-mel filter
bank, blend-shape meshes), but on a 2-core machine a spinning worker takes a core away from
the speech encoder (CTranslate2) and the decoder (ONNX Runtime / torch) that run right after:
the Whisper encoder measured 0.116 s instead of 0.061 s on a 10 s clip.  Two request threads
entering a multi-threaded OpenBLAS call together also hung once in the app (``inner_thread``).
So inference runs numpy's BLAS single-threaded; torch, CTranslate2 and ONNX Runtime keep
their own thread pools.
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=None)
def limit_numpy_blas() -> None:
    """Limit numpy's OpenBLAS to one thread for the rest of the process (idempotent)."""
    from threadpoolctl import ThreadpoolController
    ThreadpoolController().select(internal_api="openblas").limit(limits=1)

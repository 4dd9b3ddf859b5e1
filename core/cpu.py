"""CPU thread policy for inference.

numpy's bundled OpenBLAS keeps its worker threads busy-waiting for a while after every
multi-threaded call.  Inference calls numpy BLAS only for small products (the log-mel filter
bank, blend-shape meshes), but on a 2-core machine a spinning worker takes a core away from
the speech encoder (CTranslate2) and the decoder (ONNX Runtime / torch) that run right after:
the Whisper encoder measured 0.116 s instead of 0.061 s on a 10 s clip.  Two request threads
entering a multi-threaded OpenBLAS call together also hung once in the app (``inner_thread``).
So inference runs numpy's BLAS single-threaded; torch, CTranslate2 and ONNX Runtime keep
their own thread pools.  The corpus builder does the same for another reason: multi-threaded
OpenBLAS sums in a different order, and its output must be byte-identical for a seed.
"""
from __future__ import annotations


def limit_numpy_blas() -> None:
    """Limit every OpenBLAS loaded so far (numpy's, scipy's) to one thread for the rest of the
    process.  Call it again after importing a module that brings its own OpenBLAS: a library
    loaded later keeps its default (a few milliseconds per call, to enumerate the libraries)."""
    from threadpoolctl import ThreadpoolController
    ThreadpoolController().select(internal_api="openblas").limit(limits=1)

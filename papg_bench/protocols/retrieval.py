"""Query x gallery distance matrices on torch (CPU or CUDA), faiss-cpu or faiss-gpu, behind one function.

The full matrix is always computed (mAP needs every gallery entry; FAISS GPU top-k stops at 2048, which is
smaller than RegDB's gallery); the ranking is then taken by :func:`papg_bench.protocols.metrics.rank_order`,
so every backend ranks the same way, ties broken by gallery index.

- ``cosine`` (default): features are L2-normalised, distance = 1 - cosine similarity.
- ``euclidean``: sqrt(max(|q|^2 + |g|^2 - 2 q.g, 0)) on the raw features.

Backends: ``torch`` (matmul on the ``device``: CUDA when present unless told otherwise), ``faiss-cpu``
(``faiss.pairwise_distances``, BLAS), ``faiss-gpu`` (``faiss.pairwise_distance_gpu``, needs faiss-gpu and a
visible GPU), ``faiss`` (faiss-gpu when usable, else faiss-cpu) and ``auto`` (faiss-gpu when usable, else
torch: on a CPU torch's matmul is as exact and faster than FAISS for a full matrix).

FAISS is optional (the ``faiss`` and ``faiss-gpu`` extras); without it ``auto`` is ``torch`` and asking for
a FAISS backend is a :class:`UserError` that names the extra to install.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from papg_bench.errors import UserError

BACKENDS = ("auto", "torch", "faiss", "faiss-cpu", "faiss-gpu")
DISTANCES = ("cosine", "euclidean")
_EPS = 1e-12


FAISS_EXTRAS = {"faiss": "faiss", "faiss-cpu": "faiss", "faiss-gpu": "faiss-gpu"}


def faiss_missing_message(backend: str) -> str:
    """The one line shown when ``--backend`` asks for FAISS and the ``faiss`` module cannot be imported."""
    extra = FAISS_EXTRAS.get(backend, "faiss")
    return (f"--backend {backend} needs FAISS, which is not installed: pip install 'papg-bench[{extra}]' "
            "(or use --backend auto or torch).")


def _faiss(backend: str = "faiss") -> Any:
    try:
        import faiss
    except ImportError:
        raise UserError(faiss_missing_message(backend)) from None
    return faiss


def faiss_gpu_usable() -> bool:
    try:
        import faiss
    except ImportError:
        return False
    return hasattr(faiss, "StandardGpuResources") and getattr(faiss, "get_num_gpus", lambda: 0)() > 0


def resolve_backend(backend: str = "auto") -> str:
    """The concrete backend name recorded with a result: ``torch``, ``faiss-cpu`` or ``faiss-gpu``."""
    if backend not in BACKENDS:
        raise UserError(f"--backend {backend!r} is not one of {', '.join(BACKENDS)}.")
    if backend == "auto":
        return "faiss-gpu" if faiss_gpu_usable() else "torch"
    if backend == "torch":
        return backend
    _faiss(backend)
    if backend == "faiss":
        return "faiss-gpu" if faiss_gpu_usable() else "faiss-cpu"
    if backend == "faiss-gpu" and not faiss_gpu_usable():
        raise UserError("--backend faiss-gpu needs faiss-gpu and a visible GPU; use --backend faiss-cpu or torch.")
    return backend


def prepare_features(features: np.ndarray, distance: str = "cosine") -> np.ndarray:
    """Contiguous float32 features, L2-normalised for cosine distance (zero vectors stay zero)."""
    if distance not in DISTANCES:
        raise UserError(f"--distance {distance!r} is not one of {', '.join(DISTANCES)}.")
    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise UserError(f"features must be a 2-D array (images x dimensions), got shape {x.shape}.")
    if distance == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.maximum(norms, _EPS)
    return np.ascontiguousarray(x, dtype=np.float32)


def distance_matrix(
    query: np.ndarray,
    gallery: np.ndarray,
    distance: str = "cosine",
    backend: str = "auto",
    device: str | None = None,
    normalized: bool = False,
) -> np.ndarray:
    """Float32 (queries x gallery) distances; lower = more similar.

    ``normalized=True`` says the inputs already went through :func:`prepare_features` (saves a pass when
    the same features serve several trials).
    """
    if not normalized:
        query, gallery = prepare_features(query, distance), prepare_features(gallery, distance)
    if query.shape[1] != gallery.shape[1]:
        raise UserError(f"query features have {query.shape[1]} dimensions, gallery features {gallery.shape[1]}.")
    name = resolve_backend(backend)
    if name == "torch":
        return _torch_distances(query, gallery, distance, device)
    faiss = _faiss(name)
    if name == "faiss-gpu":
        res = faiss.StandardGpuResources()
        metric = faiss.METRIC_INNER_PRODUCT if distance == "cosine" else faiss.METRIC_L2
        raw = faiss.pairwise_distance_gpu(res, query, gallery, metric=metric)
    else:
        metric = faiss.METRIC_INNER_PRODUCT if distance == "cosine" else faiss.METRIC_L2
        raw = faiss.pairwise_distances(query, gallery, metric=metric)
    return _finish(np.asarray(raw, dtype=np.float32), distance)


def _finish(raw: np.ndarray, distance: str) -> np.ndarray:
    """Inner products -> cosine distances, squared -> plain Euclidean; numpy's correctly rounded sqrt for all
    backends (torch's vectorised CPU sqrt is not), so equal squared distances stay equal."""
    if distance == "cosine":
        return np.subtract(np.float32(1), raw, out=raw)
    return np.sqrt(np.maximum(raw, 0, out=raw), out=raw)


def _torch_distances(query: np.ndarray, gallery: np.ndarray, distance: str, device: str | None) -> np.ndarray:
    import torch

    from papg_bench.runtime import resolve_device

    dev = resolve_device(device)
    q = torch.from_numpy(query).to(dev)
    g = torch.from_numpy(gallery).to(dev)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # TF32 would change rankings against the CPU
    try:
        with torch.no_grad():
            out = q @ g.T
            if distance == "euclidean":
                out = (q * q).sum(1, keepdim=True) + (g * g).sum(1)[None, :] - 2.0 * out
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return _finish(out.cpu().numpy(), distance)

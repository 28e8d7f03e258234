"""clip_vision.ray: an embedding job spread over a Ray cluster, one task per partition.

Task ``i`` of ``n`` loads the model and runs ``ImageEmbedder.embed_partition(inputs,
output_dir, shard=(i, n))``, so the output directory holds the same files that ``n``
``clip-vision embed --output-dir DIR --shard i/n`` processes would write (byte for byte with
the same threads and batch size). Which units a partition takes depends only on the inputs
and ``n``: a task that Ray retries, or that is rerun after a failure, resumes its partition's
journal, and a partition already done is not redone.

Ray is imported inside the functions: ``import clip_vision`` never needs it.
"""

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ._clip_vision import ClipVisionError, ImageEmbedder, count_units

_Path = Union[str, "os.PathLike[str]"]

__all__ = ["embed_shards"]


def _embed_partition(
    model: str,
    activation: Optional[str],
    threads: int,
    batch_size: int,
    inputs: List[str],
    output_dir: str,
    shard: Tuple[int, int],
    files_per_unit: int,
    dtype: str,
    embed_captions: bool,
) -> Dict[str, Any]:
    """One task: partition ``shard`` of the job, on an embedder with ``threads`` workers."""
    embedder = ImageEmbedder.from_pretrained(
        model, activation=activation, threads=threads, batch_size=batch_size
    )
    return embedder.embed_partition(
        inputs,
        output_dir,
        shard=shard,
        files_per_unit=files_per_unit,
        dtype=dtype,
        embed_captions=embed_captions,
    )


def embed_shards(
    model: _Path,
    inputs: Sequence[_Path],
    output_dir: _Path,
    num_shards: Optional[int] = None,
    num_cpus: float = 2,
    batch_size: int = 32,
    dtype: str = "float16",
    files_per_unit: int = 10000,
    embed_captions: bool = False,
    activation: Optional[str] = None,
    max_retries: int = 3,
    **remote_args: Any,
) -> List[Dict[str, Any]]:
    """Embeds ``inputs`` into clip-retrieval's layout under ``output_dir`` with one Ray task
    per partition, and returns the tasks' reports (``embed_partition``'s dicts) in partition
    order.

    ``inputs``: image files and folders, or webdataset ``.tar`` shards and brace patterns
    (``"shards/{00000..00099}.tar"``), as every task sees them: on a cluster, paths of a
    file system all nodes share. ``num_shards`` defaults to the number of units (one per
    shard, or per ``files_per_unit`` image files: ``clip_vision._clip_vision.count_units``).
    Each task reserves ``num_cpus`` CPUs (``ray.remote(num_cpus=...)``) and runs that many
    worker threads (at least 1); ``max_retries`` and ``remote_args`` (``memory``,
    ``resources``, ``retry_exceptions``, ...) go to ``ray.remote``. Uses the cluster
    ``ray.init`` connected to (Ray starts a local one otherwise).

    Every task runs to its end before a failure is raised: ``ClipVisionError`` naming each
    failed partition and its error (the first one chained as ``__cause__``); the partitions
    that finished are done, so calling again redoes only the failed ones. A
    ``KeyboardInterrupt`` cancels the tasks (each keeps the rows it committed).
    """
    import ray

    if isinstance(inputs, (str, bytes, os.PathLike)):
        raise ValueError(f"inputs: expected a list of paths, got a single {type(inputs).__name__}")
    paths = [os.fspath(p) for p in inputs]
    out = os.fspath(output_dir)
    if num_shards is None:
        num_shards = count_units(paths, files_per_unit)
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f"num_shards must be a whole number ≥ 1, got {num_shards!r}")
    threads = max(1, int(num_cpus))
    task = ray.remote(num_cpus=num_cpus, max_retries=max_retries, **remote_args)(
        _embed_partition
    )
    refs = [
        task.remote(
            os.fspath(model),
            activation,
            threads,
            batch_size,
            paths,
            out,
            (i, num_shards),
            files_per_unit,
            dtype,
            embed_captions,
        )
        for i in range(num_shards)
    ]
    reports: List[Dict[str, Any]] = []
    failures: List[Tuple[int, BaseException]] = []
    try:
        for i, ref in enumerate(refs):
            try:
                reports.append(ray.get(ref))
            except Exception as e:  # a task's error, or the loss of its worker
                failures.append((i, e))
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref)
        raise
    if failures:
        lines = [f"partition {i}/{num_shards}: {_cause(e)}" for i, e in failures]
        raise ClipVisionError(
            f"{len(failures)} of {num_shards} partitions of {out} failed:\n" + "\n".join(lines)
        ) from failures[0][1]
    return reports


def _cause(error: BaseException) -> str:
    """The task's own exception of a RayTaskError (``Type: message``), else ``error``."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        error = cause
    return f"{type(error).__name__}: {error}"

"""CLIP image and text embeddings on the CPU (the Rust library clip-vision).

``ImageEmbedder`` and ``TextEmbedder`` return ``(n, d)`` float32 arrays of L2-normalised
embeddings; ``ImageEmbedder.embed_partition`` writes one partition of clip-retrieval's
layout, as ``clip-vision embed --output-dir DIR --shard i/n`` does; ``clip_vision.ray``
runs one Ray task per partition (Ray is imported only there). The classes live in the
native module ``clip_vision._clip_vision``.
"""

from ._clip_vision import ClipVisionError, ImageEmbedder, TextEmbedder, __version__

__all__ = ["ClipVisionError", "ImageEmbedder", "TextEmbedder", "__version__"]

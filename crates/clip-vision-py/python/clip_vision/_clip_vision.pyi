"""The native module of clip_vision (re-exported by the package): CLIP image and text
embeddings on the CPU (the Rust library clip-vision).

Every ``embed_*`` method returns a ``(n, d)`` float32 array of L2-normalised embeddings,
row ``i`` for input ``i``, and releases the GIL while it computes. Nothing starts a thread
at import; ``ImageEmbedder.from_pretrained(threads=N)`` starts N workers at once, otherwise
rayon's global pool starts at the first ``embed_*`` call. Pools do not survive ``fork``: a
forked child using its parent's pool gets ``ClipVisionError`` (create the embedder, or
make the first call, in the child).
"""

import os
from typing import List, Literal, Optional, Sequence, Tuple, TypedDict, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, "os.PathLike[str]"]
# A PIL.Image.Image, or a uint8 array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4).
_Image = object

class PartitionReport(TypedDict):
    """What ImageEmbedder.embed_partition did."""

    shard: str
    """The partition, "i/n"."""
    rows: int
    """Rows in the partition (resumed ones included)."""
    skipped: int
    """Items of the partition without a row."""
    resumed_rows: int
    """Rows kept from an earlier, interrupted run."""
    already_done: bool
    """The partition was done before this call (nothing was run)."""
    units: List[int]
    """The unit numbers it took (shards, or groups of files_per_unit files)."""
    skipped_items: List[Tuple[str, str]]
    """(file path or sample key, why) of each item this call skipped, and of each input
    that could not be walked."""

def count_units(inputs: Sequence[_Path], files_per_unit: int = 10000) -> int:
    """The number of units the inputs make: one per .tar shard (brace patterns expanded),
    or one per files_per_unit image files (folders walked). The default shard count of
    clip_vision.ray.embed_shards."""

class ClipVisionError(Exception):
    """An image, text or checkpoint clip_vision cannot use; the message names the file (or
    the input's position) and the problem."""

class ImageEmbedder:
    """A CLIP vision tower with its checkpoint's preprocessing (CLIPImageProcessor, value
    for value)."""

    @staticmethod
    def from_pretrained(
        model: _Path,
        activation: Optional[str] = None,
        precision: str = "f32",
        threads: Optional[int] = None,
        batch_size: int = 32,
        fast_decode: bool = False,
        exif_transpose: bool = False,
    ) -> "ImageEmbedder":
        """Loads ``model``: a checkpoint directory, a ``.safetensors`` file, or a hub id
        already in the local HF cache (nothing is downloaded).

        ``activation`` names the MLP activation for weights that do not say (OpenAI-named
        weights without config): quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast.
        ``precision``: of the vision blocks' linear layers: "f32" (exact, the default),
        "int8" (per-channel int8 weights, activations quantized per token; a quarter of
        the memory) or "bf16" (bfloat16 weights, f32 arithmetic; half the memory).
        ``threads``: a worker pool of its own (default: rayon's global pool, one thread per
        core). ``fast_decode``: decode JPEG files downscaled in the DCT domain as PIL's
        ``Image.draft`` (several times faster on large photos; vectors no longer exactly
        transformers'). ``exif_transpose``: apply files' EXIF orientation as PIL's
        ``ImageOps.exif_transpose`` (transformers ignores it). Both affect files and bytes
        decoded here, not images passed already decoded; both are recorded by
        ``embed_partition``. Raises ClipVisionError for a checkpoint it cannot load,
        ValueError for a bad argument."""
    @property
    def dim(self) -> int:
        """Length d of each embedding."""
    @property
    def fast_decode(self) -> bool:
        """Whether JPEG files are decoded downscaled (``from_pretrained(fast_decode=)``)."""
    @property
    def exif_transpose(self) -> bool:
        """Whether files' EXIF orientation is applied (``from_pretrained(exif_transpose=)``)."""
    @property
    def model_path(self) -> Optional[str]:
        """The checkpoint loaded, canonical (a hub id resolved to its snapshot)."""
    @property
    def batch_size(self) -> int: ...
    @property
    def image_size(self) -> Tuple[int, int]:
        """(height, width) the encoder takes: S of embed_pixels."""
    @overload
    def embed_paths(
        self, paths: Sequence[_Path], on_error: Literal["raise"] = "raise"
    ) -> npt.NDArray[np.float32]: ...
    @overload
    def embed_paths(
        self, paths: Sequence[_Path], on_error: Literal["skip"]
    ) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
    def embed_paths(self, paths: Sequence[_Path], on_error: str = "raise") -> object:
        """The image_embeds of image files, L2-normalised, as `clip-vision embed` writes
        them: (n, d) float32. A file that cannot be read or decoded raises ClipVisionError
        naming it; with on_error="skip" it is left out with a warning, and the result is
        (embeddings, kept_indices)."""
    @overload
    def embed_bytes(
        self, images: Sequence[bytes], on_error: Literal["raise"] = "raise"
    ) -> npt.NDArray[np.float32]: ...
    @overload
    def embed_bytes(
        self, images: Sequence[bytes], on_error: Literal["skip"]
    ) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
    def embed_bytes(self, images: Sequence[bytes], on_error: str = "raise") -> object:
        """As embed_paths, for encoded images held in memory (the bytes of JPEG, PNG, GIF,
        BMP, TIFF or WebP files)."""
    @overload
    def embed_images(
        self, images: Sequence[_Image], on_error: Literal["raise"] = "raise"
    ) -> npt.NDArray[np.float32]: ...
    @overload
    def embed_images(
        self, images: Sequence[_Image], on_error: Literal["skip"]
    ) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
    def embed_images(self, images: Sequence[_Image], on_error: str = "raise") -> object:
        """As embed_paths, for decoded images: PIL images (RGB, L and RGBA as they are,
        other modes through convert("RGBA"), as CLIPImageProcessor's convert_to_rgb) or
        uint8 arrays (H, W) / (H, W, 1) greyscale, (H, W, 3) RGB, (H, W, 4) RGBA
        (composited onto white). The same pixels give the same rows as embed_paths."""
    def embed_pixels(self, pixel_values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The image_embeds, L2-normalised (as every other method returns them), of
        preprocessed images: transformers' pixel_values, float32 (n, 3, S, S). A wrong
        dtype or shape raises ValueError; a NaN or infinite pixel ClipVisionError."""
    def embed_partition(
        self,
        inputs: Sequence[_Path],
        output_dir: _Path,
        shard: Union[None, Tuple[int, int], str] = None,
        files_per_unit: int = 10000,
        dtype: Literal["float16", "float32"] = "float16",
        embed_captions: bool = False,
    ) -> PartitionReport:
        """Embeds partition i of n (shard=(i, n) or "i/n"; None: the whole job, 0/1) into
        clip-retrieval's layout under output_dir, as `clip-vision embed --output-dir DIR
        --shard i/n` writes it, byte for byte with the same model, threads and batch size:
        img_emb/img_emb_{i}.npy, metadata/metadata_{i}.parquet, text_emb/text_emb_{i}.npy
        (embed_captions: each sample's caption through the model's text tower, loaded on
        first use), partitions/partition_{i}.done.json.

        inputs: image files and folders (sorted by path, cut into units of files_per_unit)
        or webdataset .tar shards and brace patterns (a unit each); partition i takes the
        units whose number mod n is i. A bad image or sample is skipped, not an error.
        Resumes the partition's journal; returns at once if it is done. The GIL is released;
        Ctrl-C stops it between batches (keeping the rows committed) and raises
        KeyboardInterrupt. A bad shard, dtype or files_per_unit raises ValueError; an
        output directory made with other settings or inputs, or an I/O error,
        ClipVisionError naming the file."""

class TextEmbedder:
    """CLIP's tokenizer and text tower (transformers' CLIPTokenizer and
    CLIPTextModelWithProjection)."""

    @staticmethod
    def from_pretrained(model: _Path) -> "TextEmbedder":
        """Loads the text tower and tokenizer files of a checkpoint directory (or a hub id
        in the local HF cache)."""
    @property
    def dim(self) -> int:
        """Length e of each embedding."""
    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The text_embeds of texts, L2-normalised: (n, e) float32."""

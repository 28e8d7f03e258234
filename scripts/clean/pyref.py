"""The Python reference that clean.rs copies: open_clip's own cleaning function and ftfy."""
import sys
import unicodedata

import ftfy
from open_clip.tokenizer import _clean_lower, basic_clean, whitespace_clean  # noqa: F401

VERSIONS = (f"Python {sys.version.split()[0]} (unicodedata {unicodedata.unidata_version}), "
            f"ftfy {ftfy.__version__}, open_clip.tokenizer._clean_lower")


def open_clip_clean(text: str) -> str:
    """`whitespace_clean(basic_clean(text)).lower()`, open_clip's default `clean="lower"`."""
    return _clean_lower(text)


def is_mojibake_case(text: str) -> bool:
    """Whether ftfy's `fix_encoding` step (not reproduced in Rust) changes this text."""
    return ftfy.fix_text(text) != ftfy.fix_text(text, fix_encoding=False)

"""Heuristic document filters (each a pipeline `Filter`/`Step` with its own reason codes)."""

from .blocklist import DomainBlocklist
from .gopher import GopherQuality, GopherRepetition
from .heuristics import CharRatios, HiraganaShare, MinLength, ShortLines
from .language import LanguageFilter

__all__ = [
    "CharRatios",
    "DomainBlocklist",
    "GopherQuality",
    "GopherRepetition",
    "HiraganaShare",
    "LanguageFilter",
    "MinLength",
    "ShortLines",
]

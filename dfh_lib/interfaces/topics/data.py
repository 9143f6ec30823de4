"""What chapters reach as ``dfh.data``: the face datasets of
:mod:`dfh_lib.core.data` plus the book's dataset choice
(:mod:`dfh_lib.interfaces.book_data`: ``book_splits``, ``book_dataset``).
Re-exports only."""
from ...core.data import *  # noqa: F401,F403  (the datasets' public names)
from ...core.data import __all__ as _core_names
from ...core.data import celeba, ddh, image_folder, lfw, orl, paths  # noqa: F401
from ..book_data import PROTOCOLS, book_dataset, book_face_net_protocol, book_splits, cap_dataset

__all__ = [*_core_names, "PROTOCOLS", "book_dataset", "book_splits", "cap_dataset",
           "book_face_net_protocol"]

"""A code file: the binary codes of a folder of images, saved as plain arrays.

``python -m dfh_lib index`` writes one, ``python -m dfh_lib search`` reads it.
It is an ``.npz`` of plain arrays (no pickled objects, loaded with
``allow_pickle=False``): the codes packed 8 bits a byte (:func:`~.index.pack_bits`),
the image paths relative to the indexed folder, the code length, and the
fingerprint of the training run whose network made the codes (codes of two
networks are not comparable, so a search checks it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .index import HammingIndex, pack_bits, unpack_bits

__all__ = ["FORMAT", "CodeFile"]

FORMAT = "dfh_lib.codes/1"
_FIELDS = ("format", "packed", "paths", "bits", "fingerprint", "root", "run_dir", "detect")


@dataclass(frozen=True)
class CodeFile:
    """Packed codes of ``paths`` (relative to ``root``) made by the network of
    the run ``run_dir`` (config fingerprint ``fingerprint``); ``detect``:
    whether the images were cut to their faces first."""

    packed: np.ndarray
    paths: tuple[str, ...]
    bits: int
    fingerprint: str
    root: str = ""
    run_dir: str = ""
    detect: bool = False

    def __post_init__(self):
        num_bytes = -(-self.bits // 8)
        if self.packed.dtype != np.uint8 or self.packed.shape != (len(self.paths), num_bytes):
            raise ValueError(f"packed must be uint8 of shape ({len(self.paths)}, {num_bytes}) "
                             f"for {len(self.paths)} paths of {self.bits} bits; got "
                             f"{self.packed.shape} {self.packed.dtype}")

    @classmethod
    def from_codes(cls, codes, paths, fingerprint: str, **info) -> "CodeFile":
        """From ±1 codes ``(N, bits)`` of ``paths`` (N of them)."""
        codes = torch.as_tensor(codes)
        return cls(pack_bits(codes), tuple(str(Path(p).as_posix()) for p in paths),
                   int(codes.shape[1]), fingerprint, **info)

    def __len__(self) -> int:
        return len(self.paths)

    def codes(self) -> torch.Tensor:
        """The ±1 codes ``(N, bits)`` int8."""
        return unpack_bits(self.packed, self.bits)

    def search(self, query_codes, k: int) -> list[list[tuple[str, int]]]:
        """The ``k`` nearest paths of each query code with their Hamming
        distances, ties in path order (the order the codes were stored in).
        ``k`` larger than the file is cut to its size."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer; got {k!r}")
        index = HammingIndex(self.bits)
        index.add(self.codes())
        dist, idx = index.search(query_codes, min(int(k), len(self)))
        return [[(self.paths[i], int(d)) for d, i in zip(drow.tolist(), irow.tolist())]
                for drow, irow in zip(dist, idx)]

    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``path`` (exactly that name; parent folders are made),
        via a temporary file and a rename."""
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, format=np.str_(FORMAT), packed=self.packed,
                     paths=np.array(self.paths, dtype=str), bits=np.int64(self.bits),
                     fingerprint=np.str_(self.fingerprint), root=np.str_(self.root),
                     run_dir=np.str_(self.run_dir), detect=np.bool_(self.detect))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CodeFile":
        """Read a file :meth:`save` wrote.

        Raises:
            FileNotFoundError: no such file.
            ValueError: not a code file (one line, naming it).
        """
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no code file {path} (write one with python -m dfh_lib "
                                    f"index)")
        try:
            with np.load(path, allow_pickle=False) as stored:
                if not isinstance(stored, np.lib.npyio.NpzFile) or \
                        set(stored.files) != set(_FIELDS) or stored["format"] != FORMAT:
                    raise ValueError("other contents")
                fields = {name: stored[name] for name in _FIELDS if name != "format"}
            if fields["paths"].ndim != 1 or fields["paths"].dtype.kind != "U":
                raise ValueError("paths are not strings")
            return cls(fields["packed"], tuple(fields["paths"].tolist()), int(fields["bits"]),
                       str(fields["fingerprint"]), str(fields["root"]),
                       str(fields["run_dir"]), bool(fields["detect"]))
        except Exception as err:  # numpy raises many types for foreign files
            reason = str(err).strip().split("\n", 1)[0]
            raise ValueError(f"{path} is not a dfh_lib code file (format {FORMAT}; "
                             f"{type(err).__name__}: {reason}); write one with python -m "
                             f"dfh_lib index") from err

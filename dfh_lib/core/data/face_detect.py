"""Find the face in one's own photos and crop it the way the book frames faces.

Own photos are rarely cropped faces. :func:`find_face` runs OpenCV's frontal
face Haar cascade (shipped inside the ``opencv-python-headless`` wheel:
``pip install "opencv-python-headless<5"``, imported only when used) and
returns the **crop box** around the face; :func:`crop_face` cuts it out.

**Framing.** The crop box reproduces the LFW scikit-learn crop the book
trains on (rows 70-195, columns 78-172 of a 250×250 deep-funneled image:
eyebrows to chin, height:width 4:3; see ``FRAMINGS["lfw_full"]`` in
:mod:`dfh_lib.engine.editing`). Its place relative to the Haar box was
measured on 592 LFW images whose central face the cascade found (medians;
interquartiles within ±0.035 box sides): the crop starts 0.03 box heights
below the box's top and ends 1.11 below it (the cascade's box stops above
the chin), and keeps the middle 82 % of the box's width (0.09 to 0.91). So a
photo's crop frames the face as an LFW crop does, and a network trained on
LFW crops (or on ``load_image_folder(..., detect=True)``) sees the same face
region; where the box leaves the photo the missing part is black, as the
borders of the deep-funneled LFW images.

A photo with no face or with several faces raises :class:`NoFaceError` /
:class:`SeveralFacesError` (both ``ValueError``), naming the photo, unless
``largest=True`` keeps the largest face.
"""
from __future__ import annotations

import numpy as np

__all__ = ["CROP_IN_BOX", "MissingDependencyError", "FaceDetectionError", "NoFaceError",
           "SeveralFacesError", "detect_faces", "find_face", "crop_face"]

#: the crop (top, left, bottom, right) in units of the Haar box's height
#: (rows) and width (columns), from its top-left corner (measured on LFW)
CROP_IN_BOX = (0.03, 0.09, 1.11, 0.91)
_DETECT_SIDE = 640  # photos are scaled down to this longer side for detection
_cascade = None


class MissingDependencyError(ImportError):
    """An optional package the asked-for feature needs is not installed."""


class FaceDetectionError(ValueError):
    """A photo does not hold exactly one face (``name``: the photo, ``count``: faces found)."""

    def __init__(self, message: str, name: str, count: int):
        super().__init__(message)
        self.name, self.count = name, count

    def __reduce__(self):
        return type(self), (str(self), self.name, self.count)

    @property
    def reason(self) -> str:
        """``"no face"`` or ``"<n> faces"``."""
        return "no face" if self.count == 0 else f"{self.count} faces"


class NoFaceError(FaceDetectionError):
    """No face found in a photo."""


class SeveralFacesError(FaceDetectionError):
    """Several faces found in a photo (pass ``largest=True`` to keep the largest)."""


def _face_cascade():
    """The frontal-face Haar cascade, loaded once."""
    global _cascade
    if _cascade is None:
        try:
            import cv2
        except ImportError as err:
            raise MissingDependencyError(
                "face detection needs OpenCV: pip install \"opencv-python-headless<5\"") from err
        if not hasattr(cv2, "CascadeClassifier"):
            raise MissingDependencyError(
                f"OpenCV {cv2.__version__} has no Haar cascades (OpenCV 5 dropped them): "
                f"pip install \"opencv-python-headless<5\"")
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise MissingDependencyError(f"cannot read OpenCV's face cascade {path}: "
                                         f"reinstall opencv-python-headless")
        _cascade = cascade
    return _cascade


def detect_faces(image: np.ndarray) -> np.ndarray:
    """Haar-cascade face boxes of an ``(H, W, 3)`` uint8 RGB (or ``(H, W)``
    grey) image as ``(F, 4)`` int ``(top, left, bottom, right)`` pixels,
    largest first (ties top to bottom, left to right).

    The photo is scaled down to a longer side of 640 pixels for speed; faces
    smaller than a tenth of its shorter side are ignored.
    """
    cascade = _face_cascade()
    import cv2

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise ValueError(f"image must be (H, W, 3) or (H, W) uint8; got {image.shape} "
                         f"{image.dtype}")
    grey = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image[..., :3]),
                                                      cv2.COLOR_RGB2GRAY)
    scale = min(1.0, _DETECT_SIDE / max(grey.shape))
    if scale < 1:
        grey = cv2.resize(grey, (round(grey.shape[1] * scale), round(grey.shape[0] * scale)),
                          interpolation=cv2.INTER_AREA)
    smallest = max(24, min(grey.shape) // 10)
    found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                     minSize=(smallest, smallest))
    boxes = np.array([(y, x, y + h, x + w) for x, y, w, h in np.reshape(found, (-1, 4))],
                     dtype=float).reshape(-1, 4) / scale
    boxes = np.rint(boxes).astype(int)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return boxes[np.lexsort((boxes[:, 1], boxes[:, 0], -areas))]


def find_face(image: np.ndarray, largest: bool = False, name: str = "image"
              ) -> tuple[int, int, int, int]:
    """The crop box ``(top, left, bottom, right)`` (pixels; may reach past
    the image) around the one face in ``image`` (see the module docstring).

    Raises:
        NoFaceError / SeveralFacesError: naming ``name``; with ``largest=True``
            several faces are allowed and the largest is used.
    """
    faces = detect_faces(image)
    if len(faces) == 0:
        raise NoFaceError(f"no face found in {name}", name, 0)
    if len(faces) > 1 and not largest:
        raise SeveralFacesError(f"{len(faces)} faces found in {name}; crop it to one face "
                                f"or keep the largest (--largest, largest=True)", name,
                                len(faces))
    top, left, bottom, right = faces[0]
    h, w = bottom - top, right - left
    t, l, b, r = CROP_IN_BOX
    return (top + round(t * h), left + round(l * w), top + round(b * h), left + round(r * w))


def crop_face(image: np.ndarray, largest: bool = False, name: str = "image") -> np.ndarray:
    """The face of ``image`` (``(H, W, 3)`` uint8) cut out with :func:`find_face`'s
    box, black where the box leaves the photo."""
    top, left, bottom, right = find_face(image, largest, name)
    height, width = image.shape[:2]
    crop = np.zeros((bottom - top, right - left) + image.shape[2:], dtype=image.dtype)
    src = image[max(top, 0):min(bottom, height), max(left, 0):min(right, width)]
    crop[max(-top, 0):max(-top, 0) + src.shape[0], max(-left, 0):max(-left, 0) + src.shape[1]] = src
    return crop

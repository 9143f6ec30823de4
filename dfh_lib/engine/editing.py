"""Face editing with a trained StarGAN generator, and GAN augmentation of a
face dataset: face boxes, attribute targets, edits, and the independent
classifier's reading of the attributes.

**Framing.** CelebA's aligned faces and LFW's scikit-learn crops frame a face
differently. Every image goes through one *face box* (:data:`FRAMINGS`): the
region of the LFW scikit-learn crop (rows 70-195, columns 78-172 of the
250×250 deep-funneled image: eyebrows to chin, 4:3), found in CelebA's aligned
images by matching the mean faces (normalised cross-correlation). The box is
resized to ``image_size × image_size`` (stretched 4:3 -> 1:1), so the GAN sees
the same face region from both datasets (the book's hash networks stretch the
62×47 LFW crops to squares the same way). :func:`edit` resizes the edited box
back and pastes it into the image, so edits keep the dataset's size. A masked
generator's colour image and mask are resized instead, and blended into the
image at its own resolution: where the mask is 0 the original pixels stay,
untouched by any resize.

**Targets.** ``c'`` (the target attributes) keep hair colours mutually
exclusive (:data:`~dfh_lib.nn.gan.HAIR_COLOURS`): switching one on switches
the others off.

Main entry points: :func:`edit`, :func:`flip_attribute`, :func:`augment`,
:func:`predict_attributes`. Taught in Chapter 5 (book/05_gan_augmentation.ipynb).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..core.data.dataset import FaceDataset, check_face_images
from ..nn.gan import HAIR_COLOURS, AttributeClassifier, Generator

__all__ = ["FRAMINGS", "framing_for", "face_crops", "attribute_matrix", "flip_targets",
           "split_by_identity", "edit", "flip_attribute", "attribute_gallery", "augment",
           "predict_attributes", "source_attributes"]

# face box (top, left, bottom, right) as fractions of the stored image
FRAMINGS = {
    "celeba": (37.5 / 109, 23.45 / 89, 93.5 / 109, 65.55 / 89),  # aligned, any scale
    "lfw": (0.0, 0.0, 1.0, 1.0),            # load_lfw's default crop, any resize
    "lfw_full": (70 / 250, 78 / 250, 195 / 250, 172 / 250),  # slice_=(0:250, 0:250)
    "full": (0.0, 0.0, 1.0, 1.0),           # the whole image (synthfaces)
}


# ----------------------------------------------------------------------------
# framing and attributes
# ----------------------------------------------------------------------------

def framing_for(dataset_or_name) -> str:
    """The framing of a dataset by its name: ``celeba``, ``lfw``, else ``full``."""
    name = getattr(dataset_or_name, "name", dataset_or_name)
    return name if name in ("celeba", "lfw") else "full"


def _box(framing, height: int, width: int) -> tuple[int, int, int, int]:
    """The face box of ``framing`` (a name or fractions) in whole pixels."""
    if isinstance(framing, str):
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {sorted(FRAMINGS)} or a (top, left, "
                             f"bottom, right) tuple of fractions; got {framing!r}")
        framing = FRAMINGS[framing]
    top, left, bottom, right = framing
    box = (round(top * height), round(left * width), round(bottom * height),
           round(right * width))
    if not (0 <= box[0] < box[2] <= height and 0 <= box[1] < box[3] <= width):
        raise ValueError(f"framing {framing} gives an empty or outside box {box} "
                         f"in a {height}x{width} image")
    return box


def face_crops(images: np.ndarray, size: int, framing="full") -> np.ndarray:
    """The face box of each image resized to ``size × size`` (bicubic).

    Args:
        images: (N, H, W, 3) uint8 (a FaceDataset's ``images``).
        framing: a name in :data:`FRAMINGS` or (top, left, bottom, right)
            fractions of the image.
    Returns:
        (N, size, size, 3) uint8.
    """
    from PIL import Image

    check_face_images(images)
    top, left, bottom, right = _box(framing, *images.shape[1:3])
    out = np.empty((len(images), size, size, 3), np.uint8)
    for i, image in enumerate(images):
        out[i] = np.asarray(Image.fromarray(image).resize(
            (size, size), Image.BICUBIC, box=(left, top, right, bottom)))
    return out


def _paste_back(images: np.ndarray, crops: np.ndarray, framing) -> np.ndarray:
    """``images`` with their face box replaced by ``crops`` resized back."""
    from PIL import Image

    top, left, bottom, right = _box(framing, *images.shape[1:3])
    out = images.copy()
    for i, crop in enumerate(crops):
        out[i, top:bottom, left:right] = np.asarray(
            Image.fromarray(crop).resize((right - left, bottom - top), Image.BICUBIC))
    return out


def attribute_matrix(dataset: FaceDataset, attributes: Sequence[str]) -> np.ndarray:
    """The columns ``attributes`` of ``dataset.attributes``: (N, A) float32 in {0, 1}."""
    names = list(dataset.attribute_names or [])
    missing = [a for a in attributes if a not in names]
    if dataset.attributes is None or missing:
        raise ValueError(f"dataset {dataset.name!r} has no attribute(s) "
                         f"{missing or list(attributes)}; it has {names or 'no attributes'}. "
                         f"Pick attributes it has, or predict them with an attribute "
                         f"classifier")
    return dataset.attributes[:, [names.index(a) for a in attributes]].astype(np.float32)


def _set_attribute(targets: np.ndarray, rows, column: int, value, attributes) -> None:
    """Set one attribute in place; switching a hair colour on turns the others off."""
    value = np.asarray(value, np.float32)
    if attributes[column] in HAIR_COLOURS:
        others = [j for j, a in enumerate(attributes) if a in HAIR_COLOURS and j != column]
        for j in others:
            targets[rows, j] = np.where(value > 0.5, 0.0, targets[rows, j])
    targets[rows, column] = value


def flip_targets(source: np.ndarray, attribute: str | int,
                 attributes: Sequence[str]) -> np.ndarray:
    """``source`` (N, A) with one attribute flipped (0 <-> 1) for every row,
    keeping hair colours mutually exclusive. Returns a new float32 array."""
    column = attributes.index(attribute) if isinstance(attribute, str) else int(attribute)
    targets = np.array(source, np.float32, copy=True)
    _set_attribute(targets, slice(None), column, 1.0 - targets[:, column], attributes)
    return targets


def split_by_identity(dataset: FaceDataset, test_fraction: float = 0.1,
                      seed: int = 0) -> tuple[FaceDataset, FaceDataset]:
    """(train, test): a seeded ``test_fraction`` of the identities is held out,
    so no test face belongs to a person seen in training."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1); got {test_fraction}")
    ids = np.unique(dataset.labels)
    rng = np.random.default_rng(seed)
    test_ids = rng.choice(ids, max(1, round(test_fraction * len(ids))), replace=False)
    is_test = np.isin(dataset.labels, test_ids)
    return dataset.subset(~is_test), dataset.subset(is_test)


# ----------------------------------------------------------------------------
# images <-> the networks' input range
# ----------------------------------------------------------------------------

def _to_unit(images: torch.Tensor, device) -> torch.Tensor:
    """uint8 (N, S, S, 3) -> float (N, 3, S, S) in [-1, 1] on ``device``."""
    return images.to(device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def _from_unit(x: torch.Tensor) -> np.ndarray:
    """float (N, 3, S, S) in [-1, 1] -> uint8 (N, S, S, 3) numpy."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(
        torch.uint8).permute(0, 2, 3, 1).numpy()


# ----------------------------------------------------------------------------
# editing and augmentation
# ----------------------------------------------------------------------------

@torch.no_grad()
def _in_batches(generator: Generator, crops: np.ndarray, targets: np.ndarray, batch_size: int,
                outputs=None):
    """Yield ``(start, outputs(x, c))`` over batches of uint8 crops (N, S, S, 3)
    and targets (N, A), ``x`` in [-1, 1] on G's device, G in eval mode
    (restored after); ``outputs`` defaults to ``generator`` itself."""
    device = next(generator.parameters()).device
    outputs = outputs or generator
    was_training = generator.training
    generator.eval()
    try:
        for i in range(0, len(crops), batch_size):
            x = _to_unit(torch.from_numpy(crops[i:i + batch_size]), device)
            c = torch.from_numpy(targets[i:i + batch_size]).float().to(device)
            yield i, outputs(x, c)
    finally:
        generator.train(was_training)


def _edit_crops(generator: Generator, crops: np.ndarray, targets: np.ndarray,
                batch_size: int = 256) -> torch.Tensor:
    """G applied to uint8 crops (N, S, S, 3) with targets (N, A): float
    (N, 3, S, S) in [-1, 1] on the CPU."""
    parts = [out.float().cpu() for _, out in _in_batches(generator, crops, targets, batch_size)]
    return torch.cat(parts) if parts else torch.empty(0, 3, *crops.shape[1:3])


def _blend_at_full_size(generator: Generator, images: np.ndarray, crops: np.ndarray,
                        targets: np.ndarray, framing, batch_size: int = 256) -> np.ndarray:
    """A masked generator's edit of ``images``: colour and mask are computed
    on the crops, resized to the face box and blended with the box's own
    pixels, so a mask of 0 returns the image exactly."""
    top, left, bottom, right = _box(framing, *images.shape[1:3])
    out = images.copy()
    for i, layers in _in_batches(generator, crops, targets, batch_size, generator.layers):
        colour, mask = (F.interpolate(t.float().cpu(), size=(bottom - top, right - left),
                                      mode="bilinear", align_corners=False) for t in layers)
        rows = slice(i, i + len(colour))
        box = _to_unit(torch.from_numpy(images[rows, top:bottom, left:right]), "cpu")
        out[rows, top:bottom, left:right] = _from_unit(
            Generator.compose(box, colour, mask.clamp(0, 1)))
    return out


def _edited_images(generator: Generator, images: np.ndarray, targets: np.ndarray,
                   framing, batch_size: int = 256, crops: np.ndarray | None = None
                   ) -> np.ndarray:
    """``images`` with their face box edited towards ``targets`` (crops may
    be passed when already cut at the generator's size)."""
    crops = face_crops(images, generator.image_size, framing) if crops is None else crops
    if getattr(generator, "masked", False):
        return _blend_at_full_size(generator, images, crops, targets, framing, batch_size)
    edited = _from_unit(_edit_crops(generator, crops, targets, batch_size))
    return _paste_back(images, edited, framing)


def _targets(generator: Generator, attributes, n: int, source) -> np.ndarray:
    """(N, A) float32 targets from an array, or from a {name: 0/1} dict
    applied to every image on top of ``source`` (N, A)."""
    names = list(generator.attribute_names)
    if isinstance(attributes, Mapping):
        unknown = [a for a in attributes if a not in names]
        if unknown:
            raise ValueError(f"generator edits {names}; got unknown {unknown}")
        if source is None and set(attributes) != set(names):
            raise ValueError(f"a dict that sets only {sorted(attributes)} needs the "
                             f"images' current attributes: pass source (N, {len(names)})")
        targets = np.zeros((n, len(names)), np.float32) if source is None else \
            np.array(source, np.float32, copy=True)
        for name, value in attributes.items():
            _set_attribute(targets, slice(None), names.index(name), float(value), names)
    else:
        targets = np.asarray(attributes, np.float32)
    if targets.shape != (n, len(names)):
        raise ValueError(f"targets must be (N={n}, A={len(names)}) for {names}; "
                         f"got {targets.shape}")
    return targets


def edit(generator: Generator, images: np.ndarray, attributes, source=None,
         framing="full", batch_size: int = 256) -> np.ndarray:
    """Edit faces towards target attributes.

    Args:
        images: (N, H, W, 3) uint8 (FaceDataset convention), any size.
        attributes: targets (N, A) in {0, 1} for ``generator.attribute_names``,
            or a dict ``{name: 0/1}`` applied to every image (then ``source``,
            the current (N, A) attributes, gives the unnamed ones).
        framing: the images' face box (``"celeba"``, ``"lfw"``, ``"full"``, ...):
            the box is cut out, resized to G's size, edited, resized back and
            pasted in place (a masked G: its colour and mask are resized and
            blended with the box at the image's resolution).
    Returns:
        (N, H, W, 3) uint8, pixels outside the face box unchanged.
    """
    check_face_images(images)
    targets = _targets(generator, attributes, len(images), source)
    return _edited_images(generator, images, targets, framing, batch_size)


def flip_attribute(generator: Generator, images: np.ndarray, source,
                   attributes: Sequence[str] | None = None, framing="full") -> np.ndarray:
    """One edit per attribute, each flipping that attribute of ``source``
    (N, A) (hair colours stay exclusive): (N, len(attributes), H, W, 3) uint8,
    the gallery of faces (rows) × flipped attribute (columns)."""
    names = list(generator.attribute_names)
    attributes = names if attributes is None else list(attributes)
    source = np.asarray(source, np.float32)
    out = [edit(generator, images, flip_targets(source, a, names), framing=framing)
           for a in attributes]
    return np.stack(out, axis=1) if out else np.zeros((len(images), 0, *images.shape[1:]),
                                                        np.uint8)


def attribute_gallery(generator: Generator, faces: FaceDataset, classifier=None
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """What :func:`~dfh_lib.interfaces.viz.show_edits` draws for ``faces``:
    ``(edits (N, 1 + A, H, W, 3), switched_on (N, 1 + A), columns)``. Column
    0 is the generator applied with each face's own attributes (nothing asked
    to change), then one column per attribute flipped; ``switched_on`` is NaN
    for column 0, else 1 where the flip switches the attribute on. The faces'
    attributes are their labels, else ``classifier``'s reading."""
    framing = framing_for(faces)
    source = source_attributes(generator, faces, classifier)
    same = edit(generator, faces.images, source, framing=framing)
    flips = flip_attribute(generator, faces.images, source, framing=framing)
    marks = np.column_stack([np.full(len(faces), np.nan), 1 - source])
    return (np.concatenate([same[:, None], flips], axis=1), marks,
            ["no_change", *generator.attribute_names])


def source_attributes(generator: Generator, faces: FaceDataset, classifier=None) -> np.ndarray:
    """(N, A) 0/1 attributes of ``faces`` in ``generator``'s order: their
    labels where the dataset has them, else ``classifier``'s reading."""
    return _source_attributes(faces, list(generator.attribute_names), classifier,
                              framing_for(faces))


def _source_attributes(dataset: FaceDataset, names, classifier, framing) -> np.ndarray:
    if dataset.attributes is not None and set(names) <= set(dataset.attribute_names):
        return attribute_matrix(dataset, names)
    if classifier is None:
        raise ValueError(f"dataset {dataset.name!r} has no labels for {list(names)}: pass "
                         f"classifier= (see train_attribute_classifier) to predict them")
    return predict_attributes(classifier, dataset, framing, names)


def _random_flips(source: np.ndarray, names, flippable, copies: int, rng,
                  max_flips: int) -> np.ndarray:
    """(N * copies, A) targets: each copy flips 1..max_flips distinct
    attributes, at most one of them a hair colour (two could cancel out)."""
    targets = np.repeat(source, copies, axis=0)
    columns = [names.index(a) for a in flippable]
    for row in range(len(targets)):
        k = rng.integers(1, min(max_flips, len(columns)) + 1)
        chosen, hair = [], False
        for column in rng.permutation(columns):
            if len(chosen) < k and not (hair and names[column] in HAIR_COLOURS):
                chosen.append(column)
                hair = hair or names[column] in HAIR_COLOURS
        for column in chosen:
            _set_attribute(targets, row, column, 1.0 - targets[row, column], names)
    return targets


def augment(dataset: FaceDataset, generator: Generator, copies_per_image: int = 1,
            attributes: Sequence[str] | None = None, seed: int = 0, max_flips: int = 2,
            framing=None, classifier=None, max_identity_size: int | None = None
            ) -> FaceDataset:
    """``dataset`` followed by GAN-edited copies of its images.

    Each copy of image i flips 1 to ``max_flips`` distinct ``attributes``
    (default: all the generator's), drawn with ``seed``, relative to the
    image's attributes (the dataset's labels, else ``classifier``'s
    predictions). Copies keep the **source** label and identity names (they
    show the same person), come image by image after the originals, have
    ``source_index`` = their source image's, and, where the dataset has
    attributes, the source's attributes with the edited ones set to the
    targets. ``max_identity_size``: only identities with fewer images get
    copies (the few-shot identities).
    """
    if not isinstance(copies_per_image, int) or copies_per_image < 0:
        raise ValueError(f"copies_per_image must be an int >= 0; got {copies_per_image!r}")
    names = list(generator.attribute_names)
    flippable = names if attributes is None else list(attributes)
    if not set(flippable) <= set(names) or not flippable:
        raise ValueError(f"attributes must be some of {names}; got {flippable}")
    framing = framing or framing_for(dataset)
    chosen = np.arange(len(dataset))
    if max_identity_size is not None:
        counts = np.bincount(dataset.labels, minlength=dataset.num_identities)
        chosen = np.flatnonzero(counts[dataset.labels] < max_identity_size)
    source = dataset.subset(chosen)
    if copies_per_image == 0 or len(source) == 0:
        return dataset
    current = _source_attributes(source, names, classifier, framing)
    targets = _random_flips(current, names, flippable, copies_per_image,
                            np.random.default_rng(seed), max_flips)
    images = np.repeat(source.images, copies_per_image, axis=0)
    copies = source.subset(np.repeat(np.arange(len(source)), copies_per_image))
    attrs = copies.attributes
    if attrs is not None and set(names) <= set(dataset.attribute_names):
        attrs = attrs.copy()
        attrs[:, [list(dataset.attribute_names).index(a) for a in names]] = targets
    edited = FaceDataset(edit(generator, images, targets, framing=framing), copies.labels,
                         dataset.identity_names, dataset.name, attrs,
                         dataset.attribute_names if attrs is not None else None,
                         copies.source_index)
    return dataset.concat(edited)


# ----------------------------------------------------------------------------
# the independent attribute classifier's reading
# ----------------------------------------------------------------------------

@torch.no_grad()
def _classify(classifier: AttributeClassifier, x: torch.Tensor,
              batch_size: int = 512) -> np.ndarray:
    """Predicted attributes (N, A) in {0, 1} of float images (N, 3, S, S) in [-1, 1]."""
    device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    size = classifier.image_size
    try:
        out = []
        for i in range(0, len(x), batch_size):
            batch = x[i:i + batch_size].to(device)
            if batch.shape[-1] != size:
                batch = F.interpolate(batch, size=(size, size), mode="bilinear",
                                      antialias=True, align_corners=False)
            out.append((classifier(batch) > 0).cpu().numpy())
    finally:
        classifier.train(was_training)
    return np.concatenate(out).astype(np.float32) if out else \
        np.zeros((0, len(classifier.attribute_names)), np.float32)


def predict_attributes(classifier: AttributeClassifier, dataset: FaceDataset, framing=None,
                       attributes: Sequence[str] | None = None) -> np.ndarray:
    """The classifier's attributes of ``dataset``: (N, len(attributes)) in {0, 1}."""
    names = list(classifier.attribute_names)
    attributes = names if attributes is None else list(attributes)
    if not set(attributes) <= set(names):
        raise ValueError(f"the classifier knows {names}; asked for {attributes}")
    crops = face_crops(dataset.images, classifier.image_size, framing or framing_for(dataset))
    pred = _classify(classifier, _to_unit(torch.from_numpy(crops), "cpu"))
    return pred[:, [names.index(a) for a in attributes]]


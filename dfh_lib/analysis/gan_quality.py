"""How good the GAN's edits are: the independent attribute classifier's
accuracy on real faces, the edit success rate (does an edit show the asked
attribute?) and identity preservation (does an edited face still retrieve
its own person with a hash network's codes?).

The judge is :class:`~dfh_lib.nn.gan.AttributeClassifier`, trained apart from
the GAN (:func:`dfh_lib.engine.gan_training.train_attribute_classifier`);
evaluate on labelled held-out real faces
(:func:`dfh_lib.experiments.gan_augmentation.held_out_faces`).
Taught in Chapter 5 (book/05_gan_augmentation.ipynb).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch.nn.functional as F

from ..core.data.dataset import FaceDataset
from ..core.embedding_metrics import cosine_mean_average_precision
from ..core.metrics import evaluate_retrieval, hamming_ranking
from ..engine.editing import (_classify, _edit_crops, _edited_images, _paste_back,
                              _source_attributes, attribute_matrix, face_crops,
                              flip_targets, framing_for, predict_attributes)
from ..engine.encoding import binary_codes, encode
from ..nn.gan import AttributeClassifier, Generator

__all__ = ["attribute_accuracy", "edit_success_rate", "identity_preservation"]


# ----------------------------------------------------------------------------
# the classifier's accuracy and the edits' success
# ----------------------------------------------------------------------------

def attribute_accuracy(classifier: AttributeClassifier, dataset: FaceDataset,
                       framing=None) -> dict[str, float]:
    """Per-attribute accuracy (and ``"mean"``) on labelled held-out real faces."""
    names = list(classifier.attribute_names)
    correct = predict_attributes(classifier, dataset, framing) == attribute_matrix(dataset, names)
    result = {a: float(correct[:, j].mean()) for j, a in enumerate(names)}
    return {**result, "mean": float(np.mean(list(result.values())))}


def edit_success_rate(classifier: AttributeClassifier, generator: Generator,
                      dataset: FaceDataset, attributes: Sequence[str] | None = None,
                      framing=None) -> dict[str, float]:
    """Per attribute a (and ``"mean"``): the fraction of images whose edit
    flipping a (from the dataset's labels) the classifier reads as the target
    value of a. Use labelled held-out real faces; the classifier judges the
    edited face crops at G's size."""
    names = list(generator.attribute_names)
    attributes = names if attributes is None else list(attributes)
    if not set(attributes) <= set(names) & set(classifier.attribute_names):
        raise ValueError(f"attributes must be known to both the generator {names} and the "
                         f"classifier {list(classifier.attribute_names)}; got {attributes}")
    source = attribute_matrix(dataset, names)
    crops = face_crops(dataset.images, generator.image_size, framing or framing_for(dataset))
    result = {}
    for a in attributes:
        targets = flip_targets(source, a, names)
        pred = _classify(classifier, _edit_crops(generator, crops, targets))
        column = list(classifier.attribute_names).index(a)
        result[a] = float((pred[:, column] == targets[:, names.index(a)]).mean())
    return {**result, "mean": float(np.mean(list(result.values())))}


# ----------------------------------------------------------------------------
# identity preservation: does an edited face still find its own person?
# ----------------------------------------------------------------------------

def _with_images(dataset: FaceDataset, images: np.ndarray) -> FaceDataset:
    return FaceDataset(images, dataset.labels, dataset.identity_names, dataset.name,
                       dataset.attributes, dataset.attribute_names, dataset.source_index)


def identity_preservation(model, generator: Generator, splits, classifier=None,
                          attributes: Sequence[str] | None = None, framing=None,
                          ranking: str = "hamming") -> list[dict]:
    """How often an edited query face still retrieves its own identity first.

    Each query of ``splits`` is edited once per attribute (that attribute
    flipped relative to its labels, else ``classifier``'s predictions) and
    searched, like the original, in ``splits.database`` with ``model``'s
    binary codes (Hamming ranking, ties by database index). One row per
    attribute, then ``"all"`` (every edit pooled):

    * ``top1_original`` / ``top1_edited``: fraction of queries whose rank-1
      database face has the query's identity;
    * ``kept``: of the queries whose original is right at rank 1, the
      fraction whose edit is right too (the identity-preservation rate);
    * ``mAP_original`` / ``mAP_edited``: query-vs-database mAP;
    * ``bits_changed``: mean Hamming distance between the codes of a face
      and of its edit.

    ``ranking="cosine"``: ``model`` is a face embedding network (e.g. the
    face net, :func:`~dfh_lib.engine.face_net.shipped_face_net`) and ranks
    by the cosine of its float embeddings; ``cosine_to_original`` (mean
    cosine between a face's embedding and its edit's) replaces
    ``bits_changed``.

    Two control rows come first, not part of ``"all"``: ``"(resize only)"``
    pastes back the unedited face box (what the resizing to and from the
    generator's size costs) and ``"(no flip)"`` passes each query through
    the generator with its own attributes (what the generator's
    reconstruction costs when no attribute is asked to change).
    """
    names = list(generator.attribute_names)
    attributes = names if attributes is None else list(attributes)
    if not set(attributes) <= set(names) or not attributes:
        raise ValueError(f"attributes must be some of {names}; got {attributes}")
    if ranking not in ("hamming", "cosine"):
        raise ValueError(f"ranking must be 'hamming' or 'cosine'; got {ranking!r}")
    query, database = splits.query, splits.database
    framing = framing or framing_for(query)
    source = _source_attributes(query, names, classifier, framing)
    if ranking == "hamming":
        db_codes = binary_codes(model, database)
        change = "bits_changed"
    else:
        db_codes = F.normalize(encode(model, database), dim=1)
        change = "cosine_to_original"

    def search(images):
        faces = _with_images(query, images)
        if ranking == "hamming":
            codes = binary_codes(model, faces)
            top = hamming_ranking(codes, db_codes, topk=1)[:, 0].numpy()
            mAP = evaluate_retrieval(codes, db_codes, query.labels, database.labels)["mAP"]
        else:
            codes = F.normalize(encode(model, faces), dim=1)
            top = (codes @ db_codes.T).argmax(1).numpy()
            mAP = cosine_mean_average_precision(codes, db_codes, query.labels,
                                                database.labels)
        return codes, database.labels[top] == query.labels, mAP

    def changed(codes, codes0):
        if ranking == "hamming":
            return float((codes != codes0).sum(1).float().mean())
        return float((codes * codes0).sum(1).mean())

    codes0, hit0, map0 = search(query.images)
    crops = face_crops(query.images, generator.image_size, framing)
    rows, hits = [], []
    for a in ["(resize only)", "(no flip)", *attributes]:
        if a == "(resize only)":
            edited = _paste_back(query.images, crops, framing)
        else:
            targets = source if a == "(no flip)" else flip_targets(source, a, names)
            edited = _edited_images(generator, query.images, targets, framing, crops=crops)
        codes, hit, mAP = search(edited)
        if a in attributes:
            hits.append(hit)
        rows.append({"attribute": a, "top1_original": float(hit0.mean()),
                     "top1_edited": float(hit.mean()),
                     "kept": float((hit & hit0).sum() / max(hit0.sum(), 1)),
                     "mAP_original": float(map0), "mAP_edited": float(mAP),
                     change: changed(codes, codes0)})
    pooled = np.concatenate(hits)
    both = np.tile(hit0, len(attributes))
    rows.append({"attribute": "all", "top1_original": float(hit0.mean()),
                 "top1_edited": float(pooled.mean()),
                 "kept": float((pooled & both).sum() / max(both.sum(), 1)),
                 "mAP_original": float(map0),
                 "mAP_edited": float(np.mean([r["mAP_edited"] for r in rows[2:]])),
                 change: float(np.mean([r[change] for r in rows[2:]]))})
    return rows


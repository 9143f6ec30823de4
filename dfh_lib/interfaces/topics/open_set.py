"""What Chapter 9 reaches as ``dfh.open_set``: re-exports only, each name
lives in its layer — who is seen where in LFW in
:mod:`dfh_lib.core.data.lfw_protocols`, the verification protocol in
:mod:`dfh_lib.core.embedding_metrics`, the face network trained on other
people in :mod:`dfh_lib.engine.face_net`, and the open-set comparison in
:mod:`dfh_lib.experiments.open_set`."""
from ...core.data.lfw import LfwPairs, load_lfw_pairs, load_lfw_people
from ...core.data.lfw_protocols import (OPEN_SET_IMAGES, VERIFICATION_TEST_FOLDS, FaceNetProtocol,
                                        OpenSet, face_net_protocol, lfw_people_roles,
                                        open_set_splits)
from ...core.embedding_metrics import best_threshold, verification_accuracy
from ...engine.face_net import (FACE_NET_COMMAND, face_net_report, fine_tune_face_net,
                                save_face_net, shipped_face_net, shipped_face_net_file,
                                shipped_face_net_info, train_face_net)
from ...experiments.open_set import (backbone_differences, comparison_backbones,
                                     embedding_float_map, open_set_benchmark,
                                     summarize_open_set)

__all__ = ["LfwPairs", "load_lfw_pairs", "load_lfw_people", "OPEN_SET_IMAGES",
           "VERIFICATION_TEST_FOLDS", "FaceNetProtocol", "OpenSet", "face_net_protocol",
           "lfw_people_roles", "open_set_splits", "best_threshold", "verification_accuracy",
           "FACE_NET_COMMAND", "face_net_report", "fine_tune_face_net", "save_face_net",
           "shipped_face_net", "shipped_face_net_file", "shipped_face_net_info",
           "train_face_net", "backbone_differences", "comparison_backbones",
           "embedding_float_map", "open_set_benchmark", "summarize_open_set"]

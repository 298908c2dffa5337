"""Privacy measurements beyond SSIM: faces, re-identification and hidden-detail readers.

- :mod:`privcap.privacy.face_crops` -- face-centred crops of COCO people (person keypoints)
  and of the bundled portraits;
- :mod:`privcap.privacy.faces` -- MTCNN and Haar face detectors, detection rates through
  cameras (:func:`face_detection_table`);
- :mod:`privcap.privacy.reidentification` -- dlib face embeddings, top-1 re-identification
  against a gallery of originals;
- :mod:`privcap.privacy.readers` -- the best of several adaptive readers of the synthetic
  scenes' digit tag, with prediction entropy and confusion matrix;
- :mod:`privcap.privacy.blur` -- Gaussian blur, the calibration alteration.
"""

from privcap.privacy.blur import gaussian_blur
from privcap.privacy.face_crops import (
    FaceCrop,
    FaceCrops,
    coco_face_crops,
    crop_square,
    face_box_from_keypoints,
    portrait_face_crops,
)
from privcap.privacy.faces import (
    DETECTORS,
    box_iou,
    detect_faces,
    detection_rate,
    face_detection_table,
)
from privcap.privacy.readers import (
    READERS,
    best_reader_accuracy,
    camera_reader_accuracy,
    confusion_matrix,
    mutual_information_bits,
    prediction_entropy_bits,
    render_through,
    tag_crops,
)
from privcap.privacy.reidentification import (
    face_embeddings,
    reidentification_accuracy,
    top1_reidentification,
)

__all__ = [
    "DETECTORS",
    "FaceCrop",
    "FaceCrops",
    "READERS",
    "best_reader_accuracy",
    "box_iou",
    "camera_reader_accuracy",
    "coco_face_crops",
    "confusion_matrix",
    "crop_square",
    "detect_faces",
    "detection_rate",
    "face_box_from_keypoints",
    "face_detection_table",
    "face_embeddings",
    "gaussian_blur",
    "mutual_information_bits",
    "portrait_face_crops",
    "prediction_entropy_bits",
    "reidentification_accuracy",
    "render_through",
    "tag_crops",
    "top1_reidentification",
]

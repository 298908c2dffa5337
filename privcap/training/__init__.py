"""End-to-end training of lens and captioner (paper Sec. 2, Eqs. 6-9) and Table 1.

- :mod:`~privcap.training.config` -- :class:`TrainConfig` and the presets of each profile;
- :mod:`~privcap.training.cameras` -- the four cameras of Table 1 by name, and their specs;
- :mod:`~privcap.training.data` -- data sets of each profile, references, vocabulary,
  caption choice;
- :mod:`~privcap.training.objective` -- the joint loss ``w_ce L_ce + ds_lambda L_d + w_p L_p
  + w_h L_H``;
- :mod:`~privcap.training.evaluation` -- captions, COCO metrics, SSIM of the private images,
  chance levels, beam sweeps;
- :mod:`~privcap.training.checkpoint` -- run checkpoints (atomic, ``weights_only``);
- :mod:`~privcap.training.loop` -- :func:`train` (resume, DDP, mixed precision);
- :mod:`~privcap.training.lr_search` -- the lens learning-rate search of the ``quick`` preset;
- :mod:`~privcap.training.table1` -- :func:`run_table1`, the four cameras fine-tuned from one
  clean captioner.
"""

from privcap.training.cameras import (
    CAMERA_KINDS,
    PRIVACY_CAMERAS,
    build_camera,
    camera_from_spec,
    camera_kind,
    camera_spec,
)
from privcap.training.checkpoint import (
    RUN_FORMAT,
    load_run,
    read_run_checkpoint,
    resolve_checkpoint,
    save_run_checkpoint,
)
from privcap.training.config import TrainConfig, train_config
from privcap.training.data import (
    build_vocabulary,
    collate_items,
    dataset_references,
    holdout_split,
    load_caption_data,
    load_test_data,
    select_captions,
)
from privcap.training.evaluation import (
    beam_size_sweep,
    caption_dataset,
    evaluate_camera_run,
    evaluate_captioner,
    evaluation_pass,
    random_caption_baseline,
    validation_loss,
)
from privcap.training.loop import Trainer, load_history, train, train_captioner
from privcap.training.lr_search import lr_search
from privcap.training.objective import JointModel, LossWeights, joint_loss, joint_objective
from privcap.training.table1 import TABLE1_METRICS, run_table1

__all__ = [
    "CAMERA_KINDS",
    "PRIVACY_CAMERAS",
    "RUN_FORMAT",
    "TABLE1_METRICS",
    "JointModel",
    "LossWeights",
    "TrainConfig",
    "Trainer",
    "beam_size_sweep",
    "build_camera",
    "build_vocabulary",
    "camera_from_spec",
    "camera_kind",
    "camera_spec",
    "caption_dataset",
    "collate_items",
    "dataset_references",
    "evaluate_camera_run",
    "evaluate_captioner",
    "evaluation_pass",
    "holdout_split",
    "joint_loss",
    "joint_objective",
    "load_caption_data",
    "load_history",
    "load_run",
    "load_test_data",
    "lr_search",
    "random_caption_baseline",
    "read_run_checkpoint",
    "resolve_checkpoint",
    "run_table1",
    "save_run_checkpoint",
    "select_captions",
    "train",
    "train_captioner",
    "train_config",
    "validation_loss",
]

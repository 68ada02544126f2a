"""Training loops: language models (image classifiers come with train.py)."""

from nas_tf.training.lm_trainer import LmResult
from nas_tf.training.lm_trainer import LmTrainer
from nas_tf.training.lm_trainer import train_language_model

__all__ = ["LmResult", "LmTrainer", "train_language_model"]

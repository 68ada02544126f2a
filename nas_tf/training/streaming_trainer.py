"""Final training on streamed images (``streaming_images.StreamingImages``,
ImageNet): ``ImageTrainer`` with its data read as a stream.

Steps per epoch come from the training split's example count, every epoch
is drawn from ``(seed, epoch)`` (so a resumed run sees the batches the
uninterrupted one would have), and the test accuracy is measured on the
evaluation split (ImageNet's validation images) with the original's
evaluation crop. Recipe, checkpoints and resuming are ``ImageTrainer``'s.
"""

from nas_tf.data import streaming_images
from nas_tf.training import image_trainer


class StreamingImageTrainer(image_trainer.ImageTrainer):
    """``ImageTrainer`` over ``StreamingImages``. The recipe's ``augment``
    off trains on the evaluation crop; ``cutout`` is not applied to
    streamed data and is refused."""

    def __init__(self, model, data: streaming_images.StreamingImages,
                 config: image_trainer.ImageTrainConfig, strategy,
                 logdir: str, log=print, scratch_dir=None, precision=None):
        if config.cutout:
            raise ValueError(
                f"cutout={config.cutout}: streamed datasets ({data.name}) "
                "are not cut out (no ImageNet recipe does); set --cutout=0")
        super().__init__(model, data, config, strategy, logdir, log,
                         scratch_dir, precision)

    def _steps_per_epoch(self) -> int:
        steps = self.data.num_train_examples // self.config.batch_size
        cap = self.config.steps_per_epoch
        return min(steps, cap) if cap else steps

    def _train_batches(self, epoch: int):
        cfg = self.config
        return self.data.train_dataset(cfg.batch_size, cfg.seed, epoch,
                                       augment=cfg.augment)

    def _test_batches(self):
        return (self.data.eval_dataset(self.config.batch_size),
                self.data.num_eval_examples)

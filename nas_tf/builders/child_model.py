"""The child model: a Keras functional model that carries its architecture.

``build_child(space, arch, config)`` is the one entry point; ``get_config``
holds the space, its parameters, the architecture's token string and the
child config, so ``from_config`` (and Keras saving) rebuild the same network.
"""

import keras

from nas_tf import config as config_lib
from nas_tf import spaces
from nas_tf.builders import cell_network
from nas_tf.builders import enas_macro_network
from nas_tf.builders import nasrl_network
from nas_tf.ops import layers as nas_layers

AUX_PREFIX = "aux_"


def _build_outputs(inputs, space, arch, config, progress):
    family = space.family
    if family in cell_network.FAMILIES:
        return cell_network.build(inputs, space.decode(arch), family, config,
                                  progress)
    unsupported = [f"{name}={value!r}" for name, value, default in (
        ("stem", config.stem, "cifar"), ("auxiliary", config.auxiliary, False),
        ("drop_path_rate", config.drop_path_rate, 0.0)) if value != default]
    if unsupported:
        raise ValueError(
            f"{space.name} networks support only stem='cifar', "
            f"auxiliary=False and drop_path_rate=0 (the originals have no "
            f"ImageNet stem, auxiliary head or drop path); got "
            f"{', '.join(unsupported)}")
    if family == "enas_macro":
        return enas_macro_network.build(inputs, space.decode(arch), config), None
    if family == "nasrl":
        return nasrl_network.build(inputs, space.decode(arch), config), None
    raise ValueError(f"no builder for search space family {family!r}")


@keras.saving.register_keras_serializable(package="nas_tf")
class ChildModel(keras.Model):
    """A child network built from a search-space architecture.

    Outputs logits, or ``[logits, aux_logits]`` when the config asks for an
    auxiliary head.

    Args:
      space_name: Registered search-space name.
      space_params: Parameters of that space.
      architecture: The architecture's token string in that space.
      child_config: ``ChildConfig`` fields as a dict.
    """

    def __init__(self, space_name, space_params, architecture, child_config,
                 **kwargs):
        space = spaces.get_space(space_name, **space_params)
        arch = spaces.resolve_architecture(space, architecture)
        config = config_lib.ChildConfig(**child_config)
        progress = nas_layers.DropPathProgress()
        inputs = keras.Input(
            (config.image_size, config.image_size, config.image_channels),
            name="images")
        logits, aux_logits = _build_outputs(inputs, space, arch, config,
                                            progress)
        outputs = logits if aux_logits is None else [logits, aux_logits]
        kwargs.setdefault("name", f"{space_name}_child")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.space = space
        self.architecture = arch
        self.child_config = config
        self._drop_path_progress = progress
        self._arch_text = space.format(arch)

    def set_drop_path_progress(self, progress: float) -> None:
        """Sets how far training is (0..1) for scheduled drop path."""
        self._drop_path_progress.assign(progress)

    def get_config(self):
        return {
            "name": self.name,
            "space_name": self.space.name,
            "space_params": dict(self.space.params),
            "architecture": self._arch_text,
            "child_config": self.child_config.to_dict(),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        params = config["space_params"]
        # JSON round trips turn tuples into lists.
        config["space_params"] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        return cls(**config)


def build_child(space, arch, config) -> ChildModel:
    """Builds the Keras child model of ``arch`` (an Architecture of ``space``)."""
    return ChildModel(space.name, space.params, space.format(arch),
                      config.to_dict())


def is_auxiliary(layer) -> bool:
    return layer.name.startswith(AUX_PREFIX)

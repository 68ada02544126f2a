"""Child-network builders."""

from nas_tf.builders.child_model import ChildModel
from nas_tf.builders.child_model import build_child

__all__ = ["ChildModel", "build_child"]

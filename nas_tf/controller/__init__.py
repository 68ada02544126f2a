"""The controller and how it learns.

``lstm_controller``: the Keras LSTM that samples token strings of any search
space; ``controller_config``: its settings, with each original's as
presets; ``reinforce``: REINFORCE with a moving-average baseline, the
entropy bonus and ENAS's skip penalty.
"""

from nas_tf.controller.controller_config import CONTROLLER_PRESETS
from nas_tf.controller.controller_config import ControllerConfig
from nas_tf.controller.lstm_controller import Controller
from nas_tf.controller.lstm_controller import ControllerOutput
from nas_tf.controller.lstm_controller import plan_steps

__all__ = ["CONTROLLER_PRESETS", "Controller", "ControllerConfig",
           "ControllerOutput", "plan_steps"]

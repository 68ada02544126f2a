"""Every preset in configs/ loads through absl in the script it is for, and
gives the configuration that script builds from it (nothing is trained,
no data is loaded, no full-size network is built)."""

import json
import pathlib
import subprocess
import sys

import pytest

from conftest import ROOT
from conftest import script_env
from nas_tf import spaces

CONFIGS = pathlib.Path(ROOT) / "configs"

# An architecture for each final preset: the one its comments name, or a
# published architecture of its space.
FINAL_ARCHITECTURES = {
    "darts_cifar10_final": "DARTS_V2",
    "darts_imagenet_final": "DARTS_V2",
    "darts_ptb_final": "DARTS_V2_RNN",
    "enas_lm_ptb_final": "ENAS_LM",
    "enas_macro_cifar10_final": "ENAS_macro",
    "enas_micro_cifar10_final": "ENAS_micro",
    "enas_ptb_final": "ENAS_PTB_SCRIPT",
    "nasnet_cifar10_final": "NASNet-A",
    "nasnet_imagenet_large_final": "NASNet-A",
    "nasnet_imagenet_mobile_final": "NASNet-A",
    "nasrl_ptb_final": "NASCell",
    "quickstart_train": "1 2 1 3 3 1 1 3 3 1 1 1",
    "enas_quickstart_train": "ENAS_micro",
    "darts_quickstart_train": "DARTS_V2",
}


def _search_presets():
    return sorted(p.stem for p in CONFIGS.glob("*.cfg")
                  if p.stem.endswith(("_search", "quickstart")))


def _final_presets():
    return sorted(p.stem for p in CONFIGS.glob("*.cfg")
                  if p.stem.endswith(("_final", "quickstart_train")))


# Runs in a fresh interpreter per script: imports the script, which defines
# its flags, then for each preset reads the command line `--preset=NAME` as
# the script does (presets expanded, nested ones too) and builds what the
# script builds from it. Prints one JSON line per preset: what was built, or
# the error.
_PROGRAM = r'''
import importlib
import json
import sys

sys.path.insert(0, "scripts")
script = importlib.import_module(sys.argv[1])
from absl import flags
import command_line
import common_flags

FLAGS = flags.FLAGS


def search():
    from nas_tf.search import search_config
    train_only = [name for name in common_flags.final_training_only_flags()
                  if FLAGS[name].value is not None]
    if train_only and FLAGS.strategy not in ("enas", "darts"):
        raise ValueError(f"train.py flags in a search preset: {train_only}")
    config = script.config_from_flags()
    search_config.check_search_config(config)
    # The retrain command printed at the end names this preset.
    if FLAGS.train_preset:
        command_line.preset_path(FLAGS.train_preset)
    return {"space": config.space, "kind": config.kind}


def train():
    request = script.request_from_flags()
    return {"space": request.space.name, "preset": request.preset,
            "recipe": type(request.recipe).__name__}


def describe():
    from nas_tf import spaces
    space = common_flags.space_from_flags()
    spaces.resolve_architecture(space, FLAGS.arch)
    config = common_flags.model_config_from_flags(space)
    return {"space": space.name, "model": type(config).__name__}


name, cases = sys.argv[1], json.loads(sys.argv[2])
build = {"search": search, "train": train, "describe": describe}[name]
for preset, arch in cases.items():
    # The command line the script would get; train.py names its run's
    # preset after the --preset in it.
    sys.argv = [f"scripts/{name}.py", f"--preset={preset}"]
    if arch:
        sys.argv.append(f"--arch={arch}")
    try:
        FLAGS.unparse_flags()
        command_line._read_presets.clear()
        FLAGS(command_line.expand_argv(sys.argv))
        print(json.dumps({"preset": preset, "built": build()}))
    except Exception as e:
        print(json.dumps({"preset": preset,
                          "error": f"{type(e).__name__}: {e}"}))
'''


def _cases(script):
    if script == "search":
        return {preset: None for preset in _search_presets()}
    missing = sorted(set(_final_presets()) - set(FINAL_ARCHITECTURES))
    assert not missing, f"name an architecture for {missing}"
    return {preset: FINAL_ARCHITECTURES[preset]
            for preset in _final_presets()}


def _preset_flag(preset, name):
    """The value a preset file itself gives flag ``--name``, if any."""
    for line in (CONFIGS / f"{preset}.cfg").read_text().splitlines():
        if line.startswith(f"--{name}="):
            return line.split("=", 1)[1]
    return None


def test_every_preset_is_for_a_script():
    presets = {p.stem for p in CONFIGS.glob("*.cfg")}
    assert presets == set(_search_presets()) | set(_final_presets())
    assert "quickstart" in presets and "quickstart_train" in presets


@pytest.mark.slow
@pytest.mark.parametrize("script", ["search", "train", "describe"])
def test_presets_load_in_their_script(script):
    cases = _cases(script)
    result = subprocess.run(
        [sys.executable, "-c", _PROGRAM, script, json.dumps(cases)],
        cwd=ROOT, env=script_env(), capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()
             if line.startswith("{")]
    assert [line["preset"] for line in lines] == list(cases)
    errors = {line["preset"]: line["error"] for line in lines
              if "error" in line}
    assert not errors
    for line in lines:
        built = line["built"]
        # The preset's own space, not the scripts' default, and the kind of
        # model and recipe its networks take.
        space = _preset_flag(line["preset"], "space")
        if space is not None:
            assert built["space"] == space
        recurrent = spaces.SPACES.get(built["space"]).family == "recurrent"
        if script == "search":
            assert built["kind"] == ("text" if recurrent else "image")
        if script == "train":
            assert built["preset"] == line["preset"]
            assert built["recipe"] == ("LmTrainConfig" if recurrent
                                       else "ImageTrainConfig")
        if script == "describe":
            assert built["model"] == ("LmConfig" if recurrent
                                      else "ChildConfig")

"""scripts/train.py as a user runs it: a finished run, its directory, its
export and classification, bad flags."""

import json

import pytest
from tensorboard.backend.event_processing import event_accumulator

from conftest import run_script
from conftest import run_script_cases

ARCH = "1 2 1 3 3 1 1 3 3 1 1 1"  # nasrl_cnn, 3 layers
SHORT = ["--flagfile=configs/quickstart_train.cfg", "--epochs=3",
         "--steps_per_epoch=8", "--eval_every=1"]


@pytest.mark.slow
def test_train_writes_a_finished_run_and_refuses_to_redo_it(tmp_path):
    logdir = tmp_path / "final"
    code, out, err = run_script("train.py", *SHORT, f"--arch={ARCH}",
                                f"--logdir={logdir}")
    assert code == 0, err
    assert "epoch 3/3" in out and "test acc" in out and "ETA" in out
    assert "scripts/export.py" in out
    names = {p.name for p in logdir.iterdir()}
    assert {"flags.cfg", "train_config.json", "result.json",
            "checkpoints"} <= names
    result = json.loads((logdir / "result.json").read_text())
    assert result["architecture"] == ARCH
    assert result["preset"] == "quickstart_train"
    # 24 steps of the quickstart recipe learn dominoes: 0.664 of the 500
    # test images at --seed=0 (chance: 1/3, about +-0.02).
    assert result["test_accuracy"] >= 0.5
    events = event_accumulator.EventAccumulator(
        str(logdir), size_guidance={"tensors": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "train/accuracy", "train/learning_rate",
            "test/accuracy"} <= set(tags["tensors"]) | set(tags["scalars"])
    assert "_hparams_/session_start_info" in tags["tensors"]

    # Run again, the finished run is reported, not trained again; a
    # different recipe is refused (in one interpreter: TensorFlow starts
    # once).
    again, relaunched, other_recipe = run_script_cases(
        "train.py", [*SHORT, f"--arch={ARCH}", f"--logdir={logdir}"],
        # The run's own flags.cfg relaunches it (another preset name, same
        # run).
        [f"--flagfile={logdir}/flags.cfg"],
        [*SHORT, f"--arch={ARCH}", "--weight_decay=0", f"--logdir={logdir}"])
    code, out, err = again
    assert code == 0 and "has finished training" in out
    code, out, err = relaunched
    assert code == 0 and "has finished training" in out, err
    code, _, err = other_recipe
    assert code == 2 and "different recipe" in err

    export = tmp_path / "export"
    code, out, err = run_script("export.py", f"--logdir={logdir}",
                                f"--export_dir={export}")
    assert code == 0, err
    code, out, err = run_script("classify.py", f"--export_dir={export}",
                                "--num_images=4")
    assert code == 0, err
    assert out.count("predicted") == 4 and "/4 correct" in out
    # Labels and predictions with the dataset's class names.
    assert out.count("(horizontal)") + out.count("(vertical)") + \
        out.count("(diagonal)") == 8
    assert ARCH in out


@pytest.mark.slow
def test_bad_train_flags_fail_at_once(tmp_path):
    # The train.py command lines in one interpreter (TensorFlow starts
    # once); classify.py's in a process of its own.
    (arch_and_file, bad_arch, bad_schedule, text_dataset, missing_file,
     unprepared, too_few_classes) = run_script_cases(
        "train.py",
        [*SHORT, f"--arch={ARCH}", f"--arch_file={tmp_path}/best_arch.txt",
         f"--logdir={tmp_path / 'a'}"],
        [*SHORT, "--arch=9 9 9", f"--logdir={tmp_path / 'b'}"],
        [*SHORT, f"--arch={ARCH}", "--lr_schedule=step",
         f"--logdir={tmp_path}/c"],
        [*SHORT, f"--arch={ARCH}", "--dataset=synthetic_text",
         f"--logdir={tmp_path}/d"],
        [*SHORT, f"--arch_file={tmp_path}/missing.txt",
         f"--logdir={tmp_path}/e"],
        ["--preset=darts_imagenet_final", "--arch=DARTS_V2",
         f"--data_dir={tmp_path}/t", f"--logdir={tmp_path}/f"],
        ["--preset=darts_cifar10_final", "--dataset=dominoes",
         "--arch=DARTS_V2", f"--logdir={tmp_path}/g"])
    code, _, err = arch_and_file
    assert code == 2 and "exactly one of --arch" in err
    code, _, err = bad_arch
    assert code == 2 and "train.py: error:" in err
    code, _, err = bad_schedule
    assert code == 2 and "kind='step'" in err
    code, _, err = text_dataset
    assert code == 2 and "is a text corpus" in err
    code, _, err = missing_file
    assert err.splitlines() == [f"train.py: error: --arch_file={tmp_path}/"
                                "missing.txt: No such file or directory"]
    assert code == 2
    # A preset whose dataset is not prepared stops at once, saying how to
    # provide it.
    code, _, err = unprepared
    assert code == 2 and "'imagenet2012' is not prepared" in err
    assert "ILSVRC2012_img_train.tar" in err and "Traceback" not in err
    code, _, err = too_few_classes
    assert code == 2 and "--num_classes=10 (it has 3)" in err
    assert not any((tmp_path / name).exists() for name in "acdefg")
    code, _, err = run_script("classify.py", f"--export_dir={tmp_path}")
    assert code == 2
    assert err.splitlines() == [f"classify.py: error: --export_dir="
                                f"{tmp_path} is not a SavedModel written by "
                                "export.py (OSError)"]


@pytest.mark.slow
def test_a_diverged_training_is_a_one_line_error(tmp_path):
    code, out, err = run_script("train.py", *SHORT, f"--arch={ARCH}",
                                "--learning_rate=1e30",
                                f"--logdir={tmp_path}")
    assert code == 2, err
    assert "Traceback" not in err
    assert err.splitlines() == [
        "train.py: error: the training loss became nan in epoch 1; lower "
        "--learning_rate or set --grad_clip"]
    assert not (tmp_path / "result.json").exists()

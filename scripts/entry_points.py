"""The console commands of an installed nas_tf: ``nas-search``,
``nas-train``, ``nas-export``, ``nas-describe``, ``nas-classify``,
``nas-policy-eval``.

Each runs its script as ``__main__``, exactly as ``python scripts/X.py``
does, so absl shows the script's own flags under ``--help``.
"""

import runpy

from nas_tf_cli import command_line


def _run(script: str) -> None:
    command_line.CONSOLE["active"] = True
    runpy.run_module(f"nas_tf_cli.{script}", run_name="__main__",
                     alter_sys=True)


def search():
    _run("search")


def train():
    _run("train")


def export():
    _run("export")


def describe():
    _run("describe")


def classify():
    _run("classify")


def policy_eval():
    _run("policy_eval")

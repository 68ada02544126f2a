"""Rules the layout relies on: scripts never shadow the standard library,
and flags live only in scripts/."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_script_names_do_not_shadow_standard_library_modules():
    # `python scripts/X.py` puts scripts/ first on sys.path, so a
    # scripts/inspect.py would replace `inspect` inside TensorFlow.
    names = {p.stem for p in (ROOT / "scripts").glob("*.py")}
    assert names, "no scripts found"
    assert not names & set(sys.stdlib_module_names)
    assert not names & set(sys.builtin_module_names)


def test_library_takes_no_absl_flags():
    offenders = [str(p.relative_to(ROOT))
                 for p in (ROOT / "nas_tf").rglob("*.py")
                 if "absl" in p.read_text() and "flags" in p.read_text()]
    assert offenders == []

"""How every script reads its command line and talks to the user.

* TensorFlow is imported first, without the C++ start-up notices it prints
  whatever ``TF_CPP_MIN_LOG_LEVEL`` says, so a script's output is its own.
* ``parse_flags`` is every script's absl flags parser: it expands
  ``--preset=NAME`` (a flagfile of configs/ found by name, in a checkout or
  where the package is installed) and ``--flagfile=FILE`` itself, then
  parses, and turns a bad command line into one ``<script>: error: ...``
  line and exit status 2, like every other bad input.
* ``run`` starts a script's ``main``; Ctrl-C ends it with one line.
* ``command`` writes the command of another script as the user can run it
  from a fresh shell (the same Python, or the installed ``nas-*`` command).
"""

import os
import shlex
import sys

# Keep TensorFlow's C++ start-up chatter out of the scripts' output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Start-up notices TensorFlow 2.21 writes from C++ while it is imported and
# finds its devices, whatever TF_CPP_MIN_LOG_LEVEL says (its absl logging
# is not initialised yet); every other line written then still reaches
# stderr.
_IMPORT_NOTICES = ("All log messages before absl::InitializeLog()",
                   "oneDNN custom operations are on",
                   "This TensorFlow binary is optimized",
                   "To enable the following instructions",
                   "Could not find cuda drivers")
# Expected on a machine without an NVIDIA driver (the tensorflow package,
# not tensorflow-cpu): hidden only when TensorFlow said it found none.
_NO_DRIVER_ERRORS = ("failed call to cuInit",)


def _import_tensorflow_quietly():
    import tempfile
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
            # Finding the devices prints the rest; it does not fix them, so
            # the CPU can still be split into logical devices afterwards.
            tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        lines = captured.read().decode(errors="replace").splitlines()
    no_driver = any("Could not find cuda drivers" in line for line in lines)
    hidden = _IMPORT_NOTICES + (_NO_DRIVER_ERRORS if no_driver else ())
    for line in lines:
        if not any(notice in line for notice in hidden):
            print(line, file=sys.stderr)


_import_tensorflow_quietly()

from absl import flags  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "preset", None, "A preset of configs/ by name (darts_cifar10_final, "
    "quickstart, ...): the same as --flagfile=<its file>; flags after it "
    "override it.")

PRESET_SUFFIX = ".cfg"


class CommandLineError(ValueError):
    """A preset or flagfile that cannot be read."""


def presets_dir() -> str:
    """The directory of the presets: configs/ beside scripts/ in a checkout,
    or ``presets/`` inside the installed package."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, "presets"),
                      os.path.join(os.path.dirname(here), "configs")):
        if os.path.isdir(candidate):
            return candidate
    raise CommandLineError(f"no presets directory beside {here}")


def preset_names() -> list:
    return sorted(os.path.splitext(n)[0] for n in os.listdir(presets_dir())
                  if n.endswith(PRESET_SUFFIX))


def preset_path(name: str) -> str:
    path = os.path.join(presets_dir(), name + PRESET_SUFFIX)
    if not os.path.isfile(path):
        raise CommandLineError(f"--preset={name}: no such preset; known: "
                               f"{', '.join(preset_names())}")
    return path


def _flagfile_args(path: str) -> list:
    """The arguments of an absl flagfile: one per line, blank lines and
    ``#`` or ``//`` comments skipped."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise CommandLineError(f"--flagfile={path}: {e.strerror}") from None
    return [line.strip() for line in lines
            if line.strip() and not line.strip().startswith(("#", "//"))]


def _split(arg: str):
    """(name, value) of ``--name=value`` / ``-name=value``; value None for
    ``--name``; (None, None) for anything else."""
    if not arg.startswith("-") or arg in ("-", "--"):
        return None, None
    name, sep, value = arg.lstrip("-").partition("=")
    return name, (value if sep else None)


# ("preset" or "flagfile", path) of those named on the command line.
_read_presets = []


def expand_argv(argv: list) -> list:
    """``argv`` with every ``--preset`` and ``--flagfile`` replaced by the
    arguments it holds (recursively). A flagfile path inside a flagfile is
    tried as given (relative to the working directory, as absl does), then
    relative to the file naming it."""
    out = [argv[0]]

    def expand(args, base, depth):
        if depth > 10:
            raise CommandLineError("presets and flagfiles nest more than 10 "
                                   "deep (one includes itself?)")
        i = 0
        while i < len(args):
            name, value = _split(args[i])
            if args[i] == "--":
                out.extend(args[i:])
                return
            if name in ("preset", "flagfile"):
                if value is None:
                    if i + 1 == len(args):
                        raise CommandLineError(f"--{name} needs a value")
                    value, i = args[i + 1], i + 1
                if name == "preset":
                    path = preset_path(value)
                else:
                    path = os.path.expanduser(value)
                    if (not os.path.exists(path) and base and
                            os.path.exists(os.path.join(base, path))):
                        path = os.path.join(base, path)
                if depth == 0:
                    _read_presets.append((name, path))
                expand(_flagfile_args(path), os.path.dirname(path), depth + 1)
            else:
                out.append(args[i])
            i += 1

    expand(list(argv[1:]), None, 0)
    return out


def preset_arg(preset: str) -> str:
    """``--preset=NAME`` for a preset's name, else ``--flagfile=PATH``."""
    if os.path.isfile(os.path.join(presets_dir(), preset + PRESET_SUFFIX)):
        return f"--preset={preset}"
    return f"--flagfile={preset}"


def preset_name() -> str:
    """The name of the last ``--preset`` on the command line, else of the
    last ``--flagfile``, else ""."""
    named = ([path for kind, path in _read_presets if kind == "preset"] or
             [path for _, path in _read_presets])
    return os.path.splitext(os.path.basename(named[-1]))[0] if named else ""


# How the scripts are started: ``scripts/X.py`` or the installed
# ``nas-X`` console command (set by entry_points).
CONSOLE = {"active": False}


def program() -> str:
    """The script's name as the user typed it."""
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    return f"nas-{name}" if CONSOLE["active"] else f"{name}.py"


def error(message) -> int:
    """Prints ``<script>: error: message`` as one line; returns 2."""
    text = " ".join(str(message).split())
    print(f"{program()}: error: {text}", file=sys.stderr)
    return 2


def parse_flags(argv: list) -> list:
    """absl flags parser of every script (``app.run(main,
    flags_parser=parse_flags)``): presets expanded, errors in one line with
    exit status 2. Returns the arguments left over."""
    try:
        rest = FLAGS(expand_argv(argv))
    except (flags.Error, CommandLineError) as e:
        error(f"{e} (--helpfull lists every flag)")
        sys.exit(2)
    if "deterministic" in FLAGS and FLAGS.deterministic:
        import tensorflow as tf
        tf.config.experimental.enable_op_determinism()
    from nas_tf.utils import cpu_fusions
    cpu_fusions.turn_off_cpu_remapper()  # faster training on CPU (see there)
    return rest


def command(script: str, *args: str) -> str:
    """A shell command that runs ``script`` (search, train, export,
    classify, describe, policy_eval) with ``args`` from a fresh shell, as
    this script was started: the same Python for ``scripts/X.py``, the
    console command beside it for ``nas-X`` (``nas-policy-eval``)."""
    if CONSOLE["active"]:
        name = "nas-" + script.replace("_", "-")
        exe = os.path.join(os.path.dirname(sys.executable), name)
        words = [_shown_path(exe)]
    else:
        here = os.path.dirname(os.path.abspath(__file__))
        words = [_shown_path(sys.executable),
                 _shown_path(os.path.join(here, f"{script}.py"))]
    return " ".join(shlex.quote(w) for w in words + list(args))


def tensorboard(logdir: str) -> str:
    """The command that shows ``logdir`` in TensorBoard, runnable from a
    fresh shell (TensorBoard is installed beside this Python)."""
    exe = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    words = ([_shown_path(exe)] if os.path.exists(exe) else
             [_shown_path(sys.executable), "-m", "tensorboard.main"])
    return " ".join(shlex.quote(w) for w in words + ["--logdir", logdir])


def _shown_path(path: str) -> str:
    """``path`` relative to the working directory when it lies inside it
    (``.venv/bin/python``), else absolute."""
    path = os.path.abspath(path)
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def run(main, interrupted: str = "") -> None:
    """``app.run(main)`` with ``parse_flags``; Ctrl-C ends the script with
    one line (``interrupted``: what the user can do next) and status 130."""
    from absl import app

    def guarded(argv):
        if len(argv) > 1:
            return error(f"unexpected arguments: {' '.join(argv[1:])}")
        try:
            return main(argv)
        except KeyboardInterrupt:
            print(f"\n{program()}: interrupted" +
                  (f"; {interrupted}" if interrupted else ""), file=sys.stderr)
            return 130

    app.run(guarded, flags_parser=parse_flags)

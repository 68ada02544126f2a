"""The README's Python examples run as written: each ```python block in a
fresh interpreter, in an empty directory (the files it writes stay there)."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT
from conftest import script_env

README = os.path.join(ROOT, "README.md")

# A fenced block opened by ```python (or ```py), possibly indented inside a
# list item, up to the closing fence at the same indentation.
_PYTHON_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)```(?:python|py)[ \t]*\n(?P<code>.*?)"
    r"^(?P=indent)```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(markdown):
    """(line number of the opening fence, code) of every Python block."""
    return [(markdown.count("\n", 0, match.start()) + 1,
             textwrap.dedent(match.group("code")))
            for match in _PYTHON_BLOCK.finditer(markdown)]


def test_python_blocks_are_found_whole():
    markdown = ("Intro\n\n```python\nimport os\n\nprint(os.sep)\n```\n\n"
                "```sh\nls\n```\n\n1. Item:\n\n   ```py\n   x = 1\n"
                "   if x:\n       print(x)\n   ```\n")
    assert python_blocks(markdown) == [
        (3, "import os\n\nprint(os.sep)\n"),
        (15, "x = 1\nif x:\n    print(x)\n")]


with open(README) as _readme:
    _BLOCKS = python_blocks(_readme.read())


@pytest.mark.slow
@pytest.mark.parametrize("line,code", _BLOCKS,
                         ids=[f"README.md:{line}" for line, _ in _BLOCKS])
def test_readme_python_block_runs(tmp_path, line, code):
    script = tmp_path / f"readme_line_{line}.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                            env=script_env(), capture_output=True, text=True,
                            timeout=600)
    errors = result.stderr
    assert result.returncode == 0, (
        f"the Python block at README.md:{line} failed:\n{errors}")

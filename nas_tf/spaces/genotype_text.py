"""Reads the DARTS ``Genotype(...)`` text (``cnn/genotypes.py``,
``rnn/genotypes.py``) without evaluating it: only literal lists, tuples and
``range(...)`` calls are accepted, so pasted text never runs code."""

import ast

from nas_tf.spaces import schema


def genotype_fields(text: str, space_name: str, wanted) -> dict:
    """The keyword fields of ``Genotype(k=literal, ...)``.

    Raises:
      SpaceError: text that is not such a call, a field that is not a
        literal (or a range), or fields other than exactly ``wanted``.
    """
    form = "Genotype(" + ", ".join(f"{k}=..." for k in wanted) + ")"
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise schema.SpaceError(
            f"{space_name}: the genotype text does not parse ({e.msg} at "
            f"column {e.offset})") from None
    if not (isinstance(call, ast.Call) and getattr(call.func, "id", "")
            == "Genotype"):
        raise schema.SpaceError(f"{space_name}: expected {form}")
    fields = {}
    for kw in call.keywords:
        value = kw.value
        is_range = (isinstance(value, ast.Call)
                    and getattr(value.func, "id", "") == "range")
        try:
            if is_range:
                fields[kw.arg] = range(*[ast.literal_eval(a)
                                         for a in value.args])
            else:
                fields[kw.arg] = ast.literal_eval(value)
        except (ValueError, TypeError):
            raise schema.SpaceError(
                f"{space_name}: Genotype field {kw.arg!r} is not a literal: "
                f"write a list of ('op', index) pairs, a list of integers or "
                f"range(...)") from None
    missing = [k for k in wanted if k not in fields]
    unknown = [k for k in fields if k not in wanted]
    if missing or unknown:
        raise schema.SpaceError(
            f"{space_name}: Genotype fields must be {', '.join(wanted)}; "
            f"missing {missing or 'none'}, unknown {unknown or 'none'}")
    return fields


def check_index_list(space_name: str, field: str, value) -> tuple:
    """A ``*_concat`` field: a list or range of ints."""
    if not (isinstance(value, (list, tuple, range))
            and all(schema.is_int(i) for i in value)):
        raise schema.SpaceError(
            f"{space_name}: Genotype field {field!r} = {value!r}; expected a "
            f"list of state indices")
    return tuple(value)


def check_edge(space_name: str, where: str, entry, names) -> tuple:
    """One ``('op_name', input_index)`` entry with a known op name."""
    if (not isinstance(entry, tuple) or len(entry) != 2
            or not isinstance(entry[0], str)
            or not schema.is_int(entry[1])):
        raise schema.SpaceError(
            f"{space_name}: {where} = {entry!r}; each entry is "
            f"('op_name', input_index)")
    schema.label_index(space_name, "op", where, names, entry[0])
    return entry

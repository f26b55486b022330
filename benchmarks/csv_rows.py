"""Typed rows of the benchmark scripts' CSV files.

Every script writes its results as a CSV, one row per measurement, and reads
them back to merge runs or to redraw a report. :func:`read_rows` is that
reading: it turns the cells of the named columns into numbers (and booleans),
so that reports compute with them as they would with fresh results.
"""

import csv
import math


def read_rows(
    path, integers=(), floats=(), booleans=(), required=(), missing_hint="", empty_as_nan=False
):
    """The rows of the CSV at ``path`` as dicts, with the named columns typed.

    Parameters
    ----------
    path : str or Path
        The CSV file, with a header row.
    integers, floats : iterable of str
        Columns whose cells become ``int`` or ``float``. A named column that
        the file lacks is left out of its rows (list it in ``required`` too
        to make that an error).
    booleans : iterable of str
        Columns whose cells become ``True`` where they read ``"True"``.
    required : iterable of str
        Columns the file must have.
    missing_hint : str
        What the error says to do when ``required`` columns are missing.
    empty_as_nan : bool
        Whether an empty cell of a number column becomes NaN (a failed
        measurement); by default it is an error like any other non-number.

    Raises
    ------
    ValueError
        If the file lacks some of the ``required`` columns (naming them), or a
        cell of a number column is not a number (an empty one included, unless
        ``empty_as_nan``).
    """
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        header = reader.fieldnames or ()
        missing = [column for column in required if column not in header]
        if missing:
            message = f"{path} lacks the columns {', '.join(missing)}"
            raise ValueError(f"{message}: {missing_hint}" if missing_hint else f"{message}.")
        rows = list(reader)
    converters = [(column, int) for column in integers if column in header]
    converters += [(column, float) for column in floats if column in header]
    flags = [column for column in booleans if column in header]
    for number, row in enumerate(rows, start=2):
        for column, kind in converters:
            value = row[column]
            try:
                row[column] = math.nan if empty_as_nan and value == "" else kind(value)
            except ValueError:
                raise ValueError(
                    f"{path}, line {number}: column {column!r} holds {value!r}, not a number."
                ) from None
        for column in flags:
            row[column] = row[column] == "True"
    return rows

"""Fuzzing the HIGGS CSV converter with malformed rows (a seeded generator).

Every case must either convert to exactly the values it spells, or be refused with a
message naming the file, the line and the field. Most cases go through
:func:`row_verdicts` (the converter's own parse and validation expressions, all cases in
one file, one Spark job); a few files go end to end through ``hepspark convert higgs``.
The oracle below is the specification, written independently of Spark.
"""
from __future__ import annotations

import math
import os
import random
import re

import numpy as np
import pytest

from hepspark.cli import main
from hepspark.data.higgs_convert import row_verdicts
from hepspark.data.higgs_schema import COLUMNS

SEED = 20261122
N_CASES = 1500
N_END_TO_END = 8
FLOAT32_MAX = float(np.finfo(np.float32).max)
PLAIN = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")

BAD_TOKENS = [
    "", " ", "abc", "NaN", "nan", "inf", "-inf", "Infinity", "-Infinity", "1.0d", "2f",
    "1.5D", "0x1p3", "1e999", "-1e39", "3.5e38", "'1'", '"1"', "1.0 1", "--1", "\uff11",
    "1_000", "\ufeff1", "\x00", "1\x00", "\x0b1", "\u0663", "1e", "e5", ".", "+", "-",
    "1..0", "1e5.5", "true", "0b1", "1/2", "\xa01", "1 e5", "+-1", "1e+", "∞",
]
ODD_BUT_VALID = ["1e-999", "-0", "+0.5", ".5", "5.", "1E+05", " 2.5 ", "\t3", "7\t",
                 "0" * 40 + "1", "1" + "0" * 30, "-" + "9" * 300 + "e-300", "1e-46"]
LABEL_TOKENS = ["2", "-1", "0.5", "1.0", "0e0", "-0", " 1", "true", "1e0", "0.0000", "10"]


def valid_fields(rng: random.Random) -> list[str]:
    label = rng.choice(["0", "1", "1.000000000000000000e+00", "0.0"])
    style = rng.choice(["%.18e", "%.7g", "%r"])
    values = [style % rng.gauss(0, 3) if style != "%r" else repr(rng.gauss(0, 3))
              for _ in range(len(COLUMNS) - 1)]
    return [label, *values]


def mutate(rng: random.Random) -> str:
    """One malformed (or odd but valid) line."""
    fields = valid_fields(rng)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        kind = rng.random()
        if kind < 0.12:
            del fields[rng.randrange(len(fields))]
        elif kind < 0.2:
            fields.insert(rng.randrange(len(fields) + 1), valid_fields(rng)[1])
        elif kind < 0.6:
            fields[rng.randrange(len(fields))] = rng.choice(BAD_TOKENS)
        elif kind < 0.75:
            fields[rng.randrange(len(fields))] = rng.choice(ODD_BUT_VALID)
        elif kind < 0.85:
            fields[0] = rng.choice(LABEL_TOKENS)
        elif kind < 0.9:
            fields = fields[: rng.randrange(4)] or [""]  # truncated (also the empty line)
        elif kind < 0.95:
            alphabet = "0123456789.,eE+- x\t;:'\"abcNn\x00\u00e9"
            fields[rng.randrange(len(fields))] = "".join(
                rng.choice(alphabet) for _ in range(rng.randrange(1, 8)))
        else:
            i = rng.randrange(len(fields))
            fields[i] = rng.choice([" ", "  ", "\t"]) + fields[i] + rng.choice(["", " "])
    line = ",".join(fields)
    return line.replace("\n", " ").replace("\r", " ")  # one case = one line


def oracle(line: str) -> tuple[bool, list[float] | None]:
    """(accepted, the float32 values it stores) per the converter's documented rules."""
    fields = line.split(",")
    if len(fields) != len(COLUMNS):
        return False, None
    values = []
    for field in fields:
        text = field.strip(" \t")
        if not PLAIN.fullmatch(text):
            return False, None
        value = float(text)
        with np.errstate(over="ignore"):
            if not math.isfinite(value) or not np.isfinite(np.float32(value)):
                return False, None
        values.append(value)
    if values[0] not in (0.0, 1.0):  # the label as written, not rounded to float32
        return False, None
    return True, [float(np.float32(v)) for v in values]


def write_cases(path, lines: list[str]) -> None:
    with open(path, "wb") as handle:
        handle.write(("\n".join(lines) + "\n").encode("utf-8"))


def test_parse_level_fuzz(spark, tmp_path):
    rng = random.Random(SEED)
    cases = [mutate(rng) for _ in range(N_CASES)]
    src = tmp_path / "fuzz.csv"
    write_cases(src, cases)
    verdicts = {r["line"]: r for r in row_verdicts(spark, str(src))}
    assert sorted(verdicts) == list(range(1, N_CASES + 1))  # one verdict per line
    converted = rejected = 0
    for number, line in enumerate(cases, start=1):
        verdict = verdicts[number]
        accepted, values = oracle(line)
        assert verdict["bad"] == (not accepted), (number, repr(line), verdict["error"])
        if accepted:
            stored = [verdict[name] for name in COLUMNS]
            np.testing.assert_array_equal(np.float32(stored), np.float32(values),
                                          err_msg=repr(line))
            converted += 1
        else:
            assert re.match(r"(expected 29 comma-separated fields, found \d+"
                            r"|field \d+ \([a-zA-Z0-9_]+\): .+)", verdict["error"], re.S), (
                repr(line), verdict["error"])
            assert os.path.basename(verdict["file"]) == "fuzz.csv"
            rejected += 1
    print(f"\n[fuzz] parse level: {N_CASES} cases tried, {converted} converted, "
          f"{rejected} rejected with file:line:field")
    assert converted + rejected == N_CASES
    assert converted > 50 and rejected > 1000  # both outcomes are exercised


def test_end_to_end_fuzz_through_the_cli(spark, tmp_path, capsys):
    rng = random.Random(SEED + 1)
    failed = converted = 0
    for case in range(N_END_TO_END):
        rows = [",".join(valid_fields(rng)) for _ in range(200)]
        bad_lines = sorted(rng.sample(range(1, 201), rng.randrange(1, 4)))
        for number in bad_lines:
            rows[number - 1] = mutate(rng)
        src = tmp_path / f"case{case}.csv"
        write_cases(src, rows)
        out = tmp_path / f"ds{case}"
        code = main(["convert", "higgs", "--input", str(src), "--output", str(out),
                     "--test-rows", "20", "--no-checksum"])
        captured = capsys.readouterr()
        first_bad = next((n for n in bad_lines if not oracle(rows[n - 1])[0]), None)
        if first_bad is None:
            assert code == 0, captured.err
            converted += 1
            continue
        assert code == 2 and "Traceback" not in captured.err
        assert f"first: {src}:{first_bad}: " in captured.err, (captured.err, bad_lines)
        assert not out.exists()
        failed += 1
    print(f"\n[fuzz] end to end: {N_END_TO_END} files, {converted} converted, "
          f"{failed} refused naming file:line")
    assert failed >= N_END_TO_END // 2


@pytest.mark.parametrize("line_end", ["\r\n"])
def test_windows_line_endings_convert_and_keep_line_numbers(spark, tmp_path, line_end):
    rng = random.Random(SEED + 2)
    rows = [",".join(valid_fields(rng)) for _ in range(30)]
    rows[11] = rows[11].replace(",", ",x", 1)
    src = tmp_path / "crlf.csv"
    src.write_bytes((line_end.join(rows) + line_end).encode())
    verdicts = {r["line"]: r for r in row_verdicts(spark, str(src))}
    assert sorted(verdicts) == list(range(1, 31))
    assert [n for n, v in verdicts.items() if v["bad"]] == [12]

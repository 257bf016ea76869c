"""Walk the whole typer app: consistent option names (one meaning per name, --output/-o for
outputs, units on time options, nothing declared twice) and the hidden old spellings."""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from qdlab.cli.main import app

UNIT = re.compile(r"\b(fs|ps|ns|s|min|minutes|h|HH:MM:SS|steps?|frames?)\b|(_fs|_ps|-ps|-fs|-minutes)$", re.I)
TIME_WORDS = ("time", "timestep", "dt", "skip", "taut", "interval", "walltime", "minutes")


def _commands(cmd, path=()):
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, path + (name,))
    else:
        yield " ".join(path), cmd


COMMANDS = dict(_commands(typer.main.get_command(app)))


def _options(cmd):
    return [p for p in cmd.params if p.param_type_name == "option"]


def test_every_command_found():
    assert {"phonons run", "phonons compare", "phonons thermal", "relax", "md", "analyze rmsf", "campaign run",
            "dataset collect", "demo"} <= set(COMMANDS)


def test_phonons_group_keeps_the_structure_form():
    """`qdlab phonons STRUCTURE [OPTIONS]` is `qdlab phonons run ...`; thermal properties have one
    spelling, `qdlab phonons thermal`."""
    import inspect

    from qdlab.cli.phonons import thermal_cmd

    root = typer.main.get_command(app)
    assert "thermal" not in root.commands
    assert inspect.unwrap(COMMANDS["phonons thermal"].callback) is inspect.unwrap(thermal_cmd)
    for args in (["phonons", "none.extxyz"], ["phonons", "-e", "classical", "none.extxyz"],
                 ["phonons", "run", "none.extxyz"]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2 and "none.extxyz does not exist" in res.stderr, (args, res.output)
    res = CliRunner().invoke(app, ["phonons", "--help"])
    assert res.exit_code == 0 and all(c in res.stdout for c in ("run", "compare", "thermal"))


def test_no_option_declared_twice():
    for name, cmd in COMMANDS.items():
        flags = [f for p in _options(cmd) for f in p.opts + p.secondary_opts]
        assert len(flags) == len(set(flags)), (name, sorted(f for f in flags if flags.count(f) > 1))


def test_outputs_are_output_o():
    for name, cmd in COMMANDS.items():
        for p in _options(cmd):
            assert "--out" not in p.opts, (name, p.opts)  # still accepted, hidden (HIDDEN_ALIASES)
            if p.name in ("out", "output"):
                assert "--output" in p.opts and "-o" in p.opts, (name, p.opts)


def test_engine_means_an_engine():
    for name, cmd in COMMANDS.items():
        for p in _options(cmd):
            if "--engine" in p.opts:
                assert re.search(r"chgnet|engine", p.help or "", re.I), (name, p.help)


def test_time_options_carry_their_unit():
    for name, cmd in COMMANDS.items():
        for p in _options(cmd):
            flag = p.opts[0].lstrip("-")
            if any(w in flag.replace("-", "_").split("_") for w in TIME_WORDS) and not getattr(p, "is_flag", False):
                assert UNIT.search(p.help or "") or UNIT.search(flag), (name, p.opts, p.help)


def test_hidden_old_spellings_still_parse(tmp_path):
    res = CliRunner().invoke(app, ["analyze", "rmsf", str(tmp_path / "none.extxyz"), "--skip", "1", "--out",
                                   str(tmp_path / "x")])
    assert res.exit_code == 2 and "No such option" not in res.output and "error:" in res.stderr

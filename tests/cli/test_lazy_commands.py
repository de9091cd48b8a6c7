"""The CLI as a lazy registry: ``vitprune --help`` imports no command module, a command loads on use, and a
command whose module cannot be imported fails alone, in one line."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

from vitprune_export.cli.commands import COMMANDS

HEAVY = ("torch", "timm", "onnx", "onnxruntime", "tensorrt_rtx", "matplotlib")


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)


def _help_in_fresh_process() -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        "from vitprune_export.cli import main\n"
        "sys.argv = ['vitprune', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    return _run(code)


def test_help_imports_no_torch_and_no_command_module():
    result = _help_in_fresh_process()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"
    for name in COMMANDS:
        assert f"│ {name} " in result.stdout, f"{name} missing from the listing"


def test_the_table_is_exactly_what_the_command_modules_register():
    from vitprune_export.cli.app import app

    for entry in COMMANDS.values():
        importlib.import_module(f"vitprune_export.cli.{entry.module}")
    registered = {info.name for info in app.registered_commands} | {info.name for info in app.registered_groups}
    assert registered == set(COMMANDS)


def test_listing_reads_the_same_before_and_after_every_command_is_loaded():
    code = (
        "import sys, importlib\n"
        "from vitprune_export.cli import main\n"
        "from vitprune_export.cli.commands import COMMANDS\n"
        "for entry in COMMANDS.values():\n"
        "    importlib.import_module('vitprune_export.cli.' + entry.module)\n"
        "sys.argv = ['vitprune', '--help']\n"
        "main()\n"
    )
    loaded = _run(code)
    lazy = _help_in_fresh_process()
    assert loaded.returncode == 0, loaded.stderr
    assert lazy.stdout.rsplit("HEAVY", 1)[0] == loaded.stdout


def test_a_command_whose_module_fails_to_import_fails_alone_in_one_line():
    # sys.modules[name] = None makes `import name` raise ImportError, as a broken optional dependency would
    code = (
        "import sys\n"
        "sys.modules['vitprune_export.cli.compare'] = None\n"
        "from vitprune_export.cli import main\n"
        "sys.argv = ['vitprune', *sys.argv[1:]]\n"
        "main()\n"
    )
    broken = _run(code, "compare", "results", "--json")
    assert broken.returncode == 2
    lines = broken.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 'vitprune compare' cannot start:"), broken.stderr
    assert "Traceback" not in broken.stderr
    working = _run(code, "methods", "--json")
    assert working.returncode == 0, working.stderr
    assert '"topk"' in working.stdout


def test_an_unknown_command_is_suggested_among_commands_not_yet_loaded(cli):
    result = cli("exprt")
    assert result.exit_code == 2
    assert result.output.strip() == "error: No such command 'exprt'. Did you mean 'export'?; see 'vitprune -h'"


def test_the_method_table_names_each_method_and_the_module_that_registers_it():
    from vitprune_export.pruning import methods

    for name, module in methods.METHOD_MODULES.items():
        assert methods.method_class(name).__module__ == f"vitprune_export.pruning.methods.{module}"
    assert set(methods._REGISTRY) == set(methods.list_methods())  # no module registers a name the table lacks


def test_compare_of_shipped_results_imports_no_torch():
    code = (
        "import sys\n"
        "from vitprune_export.cli import main\n"
        "from vitprune_export.resources import reference_results_dir\n"
        "sys.argv = ['vitprune', 'compare', str(reference_results_dir() / 'cpu-2core')]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert "topk" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"

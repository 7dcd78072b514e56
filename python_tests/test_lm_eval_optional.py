"""lm-eval stays optional: the core package and the CLI work without it (runs with or without
lm_eval installed)."""
import os
import subprocess
import sys


def test_core_import_does_not_import_lm_eval():
    code = ("import sys, mumoe_ext, mumoe_ext.cli, mumoe_ext.lm_eval, mumoe_ext.lm_eval.cli; "
            "mumoe_ext.cli.build_parser(); assert 'lm_eval' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


def test_cli_without_lm_eval_says_how_to_install():
    code = ("import sys; sys.modules['lm_eval'] = None; from mumoe_ext.cli import main; "
            "sys.exit(main(['lm-eval', '--tasks', 'x']))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 2 and "pip install" in run.stderr and "lm-eval" in run.stderr

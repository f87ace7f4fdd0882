import subprocess
import sys

import pytest

from llamafactory_ext.cli import COMMANDS, main


def test_help_lists_every_command_without_importing_torch():
    code = (
        "import sys\n"
        "from llamafactory_ext.cli import main\n"
        "rc = main(['--help'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'llamafactory', 'datasets') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
    for name in COMMANDS:
        assert f"  {name} " in proc.stdout


def test_unknown_command_exits_nonzero_and_names_it(capsys):
    assert main(["trian"]) == 2
    err = capsys.readouterr().err
    assert "'trian'" in err and "did you mean 'train'" not in err  # there is no train command
    assert main(["evl"]) == 2
    assert "did you mean 'eval'" in capsys.readouterr().err


def test_unknown_key_exits_nonzero_and_names_it(tmp_path, capsys):
    assert main(["fixture", f"out_dir={tmp_path}", "num_layer=2"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'num_layer'" in err and "did you mean 'num_layers'" in err


def test_subcommand_help_lists_keys(capsys):
    assert main(["fixture", "--help"]) == 0
    out = capsys.readouterr().out
    assert "num_layers" in out and "hidden_size" in out


def test_console_script_is_installed():
    import shutil
    from pathlib import Path

    exe = Path(sys.executable).parent / "llamafactory-ext"
    path = str(exe) if exe.exists() else shutil.which("llamafactory-ext")
    if path is None:
        pytest.fail("the llamafactory-ext console script is not installed (pip install -e .)")
    proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout.strip()

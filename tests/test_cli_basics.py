import subprocess
import sys

from tunerail.cli import main


def test_import_and_help_do_not_load_torch():
    code = (
        "import sys, tunerail, tunerail.cli, tunerail.config, tunerail.data\n"
        "from tunerail.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_init_then_config_validates(tmp_path):
    path = tmp_path / "tunerail.yaml"
    assert main(["init", str(path)]) == 0
    assert main(["init", str(path)]) == 2  # refuses to overwrite
    assert main(["config", str(path)]) == 0


def test_config_error_exits_2_without_traceback(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("trian: {}\n")
    assert main(["config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "trian" in err and "unknown key" in err


def test_step_functions_stay_callable_after_submodule_imports(banking_example):
    import tunerail
    import tunerail.doctor.checks  # noqa: F401  (sets tunerail.doctor to the package)
    import tunerail.split.leakage  # noqa: F401
    import tunerail.train.lint  # noqa: F401

    assert callable(tunerail.doctor) and callable(tunerail.split) and callable(tunerail.train)
    result = tunerail.doctor(banking_example, semantic=False)
    assert result.rows_in == 1500

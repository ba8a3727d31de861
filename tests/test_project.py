"""The fresh-machine promises: README, CI, config defaults and docs agree with the code."""

from __future__ import annotations

import re

from conftest import REPO, run_cli
from stockpred.config import Config, config_as_json
from stockpred.data.catalogue import CATALOGUE


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    install_and_run, install_and_test = blocks[0], blocks[1]
    assert install_and_run.endswith("stockpred fetch && .venv/bin/stockpred features && "
                                    ".venv/bin/stockpred train lstm")
    assert "pytest" in install_and_test
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == install_and_test


def test_root_config_json_spells_out_the_defaults():
    assert (REPO / "config.json").read_text(encoding="utf-8") == config_as_json(Config())


def test_every_config_key_and_interface_is_documented():
    config_doc = (REPO / "doc" / "config.md").read_text(encoding="utf-8")
    for section, fields in Config().model_dump().items():
        for key in fields if isinstance(fields, dict) else [section]:
            assert f"`{key}" in config_doc, key
    interfaces_doc = (REPO / "doc" / "interfaces.md").read_text(encoding="utf-8")
    for name, iface in CATALOGUE.items():
        assert f"| `{name}` | {iface.group} | {', '.join(iface.keys)} |" in interfaces_doc


def test_help_explains_each_command():
    code, out, _ = run_cli("--help")
    assert code == 0
    for command in ("fetch", "refresh", "show"):
        assert command in out
        code, text, _ = run_cli(command, "--help")
        assert code == 0 and "Usage: stockpred" in text and len(text) > 300


def test_every_stage_refresh_may_run_is_registered():
    from stockpred.config import LATER_STAGES
    from stockpred.stages.table import STAGE_NAMES

    assert STAGE_NAMES == LATER_STAGES


def test_no_import_cycle_and_no_upward_import():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(REPO / "scripts" / "import_cycles.py")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert " 0 cycles, 0 upward imports" in done.stdout


def test_help_imports_no_heavy_package():
    import subprocess
    import sys

    probe = ("import sys\nfrom stockpred.cli import main\ntry:\n    main(['--help'])\n"
             "except SystemExit:\n    pass\n"
             "print(sorted(m for m in ('tensorflow', 'keras', 'xgboost', 'lightgbm', 'sklearn',"
             " 'distributed', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_misspelled_model_gets_a_suggestion(workdir):
    code, _, err = run_cli("train", "lsmt")
    assert code == 2 and "unknown model 'lsmt'; did you mean 'lstm'?" in err
    assert err.count("\n") == 1


def test_the_readme_names_every_exit_code_and_every_stage_refresh_runs():
    from stockpred.config import DEFAULT_REFRESH, LATER_STAGES
    from stockpred.errors import EXIT_CODES

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    cron = readme.split("## Nightly refresh from cron")[1].split("\n## ")[0]
    for code, meaning, action in EXIT_CODES:
        assert f"| {code} | {meaning} | {action} |" in cron
    for stage in LATER_STAGES:
        assert f"`{stage}`" in cron
    assert set(DEFAULT_REFRESH) <= set(LATER_STAGES)
    code, out, _ = run_cli("--help")
    assert all(f"{code} " in out for code, *_ in EXIT_CODES)

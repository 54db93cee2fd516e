"""The set-up files agree: environment.yml pins exactly what pyproject.toml pins; CI runs the README's command."""

import re
import tomllib

import yaml

from lwadapter.runtime import ROOT


def pins_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    return dict(d.split("==") for d in deps)


def pins_environment():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert any(d.startswith("python=3.11") for d in env["dependencies"] if isinstance(d, str))
    return dict(d.split("==") for d in pip if "==" in d)


def test_environment_yml_pins_match_pyproject():
    assert pins_environment() == pins_pyproject()
    assert pins_pyproject()["torch"] == "2.13.0"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^(make \S+)\s*$", readme, flags=re.M)
    ci = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith(("#", "set ", "cd "))]
    assert ci == ["make test"] and "make test" in commands

"""Render on hostile input (issue #11, case 10): keys YAML would misread are quoted, undecodable
generated files show as drift, and random spec text either is refused or round-trips exactly."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envspec.errors import SpecError
from envspec.project import Project
from envspec.render import context
from envspec.render import files as render
from envspec.spec.load import ResolvedTarget, load_spec, parse_spec

REPO = Path(__file__).resolve().parents[2]
SHIPPED_DATA = yaml.safe_load((REPO / "envspec.yml").read_text(encoding="utf-8"))
TEMPLATE = context.make_environment().get_template("environment.yml.j2")

#: YAML 1.1 booleans and nulls (PyYAML's resolver) that are also valid variable names.
MISREAD_KEYS = ["ON", "On", "on", "OFF", "Off", "YES", "Yes", "yes", "NO", "No", "no", "y", "Y", "n", "N",
                "TRUE", "True", "true", "FALSE", "False", "false", "NULL", "Null", "null", "_"]  # fmt: skip


def _spec_text(variables: dict[str, str], description: str = "Linux") -> str:
    data = copy.deepcopy(SHIPPED_DATA)  # a fresh copy without a YAML round trip (7 ms an example)
    data["targets"]["linux-cuda"]["variables"] = variables
    data["targets"]["linux-cuda"]["description"] = description
    return yaml.safe_dump(data, allow_unicode=True)


def _render(text: str) -> tuple[ResolvedTarget, str]:
    target = parse_spec(text, Path("envspec.yml")).resolve("linux-cuda")
    return target, TEMPLATE.render(t=target, source="envspec.yml")


def test_variable_keys_yaml_reads_as_booleans_stay_strings() -> None:
    variables = dict.fromkeys(MISREAD_KEYS, "1")
    target, rendered = _render(_spec_text(variables))
    loaded = yaml.safe_load(rendered)["variables"]
    assert loaded == target.variables  # every key a string: no variable named True, False or None
    assert all(isinstance(k, str) for k in loaded)
    assert "  'ON': '1'" in rendered.splitlines()


def test_the_shipped_environment_files_keep_their_plain_keys(project_copy: Path) -> None:
    project = Project(project_copy)
    plan = render.plan_render(load_spec(project.spec_path), project)
    assert "  PYTORCH_ENABLE_MPS_FALLBACK: '1'" in plan[project.env_file("osx-arm64")].splitlines()


def test_a_comment_never_carries_a_control_character() -> None:
    assert context.one_line_comment("a\x00b\x1b c\u2028d") == "a\\x00b\\x1b c d"
    assert context.one_line_comment("plain — text") == "plain — text"


def test_check_shows_an_undecodable_generated_file_as_drift(project_copy: Path) -> None:
    project = Project(project_copy)
    plan = render.plan_render(load_spec(project.spec_path), project)
    render.apply(project, plan)
    env_file = project.env_file("linux-cuda")
    env_file.write_bytes(env_file.read_bytes() + b"# \xff\xfe latin-1 \xe9\n")
    diff = render.drift(project, plan)
    assert "a/environment-linux-cuda.yml (on disk)" in diff and "\ufffd" in diff


def test_check_shows_an_undecodable_stale_file_as_drift(project_copy: Path) -> None:
    project = Project(project_copy)
    plan = render.plan_render(load_spec(project.spec_path), project)
    render.apply(project, plan)
    stale = project_copy / "environment-gone.yml"
    header = plan[project.env_file("linux-cuda")].splitlines(keepends=True)[0].encode("utf-8")
    stale.write_bytes(header + b"name: caf\xe9\n")  # generated header, then Latin-1
    diff = render.drift(project, plan)
    assert "a/environment-gone.yml" in diff and "+++ /dev/null" in diff and "-name: caf\ufffd" in diff


def test_bytes_that_decode_to_the_rendered_text_still_differ(project_copy: Path) -> None:
    data = yaml.safe_load(yaml.safe_dump(SHIPPED_DATA))
    data["targets"]["linux-cuda"]["description"] = "replacement \ufffd char"
    (project_copy / "envspec.yml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    project = Project(project_copy)
    plan = render.plan_render(load_spec(project.spec_path), project)
    render.apply(project, plan)
    env_file = project.env_file("linux-cuda")
    env_file.write_bytes(env_file.read_bytes().replace("\ufffd".encode(), b"\xff"))
    assert "environment-linux-cuda.yml (on disk) differs" in render.drift(project, plan)


# --- property: refused by the spec, or rendered into YAML that reads back exactly ------------------

KEYS = st.one_of(st.sampled_from(MISREAD_KEYS), st.text(min_size=1, max_size=12))
TEXT = st.text(max_size=30)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variables=st.dictionaries(KEYS, TEXT, max_size=4), description=TEXT)
def test_random_variables_and_descriptions_are_refused_or_round_trip(
    variables: dict[str, str], description: str
) -> None:
    text = _spec_text(variables, description)
    try:
        target, rendered = _render(text)
    except SpecError as err:
        assert "\n" not in err.one_line() and err.one_line().startswith("error: envspec.yml")
        return
    loaded = yaml.safe_load(rendered)
    assert loaded["variables"] == target.variables
    said = yaml.safe_load(text)["targets"]["linux-cuda"]["variables"]  # what the spec text says, exactly
    assert {k: target.variables[k] for k in said} == said
    conda = [d for d in loaded["dependencies"] if not isinstance(d, dict)]  # the pip section aside
    assert loaded["name"] == target.env_name and conda == [*target.dependencies, *(["pip"] if target.pip else [])]
    comment = rendered.splitlines()[1]
    assert comment == f"# Target linux-cuda: {context.one_line_comment(description)}" and comment.isprintable()


@pytest.mark.parametrize("key", MISREAD_KEYS)
def test_each_misread_key_round_trips(key: str) -> None:
    _, rendered = _render(_spec_text({key: "on"}))
    assert yaml.safe_load(rendered)["variables"][key] == "on"


def test_render_check_refuses_a_nul_in_the_spec_in_one_line(
    project_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from envspec.cli.main import main

    data = yaml.safe_load(yaml.safe_dump(SHIPPED_DATA))
    data["targets"]["linux-cuda"]["description"] = "GPU\x00box"
    (project_copy / "envspec.yml").write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["--spec", str(project_copy / "envspec.yml"), "render", "--check"]) == 3  # not "current"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "targets.linux-cuda.description: contains U+0000" in err


@pytest.mark.parametrize(
    ("template", "words"),
    [
        (b"{% if %}\n", "templates/environment.yml.j2:1: template syntax error: Expected an expression"),
        (b"ok\n{{ 'a' | nosuchfilter }}\n", "templates/environment.yml.j2:2: template syntax error: No filter"),
        (b"\xff\xfe{{ t.name }}\n", "templates/: a template is not UTF-8 text (invalid start byte at byte 0)"),
        (b"{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}\n", "a template recurses without end"),
        (b"{{ 1/0 }}\n", "a template failed: ZeroDivisionError: division by zero"),
        (b"{{ 1 | join }}\n", "a template failed: TypeError: 'int' object is not iterable"),
    ],
)
def test_a_broken_project_template_is_one_line(
    project_copy: Path, capsys: pytest.CaptureFixture[str], template: bytes, words: str
) -> None:
    from envspec.cli.main import main

    (project_copy / "templates").mkdir(exist_ok=True)
    (project_copy / "templates" / "environment.yml.j2").write_bytes(template)
    assert main(["--spec", str(project_copy / "envspec.yml"), "render"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert words in err


@pytest.mark.parametrize("folder", ["ci", ".github/workflows", "lockfiles"])
def test_render_never_writes_or_deletes_through_a_link_out_of_the_project(
    project_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], folder: str
) -> None:
    from envspec.cli.main import main

    outside = tmp_path / "outside"
    outside.mkdir()
    stale = outside / "old-target.yml"  # a file render made once: it would delete it as stale
    stale.write_text("# GENERATED by `envspec render` from envspec.yml\n")
    link = project_copy / folder
    if link.exists():
        shutil.rmtree(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    assert main(["--spec", str(project_copy / "envspec.yml"), "render"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "its folder is a link out of the project" in err, err
    assert sorted(p.name for p in outside.iterdir()) == ["old-target.yml"]

"""A secret written into envspec.yml is refused where it stands, never copied on (issue #21, family 2).

envspec.yml is committed, and render copies its match specs, pip requirements and variables into
every environment-<t>.yml, and lock and install into lockfiles and the environment. A URL with
user-info, an ``/t/TOKEN/`` path or a secret query value in a conda match spec (``URL::pkg`` or
``pkg[channel=URL]``), a pip requirement or a variable is one line (exit 3) that names the field and
says where credentials go (``--mirror``/``ENVSPEC_MIRRORS``), and never quotes the secret. Channel
names are names (``channels:`` takes no URL at all).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from envspec.cli.main import main
from envspec.errors import ExitCode, SpecError
from envspec.spec.load import parse_spec

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "envspec.yml").read_text(encoding="utf-8")
SECRET = "s3cr3t-Tk9"


def _with(path: tuple[str, ...], value: object) -> str:
    """The shipped spec with ``value`` added to the list (or merged into the mapping) at ``path``."""
    data = yaml.safe_load(SHIPPED)
    node = data
    for part in path[:-1]:
        node = node[part]
    current = node.get(path[-1])
    if isinstance(value, dict):
        node[path[-1]] = {**(current or {}), **value}
    else:
        node[path[-1]] = [*(current or []), value]
    return yaml.safe_dump(data, sort_keys=False)


URLS = [
    f"https://alice:{SECRET}@mirror.example/conda-forge",
    f"https://{SECRET}@mirror.example/conda-forge",
    f"https://conda.example/t/{SECRET}/conda-forge",
    f"https://mirror.example/conda-forge?token={SECRET}",
]
PLACES = [
    (("dependencies",), "{url}::ffmpeg", "dependencies.", "conda match spec"),
    (("dependencies",), "ffmpeg[channel={url}]", "dependencies.", "conda match spec"),
    (("targets", "linux-cuda", "torch"), "{url}::pytorch=*=cuda*", "targets.linux-cuda.torch.", "conda match spec"),
    (("targets", "linux-cpu", "packages"), "{url}::gcc", "targets.linux-cpu.packages.", "conda match spec"),
    (("pip",), "k-diffusion @ {url}/k_diffusion-0.1-py3-none-any.whl", "pip.", "pip requirement"),
    (("targets", "linux-cpu", "pip"), "--index-url {url}", "targets.linux-cpu.pip.", "pip requirement"),
    (("targets", "linux-cpu", "variables"), {"PIP_INDEX_URL": "{url}"}, "variables.PIP_INDEX_URL", "variable value"),
]


def _fill(template: object, url: str) -> object:
    if isinstance(template, dict):
        return {k: v.format(url=url) for k, v in template.items()}
    return str(template).format(url=url)


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize(("path", "template", "field", "what"), PLACES)
def test_credentials_in_a_spec_field_are_one_line_that_never_quotes_them(
    path: tuple[str, ...], template: object, field: str, what: str, url: str
) -> None:
    text = _with(path, _fill(template, url))
    with pytest.raises(SpecError) as info:
        parse_spec(text, Path("envspec.yml"))
    line = info.value.one_line()
    assert SECRET not in line and "\n" not in line
    assert field in line and f"{what} '" in line and "has credentials in a URL" in line
    assert "--mirror NAME=URL or in ENVSPEC_MIRRORS" in line
    assert info.value.exit_code == ExitCode.SPEC_INVALID


@pytest.mark.parametrize("url", URLS)
def test_a_channel_url_is_no_channel_name_and_is_not_quoted(url: str) -> None:
    with pytest.raises(SpecError, match=r"channels\.1: String should match pattern") as info:
        parse_spec(_with(("channels",), url), Path("envspec.yml"))
    assert SECRET not in info.value.one_line()


def test_channel_names_and_urls_without_secrets_in_variables_still_load() -> None:
    spec = parse_spec(_with(("dependencies",), "conda-forge::ffmpeg"), Path("envspec.yml"))
    assert "conda-forge::ffmpeg" in spec.document.dependencies
    parse_spec(_with(("targets", "linux-cpu", "variables"), {"HF_ENDPOINT": "https://hub.example/"}), Path("x"))


def test_render_writes_nothing_and_prints_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "envspec.yml"
    spec.write_text(_with(("dependencies",), f"https://alice:{SECRET}@mirror.example/conda-forge::ffmpeg"))
    assert main(["--spec", str(spec), "render"]) == ExitCode.SPEC_INVALID
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err and captured.err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["envspec.yml"]


TOKEN = st.text(alphabet="abcdefghijkLMNOP0123456789-_.~", min_size=6, max_size=24)


@given(
    token=TOKEN,
    form=st.sampled_from(
        ["https://u:{t}@h.example/c", "https://{t}@h.example/c", "https://h.example/t/{t}/c", "http://h/c?token={t}"]
    ),
    place=st.sampled_from(PLACES),
)
def test_no_credential_form_in_any_field_loads_or_is_quoted(
    token: str, form: str, place: tuple[tuple[str, ...], object, str, str]
) -> None:
    path, template, _, _ = place
    text = _with(path, _fill(template, form.format(t=token)))
    with pytest.raises(SpecError) as info:
        parse_spec(text, Path("envspec.yml"))
    assert token not in info.value.one_line()


@pytest.mark.parametrize(
    "dep",
    ["https://mirror.example/cf::numpy", "numpy[channel=https://mirror.example/cf]", "file:///srv/chan::numpy",
     "/srv/chan::numpy", "./chan::numpy"],
)  # fmt: skip
def test_a_match_spec_never_names_its_channel_by_url_or_path(dep: str) -> None:
    """Even without a secret, a URL in a match spec would carry a mirror's address into environment
    files and lockfiles, past --mirror: channels are named, mirrors are given at run time."""
    text = SHIPPED.replace("dependencies:\n", f'dependencies:\n  - "{dep}"\n', 1)
    with pytest.raises(SpecError) as info:
        parse_spec(text, Path("envspec.yml"))
    line = info.value.one_line()
    assert "names a channel by URL or path" in line and "--mirror NAME=URL" in line and "\n" not in line


@pytest.mark.parametrize("name", ["HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "PIP_PASSWORD", "OPENAI_API_KEY", "hf_token"])
def test_a_variable_named_like_a_secret_is_refused_whatever_its_value(name: str) -> None:
    """HF_TOKEN: hf_abc... has no URL to redact, yet it is a secret: the name says so."""
    data = yaml.safe_load(SHIPPED)
    data["targets"]["linux-cpu"].setdefault("variables", {})[name] = "hf_" + SECRET
    with pytest.raises(SpecError) as info:
        parse_spec(yaml.safe_dump(data), Path("envspec.yml"))
    line = info.value.one_line()
    assert f"{name} is named like a secret" in line and SECRET not in line and info.value.tip


@pytest.mark.parametrize("name", ["TOKENIZERS_PARALLELISM", "HF_HUB_OFFLINE", "PYTORCH_ENABLE_MPS_FALLBACK", "AUTHOR"])
def test_ordinary_variables_are_not_taken_for_secrets(name: str) -> None:
    data = yaml.safe_load(SHIPPED)
    data["targets"]["linux-cpu"].setdefault("variables", {})[name] = "1"
    assert parse_spec(yaml.safe_dump(data), Path("envspec.yml")).document.targets["linux-cpu"].variables[name] == "1"

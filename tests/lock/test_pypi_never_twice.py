"""The PyPI part never installs what conda provides: a second copy of a conda package, or torch's
own CUDA runtime wheels beside conda's pytorch (named as torch's metadata lists them, never by prefix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envspec.errors import ExitCode, UnsatisfiableError
from envspec.lock import pypi, pypi_resolve
from envspec.lock.condalock import PipPackage


def test_nothing_is_installed_twice_from_pypi_beside_conda() -> None:
    """A pip package conda already provides (by the maintained mapping), or PyPI torch's CUDA runtime
    beside conda's pytorch, would be a second copy: refused with the names (exit 4)."""
    wheel = "http://i/{}-1-py3-none-any.whl"
    ok = [PipPackage("envspec-demo", "1", wheel.format("envspec_demo"), "a" * 64)]
    pypi.check_not_twice("t", ok, frozenset({"python", "pytorch", "pillow"}))
    twice = [*ok, PipPackage("torch", "2.13.0", wheel.format("torch"), "b" * 64)]
    with pytest.raises(UnsatisfiableError) as err:
        pypi.check_not_twice("t", twice, frozenset({"python", "pytorch"}))
    assert "would install torch (conda's pytorch) from PyPI beside the conda packages" in err.value.message
    assert err.value.exit_code == ExitCode.UNSATISFIABLE
    # a name the old 41-entry seed did not know: conda-forge's matplotlib-base provides matplotlib
    mpl = [PipPackage("matplotlib", "3.10.5", wheel.format("matplotlib"), "e" * 64)]
    with pytest.raises(UnsatisfiableError, match="matplotlib"):
        pypi.check_not_twice("t", mpl, frozenset({"python", "matplotlib-base"}))
    cuda = [*ok, PipPackage("nvidia-cudnn-cu12", "9", wheel.format("nvidia_cudnn_cu12"), "c" * 64)]
    with pytest.raises(UnsatisfiableError, match="nvidia-cudnn-cu12"):
        pypi.check_not_twice("t", cuda, frozenset({"python", "pytorch"}))
    pypi.check_not_twice("t", cuda, frozenset({"python"}))  # no conda torch: PyPI's runtime is the only one
    pillow = [PipPackage("pillow", "11", wheel.format("pillow"), "d" * 64)]
    with pytest.raises(UnsatisfiableError, match="pillow"):
        pypi.check_not_twice("t", pillow, frozenset({"pillow"}))


def test_nvidia_ml_py_is_no_torch_runtime_wheel() -> None:
    """NVML's bindings (pynvml needs them; conda's pytorch does not provide them): no false refusal."""
    nvml = [PipPackage("nvidia-ml-py", "13.615.71", "http://i/nvidia_ml_py-13.615.71-py3-none-any.whl", "a" * 64)]
    pypi.check_not_twice("t", nvml, frozenset({"python", "pytorch"}))


def test_torch_cuda_13_runtime_wheels_are_refused_beside_condas_pytorch() -> None:
    """torch 2.11+ on PyPI brings CUDA 13 through cuda-toolkit's extras: wheels without a -cu13 suffix
    (nvidia-cuda-runtime, nvidia-cufft...). Asked for directly beside conda's pytorch: refused by name."""
    wheel = "http://i/{}-13.0.96-py3-none-manylinux_2_27_x86_64.whl"
    for name in ("nvidia-cuda-runtime", "nvidia-cufft", "nvidia-nvjitlink", "nvidia-cudnn-cu13"):
        cuda13 = [PipPackage(name, "13.0.96", wheel.format(name.replace("-", "_")), "a" * 64)]
        with pytest.raises(UnsatisfiableError, match=f"install {name} from PyPI: PyPI torch's own CUDA runtime"):
            pypi.check_not_twice("t", cuda13, frozenset({"python", "pytorch"}))


def test_the_runtime_names_are_those_pypi_torch_lists() -> None:
    """TORCH_RUNTIME_WHEELS is exactly what the recorded PyPI torch wheels (2.7.1 and 2.9.0: CUDA 12;
    2.13.0: CUDA 13) require that is not a plain Python library, plus what the extras they ask of
    cuda-toolkit (recorded too) require: the CUDA 13 library wheels, which carry no -cu13 suffix."""
    from packaging.requirements import Requirement

    recorded = Path(__file__).resolve().parents[1] / "data" / "pypi" / "metadata"

    def requires(path: Path) -> list[Requirement]:
        text = path.read_text(encoding="utf-8")
        return [Requirement(line.split(":", 1)[1]) for line in text.splitlines() if line.startswith("Requires-Dist:")]

    linux = {
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "python_version": "3.12",
    }
    torch = [r for path in recorded.glob("torch-*.metadata") for r in requires(path)]
    direct = [r for r in torch if r.marker is None or r.marker.evaluate({**linux, "extra": ""})]
    listed = {pypi_resolve.canonical(r.name) for r in direct}
    extras = {e for r in direct if r.name == "cuda-toolkit" for e in r.extras}
    assert {"cublas", "cudart", "cufft"} <= extras, extras  # torch 2.13.0 asks for cuda-toolkit[cublas,...]
    (toolkit,) = recorded.glob("cuda_toolkit-*.metadata")
    listed |= {
        pypi_resolve.canonical(r.name)
        for r in requires(toolkit)
        if r.marker is not None and any(r.marker.evaluate({**linux, "extra": e}) for e in extras)
    }
    python_libraries = {"filelock", "typing-extensions", "setuptools", "sympy", "networkx", "jinja2", "fsspec"}
    assert listed - python_libraries == pypi.TORCH_RUNTIME_WHEELS
    assert {"nvidia-cuda-runtime", "nvidia-cudnn-cu13", "nvidia-nvjitlink"} <= pypi.TORCH_RUNTIME_WHEELS
    assert "nvidia-ml-py" not in pypi.TORCH_RUNTIME_WHEELS

"""Command line of the smoke test. Exit 0: all checks pass; 1: a check failed; 2: setup error.

Never a traceback: every failure ends in the one-line verdict (and ``smoke.json`` when writable).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envspec.smoke import report
from envspec.smoke.capture import drop_irrelevant_notices
from envspec.smoke.errors import SmokeSetupError

if TYPE_CHECKING:
    from envspec.smoke.run import Options

# The exit codes of envspec.errors.ExitCode this package uses (a copy: envspec is not installed here).
EXIT_OK, EXIT_FAILED, EXIT_SETUP, EXIT_INTERRUPTED = 0, 1, 10, 130

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DIFFUSERS_NO_ADVISORY_WARNINGS": "1",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m envspec.smoke",
        description="Generate one image offline in this environment, check it, and say in one line "
        "whether the environment works on the accelerator its target promises.",
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options, shared with ``envspec smoke`` (which passes them through)."""
    where = parser.add_argument_group("device")
    where.add_argument("--device", choices=("cuda", "mps", "cpu"), help="force a device (default: cuda > mps > cpu)")
    where.add_argument(
        "--expect",
        choices=("cuda", "mps", "cpu"),
        help="the promised device (default: $ENVSPEC_DEVICE, else <prefix>/conda-meta/state)",
    )
    where.add_argument("--target", help="target name for the report (default: $ENVSPEC_TARGET or the state file)")
    where.add_argument(
        "--allow-cpu",
        action="store_true",
        help="run on cpu when the promised device is missing (CI runners without GPU)",
    )
    what = parser.add_argument_group("model")
    what.add_argument(
        "--model",
        metavar="PATH",
        help="diffusers folder, .safetensors or .ckpt (default: models/ldm/stable-diffusion-v1/"
        "model.ckpt if present, else a tiny random pipeline)",
    )
    what.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow unpickling a .ckpt once, converting it to .safetensors beside it",
    )
    what.add_argument("--tokenizer", metavar="DIR", help="CLIP tokenizer folder for a single-file checkpoint")
    what.add_argument(
        "--config",
        metavar="DIR",
        help="diffusers-layout config folder for a single-file checkpoint (default: envspec's SD-v1)",
    )
    what.add_argument("--resolution", type=_positive, metavar="PX", help="image size (tiny 128, model 512)")
    what.add_argument("--steps", type=_positive, help="DDIM steps (tiny 8, model 50)")
    what.add_argument("--seed", type=int, default=0)
    what.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale (7.5)")
    what.add_argument("--out", metavar="DIR", default="outputs/smoke", help="where smoke.png/smoke.json go")
    bench = parser.add_argument_group("benchmark")
    bench.add_argument(
        "--benchmark",
        action="store_true",
        help="time the full-size SD-1 UNet (random weights, 512x512, guidance, batch 2)",
    )
    bench.add_argument("--compile", action="store_true", help="benchmark the fast path: torch.compile the UNet")
    bench.add_argument(
        "--compile-mode",
        default="reduce-overhead",
        choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
    )
    bench.add_argument(
        "--channels-last",
        dest="channels_last",
        action="store_true",
        default=None,
        help="channels_last UNet (default: on with --compile)",
    )
    bench.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    bench.add_argument("--benchmark-steps", type=_positive, default=20, metavar="N", help="timed steps (20)")
    bench.add_argument("--warmup-steps", type=_positive, default=3, metavar="N", help="untimed steps first (3)")


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def main(argv: list[str] | None = None, started: float | None = None) -> int:
    started = time.perf_counter() if started is None else started
    args = build_parser().parse_args(argv)
    for key, value in OFFLINE_ENV.items():  # before diffusers/transformers read them at import
        os.environ[key] = value
    drop_irrelevant_notices()  # before diffusers/transformers are imported, too
    from envspec.smoke.run import Options

    opts = Options(
        out=Path(args.out),
        cwd=Path.cwd(),
        device=args.device,
        expect=args.expect,
        target=args.target,
        allow_cpu=args.allow_cpu,
        model=args.model,
        trust_pickle=args.trust_pickle,
        tokenizer=args.tokenizer,
        config=args.config,
        resolution=args.resolution,
        steps=args.steps,
        seed=args.seed,
        guidance=args.guidance,
        benchmark=args.benchmark,
        compile=args.compile,
        compile_mode=args.compile_mode,
        channels_last=args.channels_last,
        benchmark_steps=args.benchmark_steps,
        warmup_steps=args.warmup_steps,
    )
    mode = "benchmark" if opts.benchmark else "tiny"
    rep = report.empty_report(opts.target, mode, opts.seed, opts.allow_cpu)
    png, code = execute(opts, rep)
    rep["timings_s"]["total"] = round(time.perf_counter() - started, 3)
    rep["memory"]["peak_host_mib"] = report.peak_host_mib()
    if not rep["versions"]:  # a setup error before the libraries were looked at
        rep["versions"] = report.library_versions()
    if code in (EXIT_OK, EXIT_FAILED):
        from envspec.smoke.run import conclude

        code = conclude(rep)
    try:
        report.write_report(opts.out, rep, png)
    except (OSError, ValueError) as exc:
        rep["verdict"] = "error"
        rep["message"] = f"error: cannot write the report to {opts.out}: {exc}"
        code = EXIT_SETUP
    print(report.verdict_line(rep), flush=True)
    return code


def execute(opts: Options, rep: dict[str, Any]) -> tuple[bytes | None, int]:
    """Run the smoke test or the benchmark; turn every failure into (None, exit code) and a message."""
    from envspec.smoke import run

    png: bytes | None
    try:
        if opts.benchmark:
            from envspec.smoke import benchmark

            png = benchmark.run_benchmark(opts, rep)
        else:
            png = run.run_smoke(opts, rep)
        rep["memory"]["peak_device_mib"] = run.peak_device_mib(rep["device"])
        return png, EXIT_OK
    except SmokeSetupError as exc:
        rep["message"] = exc.one_line()
    except KeyboardInterrupt:
        rep["message"] = "error: interrupted"
        return None, EXIT_INTERRUPTED
    except Exception as exc:  # torch/diffusers failures (no CUDA kernel, OOM, bad checkpoint): a setup error
        if os.environ.get("ENVSPEC_DEBUG"):
            import traceback

            traceback.print_exc(file=sys.stderr)
        first = " ".join(str(exc).split())[:400]
        rep["message"] = f"error: {type(exc).__name__}: {first} (tip: set ENVSPEC_DEBUG=1 for the traceback)"
    rep["verdict"] = "error"
    return None, EXIT_SETUP


def to_argv(args: argparse.Namespace, skip: frozenset[str] = frozenset()) -> list[str]:
    """Rebuild the smoke options found in ``args`` as a command line (for ``envspec smoke``).

    Only options that differ from their defaults are written; ``skip`` names dests to leave out.
    """
    argv: list[str] = []
    seen: set[str] = set(skip) | {"help"}
    for action in build_parser()._actions:
        if not action.option_strings or action.dest in seen:
            continue
        seen.add(action.dest)  # --channels-last / --no-channels-last share one dest (default None)
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        flag = action.option_strings[0]
        if action.dest == "channels_last":
            argv.append("--channels-last" if value else "--no-channels-last")
        elif isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
            argv.append(flag)
        else:
            argv += [flag, str(value)]
    return argv

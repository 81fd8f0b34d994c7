"""The ``actinf`` command line.

``actinf spm run PATH...`` solves SPM problems (reference JSON cases or MATLAB
``.mat`` files holding an ``MDP`` structure array) with SPM's scheme in float64,
writes every output in the reference JSON schema and, with ``--check``, compares
them with SPM's own. See ``docs/cli.md``.

``actinf worlds`` lists the ready-made worlds (:data:`actinf.worlds.WORLDS`) and
``actinf run WORLD`` runs agents in one and saves what they did
(:mod:`actinf.run`: ``trajectory.npz``, ``summary.json``, figures).

The app is a group of groups: ``spm`` is one sub-app (:data:`spm_app`); ``run`` and
``worlds`` are commands beside it, as are ``actinf fit``, ``actinf recover`` and
``actinf bench`` (speed, side by side with pymdp: :mod:`actinf.bench`); later ones
are added with ``app.command()`` or ``app.add_typer()``.

Importing this module is cheap: JAX, SciPy, rich, the SPM runner and
:mod:`actinf.run` are imported inside the command functions.
"""

import dataclasses
import itertools
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

_CASES_RUN = itertools.count()

__all__ = ["app", "main", "spm_app"]

app = typer.Typer(
    name="actinf",
    help="Active inference on JAX: SPM-exact discrete active inference.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

spm_app = typer.Typer(
    name="spm",
    help="SPM12 compatibility: solve SPM problems (JSON or MATLAB .mat) as spm_MDP_VB_X.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(spm_app, name="spm")

#: Exit status: every case ran (and, with --check, passed).
EXIT_OK = 0
#: Exit status: some case failed its check or could not be read, run or written.
EXIT_FAILED = 1
#: Exit status: bad usage, or the output folder cannot be created or written.
EXIT_USAGE = 2


def _version_callback(value: bool) -> None:
    if value:
        from . import __version__

        print(f"actinf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Show the version and exit.",
            callback=_version_callback,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Active inference on JAX: SPM-exact discrete active inference."""


# --------------------------------------------------------------------------- helpers


def _use_cpu_cores() -> None:
    """Present every CPU core as a device, before anything computes: fits split
    their participants over them (``actinf.fit.devices``)."""
    from .fit.devices import use_cpu_cores

    use_cpu_cores()


def _use_compilation_cache() -> None:
    """Keep compiled programs on disk so that the next run starts at once
    (``actinf.cache``; ``ACTINF_NO_CACHE=1`` switches it off)."""
    from .cache import cache_disabled, enable_compilation_cache

    if cache_disabled():
        return
    try:
        enable_compilation_cache()
    except OSError:  # a read-only home: run without the cache
        pass


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class _Lines:
    """Where the command's lines go: per-case lines to stdout, ``error: ...`` lines to
    stderr. While a progress bar is live on the terminal, lines bound for the terminal are
    printed above it, unwrapped."""

    def __init__(self) -> None:
        self.console: Any = None  # the live progress bar's console (on stderr)

    def _above_bar(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def say(self, line: str) -> None:
        if self.console is not None and sys.stdout.isatty():
            self._above_bar(line)
        else:
            print(line, file=sys.stdout, flush=True)

    def error(self, message: object) -> None:
        line = f"error: {_one_line(message)}"
        if self.console is not None:
            self._above_bar(line)
        else:
            print(line, file=sys.stderr, flush=True)

    @contextmanager
    def progress(self, total: int) -> Iterator[Callable[[int, str], None]]:
        """Yield ``show(done, description)``: a rich progress bar on stderr when more than
        three files are processed and stderr is a terminal, else a no-op."""
        if total <= 3 or not sys.stderr.isatty():
            yield lambda done, description: None
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
            redirect_stdout=False,  # a piped stdout stays untouched
            redirect_stderr=True,  # stray warnings go above the bar
        )
        with progress:
            task = progress.add_task("spm run", total=total)
            self.console = progress.console

            def show(done: int, description: str) -> None:
                progress.update(task, completed=done, description=description)

            try:
                yield show
            finally:
                self.console = None


def _format_error(value: float) -> str:
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)  # inf or nan
    return f"{value:.0e}"


def _error_summary(errors: dict[str, float], keys: Sequence[str], tolerance: float) -> str:
    """``X 2e-16  Q 3e-16 ...`` in schema order; an error over tolerance gets a ``!``."""
    parts = []
    for key in [k for k in keys if k in errors] + sorted(set(errors) - set(keys)):
        err = errors[key]
        mark = "" if err <= tolerance else "!"
        parts.append(f"{key} {_format_error(err)}{mark}")
    return "  ".join(parts)


def _output_path(path: Path, out_dir: Path | None) -> Path:
    if out_dir is not None:
        return out_dir / f"{path.stem}.json"
    if path.suffix.lower() == ".json":
        return path.with_name(f"{path.stem}.out.json")
    return path.with_name(f"{path.stem}.json")


def _reference_path(path: Path, reference: Path | None) -> Path | None:
    """Where to find SPM's outputs for an input that holds none: ``--reference DIR``, else
    (``.mat`` only) ``../vbx/`` beside the file's folder."""
    if reference is not None:
        return reference / f"{path.stem}.json"
    if path.suffix.lower() == ".mat":
        return path.absolute().parent.parent / "vbx" / f"{path.stem}.json"
    return None


def _mat_has_options(path: Path) -> bool:
    import scipy.io

    return any(name == "OPTIONS" for name, *_ in scipy.io.whosmat(str(path)))


def _key(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


@dataclasses.dataclass
class _RunSettings:
    out_dir: Path | None
    check: bool
    reference: Path | None
    gamma_fixed: bool | None
    rng_key: Any
    lines: _Lines
    inputs: frozenset[Path]  # resolved input paths: never written over
    written: dict[Path, Path]  # resolved output path -> input that wrote it


def _run_one(path: Path, opts: _RunSettings) -> bool:
    """Load, solve, write and (with ``--check``) compare one case; print its line.

    Returns whether the case succeeded. User errors (unreadable or invalid input,
    invalid model, unwritable output) are reported on stderr as one line.
    """
    import jax

    from .model import ModelError
    from .spm.io import OUTPUT_KEYS, SpmInputError, load_case, write_case_json
    from .spm.runner import TOLERANCE, compare, passes, run_case

    name = path.stem

    def fail(reason: str) -> bool:
        opts.lines.say(f"{name}  FAIL  {reason}")
        return False

    try:
        case = load_case(path)
    except SpmInputError as exc:
        opts.lines.error(exc)
        return fail("unreadable input (see error)")
    except OSError as exc:
        opts.lines.error(f"{path}: {exc.strerror or exc}")
        return fail("unreadable input (see error)")
    name = case.name

    dest = _output_path(path, opts.out_dir)
    dest_key = _key(dest)
    if dest_key in opts.inputs:
        opts.lines.error(f"{path}: its output {dest} would overwrite an input file; choose another --out")
        return fail("output would overwrite an input")
    if dest_key in opts.written:
        opts.lines.error(
            f"{path}: its output {dest} was already written for {opts.written[dest_key]} "
            "in this run; choose another --out"
        )
        return fail("output name already used")
    is_mat = path.suffix.lower() == ".mat"
    own_outputs = any(trial.outputs for trial in case.trials)

    # SPM's outputs to compare with (and, for a .mat without OPTIONS, its gamma option).
    ref_path = None if own_outputs else _reference_path(path, opts.reference)
    ref_case = None
    has_options = _mat_has_options(path) if is_mat else True
    wants_ref = opts.check or (is_mat and not has_options and opts.gamma_fixed is None)
    if ref_path is not None and wants_ref and ref_path.is_file():
        try:
            ref_case = load_case(ref_path)
        except SpmInputError as exc:
            opts.lines.error(f"reference for {path}: {exc}")
            return fail("unreadable reference (see error)")
        if len(ref_case.trials) != len(case.trials):
            opts.lines.error(
                f"{path}: has {len(case.trials)} trials but its reference {ref_path} "
                f"has {len(ref_case.trials)}"
            )
            return fail("reference does not match")

    if opts.gamma_fixed is not None:
        gamma_fixed = opts.gamma_fixed
    elif is_mat and not has_options and ref_case is not None:
        gamma_fixed = bool(ref_case.options.get("gamma_fixed", False))
    else:
        gamma_fixed = bool(case.options.get("gamma_fixed", False))

    try:
        outputs = run_case(case, gamma_fixed=gamma_fixed, rng_key=opts.rng_key)
    except ModelError as exc:
        opts.lines.error(f"{path}: {exc}")
        return fail("invalid model (see error)")
    finally:
        # compiled code accumulates over many cases (each executable maps memory):
        # free it now and then, not after every case, which would also throw away
        # the small kernels every case reuses
        if next(_CASES_RUN) % 16 == 15:
            jax.clear_caches()

    # Write the case as run: its options, the trials' s, o, u as used, every output.
    import numpy as np

    trials = tuple(
        dataclasses.replace(
            trial,
            s=np.asarray(out["s"]),
            o=np.asarray(out["o"]),
            u=np.asarray(out["u"]),
            outputs={},
        )
        for trial, out in zip(case.trials, outputs, strict=True)
    )
    ran = dataclasses.replace(case, trials=trials, options={**case.options, "gamma_fixed": gamma_fixed})
    written = True
    try:
        write_case_json(ran, [{k: v for k, v in out.items() if k in OUTPUT_KEYS} for out in outputs], dest)
    except OSError as exc:
        opts.lines.error(f"{dest}: cannot write output for {path} ({exc.strerror or exc})")
        written = False
    else:
        opts.written[dest_key] = path

    if not opts.check:
        if not written:
            return fail("output not written (see error)")
        opts.lines.say(f"{name}  {dest}")
        return True

    target = case if own_outputs else ref_case
    if target is None:
        if ref_path is None:
            reason = "nothing to compare with: the file holds no outputs"
        else:
            reason = f"nothing to compare with: the file holds no outputs and {ref_path} is missing"
        return fail(reason)
    errors = compare(outputs, target)
    ok = passes(errors, TOLERANCE) and written
    summary = _error_summary(errors, OUTPUT_KEYS, TOLERANCE) or "no outputs compared"
    if not written:
        summary += "  (output not written)"
    opts.lines.say(f"{name}  {'PASS' if ok else 'FAIL'}  {summary}")
    return ok


def _prepare_out_dir(out: Path, lines: _Lines) -> None:
    """Create the output folder; exit with status 2 and one line if it cannot be used."""
    if out.exists() and not out.is_dir():
        lines.error(f"{out}: output folder is a file")
        raise typer.Exit(EXIT_USAGE)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        lines.error(f"{out}: cannot create output folder ({exc.strerror or exc})")
        raise typer.Exit(EXIT_USAGE) from None
    if not os.access(out, os.W_OK | os.X_OK):
        lines.error(f"{out}: output folder is not writable")
        raise typer.Exit(EXIT_USAGE)


# ------------------------------------------------------------------------ spm run


@spm_app.command("run")
def spm_run(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Case files (.json, or .mat with an MDP structure array) or folders of them.",
            metavar="PATH",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for the outputs OUT/NAME.json [default: beside each input].",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Compare with SPM's outputs; exit 1 on any failure.",
        ),
    ] = False,
    reference: Annotated[
        Path | None,
        typer.Option(
            "--reference",
            help="Folder of reference JSONs for inputs holding no outputs [default for a .mat: ../vbx/].",
            exists=True,
            file_okay=False,
            dir_okay=True,
            show_default=False,
        ),
    ] = None,
    gamma_fixed: Annotated[
        bool | None,
        typer.Option(
            "--gamma-fixed/--no-gamma-fixed",
            help="Fix the policy precision (OPTIONS.gamma = 1) [default: as the case].",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Seed for sampling what a case leaves unspecified [default: 0].",
            metavar="N",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Solve SPM problems as spm_MDP_VB_X (float64) and write every output as JSON.

    Outputs go to OUT/NAME.json with -o, else beside each input (NAME.out.json for a
    .json, NAME.json for a .mat). With --check, one line per case and a closing
    'N passed, M failed'. A .mat holding no outputs is checked against NAME.json in
    --reference, else in ../vbx/ beside the .mat's folder. Exit status: 0 all good,
    1 some case failed or could not be read or written, 2 bad usage or output folder.
    """
    from .spm.io import iter_case_paths

    if seed is not None and not 0 <= seed < 2**63:
        raise typer.BadParameter("must be between 0 and 2**63 - 1", param_hint="--seed")
    lines = _Lines()
    if out is not None:
        _prepare_out_dir(out, lines)
    files = iter_case_paths(paths)

    import jax

    previous_x64 = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", True)  # SPM computes in double precision
    try:
        opts = _RunSettings(
            out_dir=out,
            check=check,
            reference=reference,
            gamma_fixed=gamma_fixed,
            rng_key=None if seed is None else jax.random.PRNGKey(seed),
            inputs=frozenset(_key(p) for p in files if p.is_file()),
            written={},
            lines=lines,
        )
        passed = failed = 0
        with warnings.catch_warnings(), lines.progress(len(files)) as show:
            # The scheme's index updates mix int32 and int64 under x64: harmless noise.
            warnings.filterwarnings(
                "ignore", message="scatter inputs have incompatible types", category=FutureWarning
            )
            for done, path in enumerate(files):
                show(done, path.name)
                if _run_one(path, opts):
                    passed += 1
                else:
                    failed += 1
            show(len(files), "done")
    finally:
        jax.config.update("jax_enable_x64", previous_x64)

    lines.say(f"{passed} passed, {failed} failed" if check else f"{passed} written, {failed} failed")
    if failed:
        raise typer.Exit(EXIT_FAILED)


# ------------------------------------------------------------------ worlds and run

#: ``actinf run`` shows its progress bar on a non-terminal too from this many agent-trials.
LARGE_RUN = 10_000


@app.command("worlds")
def worlds() -> None:
    """List the ready-made worlds for `actinf run`, with their options and defaults."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .worlds import WORLDS

    table = Table(title="worlds (actinf run WORLD -O key=value ...)", show_lines=True)
    table.add_column("world", no_wrap=True, style="bold")
    table.add_column("description")
    table.add_column("options (default)", no_wrap=True)
    for name, spec in WORLDS.items():
        options = "\n".join(f"{key}={value!r}" for key, value in spec.options.items())
        table.add_row(Text(name), Text(spec.description), Text(options or "-"))
    Console().print(table)


def _as_tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_as_tuples(v) for v in value)
    return value


def _option_value(text: str) -> Any:
    """A Python literal (number, tuple, list, None, True, quoted string), else the text itself;
    lists become tuples."""
    import ast

    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text
    return _as_tuples(value)


def _world_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings as a dict; ``ValueError`` for a malformed or repeated one."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--option {pair!r}: expected key=value, e.g. -O depth=3")
        if key in options:
            raise ValueError(f"--option {key} given twice")
        options[key] = _option_value(text.strip())
    return options


@contextmanager
def _progress_bar(label: str, unit: str, lines: _Lines) -> Iterator[tuple[Any, Any]]:
    """A rich progress bar on stderr counting ``unit`` (the task reads "LABEL (compiling)" until
    the first update); yields ``(progress, task)``. Warnings print above it meanwhile."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
        redirect_stdout=False,
        redirect_stderr=True,
    )
    with progress:
        task = progress.add_task(f"{label} (compiling)", total=None)
        lines.console = progress.console
        try:
            yield progress, task
        finally:
            lines.console = None


@contextmanager
def _run_progress(show: bool, world: str, lines: _Lines) -> Iterator[Callable[[int, int], None] | None]:
    """Yield ``progress(done, total)`` for :func:`actinf.run.run_world` (a rich bar on stderr), or None."""
    if not show:
        yield None
        return
    with _progress_bar(world, "trials", lines) as (progress, task):

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, description=world)

        yield update


def _mean_sd(summary: dict[str, Any], trial: int) -> str:
    mean, sd = (summary["utility_per_trial"][k][trial] for k in ("mean", "sd"))
    if mean is None:
        return "nan"
    return f"{mean:.3g}" if summary["agents"] == 1 else f"{mean:.3g} ± {sd:.2g}"


@app.command("run")
def run(
    world: Annotated[
        str,
        typer.Argument(help="The world (see `actinf worlds`).", metavar="WORLD", show_default=False),
    ],
    trials: Annotated[int, typer.Option("--trials", "-n", help="Trials per agent.", metavar="N")] = 8,
    agents: Annotated[
        int, typer.Option("--agents", "-k", help="Independent agents, each in its own world.", metavar="K")
    ] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the run's random key.", metavar="S")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output folder [default: runs/WORLD].", metavar="DIR", show_default=False
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-O",
            help="World option as key=value (a Python literal or a string); repeat for several.",
            metavar="KEY=VALUE",
            show_default=False,
        ),
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(
            "--alpha", help="Action precision of sampled actions [default: 512].", show_default=False
        ),
    ] = None,
    deterministic: Annotated[
        bool, typer.Option("--deterministic", help="Take the most probable action instead of sampling.")
    ] = False,
    learning_rate: Annotated[
        float | None,
        typer.Option(
            "--learning-rate", help="Learning rate of the Dirichlet counts [default: 1].", show_default=False
        ),
    ] = None,
    forgetting: Annotated[
        float | None,
        typer.Option(
            "--forgetting", help="Forgetting of learned counts, in [0, 1] [default: 0].", show_default=False
        ),
    ] = None,
    no_learning: Annotated[
        bool, typer.Option("--no-learning", help="Keep the model's counts fixed.")
    ] = False,
    inference: Annotated[
        str | None,
        typer.Option(
            "--inference",
            help="State inference: mmp (SPM's marginal message passing) or fixed-point "
            "[default: mmp when trials are as long as the policies, else fixed-point].",
            metavar="mmp|fixed-point",
            show_default=False,
        ),
    ] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Do not write the figures.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")] = False,
) -> None:
    """Run active inference agents in a world; write trajectory.npz, summary.json and figures.

    K agents (--agents) each act in their own copy of WORLD for N trials (--trials),
    learning from trial to trial. The run compiles once, then goes in chunks of up
    to 8 trials. See docs/cli.md for the files. Exit status: 0 done, 1 the results
    could not be written, 2 bad usage (unknown world or option, bad value, output
    folder not writable).
    """
    _use_compilation_cache()
    lines = _Lines()

    def usage(message: object) -> typer.Exit:
        lines.error(message)
        return typer.Exit(EXIT_USAGE)

    for name, value in (("--trials", trials), ("--agents", agents)):
        if value < 1:
            raise usage(f"{name} must be at least 1, got {value}")
    if not 0 <= seed < 2**63:
        raise usage(f"--seed must be between 0 and 2**63 - 1, got {seed}")
    if inference not in (None, "mmp", "fixed-point"):
        raise usage(f"--inference must be mmp or fixed-point, got {inference!r}")
    if no_learning and (learning_rate is not None or forgetting is not None):
        raise usage("--no-learning excludes --learning-rate and --forgetting")
    try:
        options = _world_options(option or [])
    except ValueError as exc:
        raise usage(exc) from None

    from .worlds import WORLDS

    if world not in WORLDS:
        raise usage(f"unknown world {world!r}: choose one of {', '.join(WORLDS)} (see `actinf worlds`)")
    unknown = sorted(set(options) - set(WORLDS[world].options))
    if unknown:
        raise usage(
            f"unknown option {unknown[0]!r} for world {world!r}: its options are "
            f"{', '.join(WORLDS[world].options)}"
        )

    import jax

    from .agent import Learning
    from .inference.fixed_point import FixedPoint
    from .inference.mmp import MarginalMessagePassing
    from .run import agent_settings, default_agent, run_world, save_run
    from .worlds import make_world

    try:
        the_world = make_world(world, **options)
    except (ValueError, TypeError) as exc:
        raise usage(f"world {world!r}: {exc}") from None
    scheme = {None: None, "mmp": MarginalMessagePassing(), "fixed-point": FixedPoint()}[inference]
    learning = None
    if not no_learning:
        learning = Learning(
            1.0 if learning_rate is None else learning_rate, 0.0 if forgetting is None else forgetting
        )
    try:
        agent = default_agent(
            the_world, inference=scheme, alpha=alpha, deterministic=deterministic, learning=learning
        )
    except ValueError as exc:
        raise usage(f"--inference {inference}: {exc}" if inference else exc) from None

    out = Path("runs") / world if out is None else out
    _prepare_out_dir(out, lines)

    show = not quiet and (sys.stderr.isatty() or trials * agents >= LARGE_RUN)
    began = time.perf_counter()
    with _run_progress(show, world, lines) as progress:
        trajectory = run_world(
            jax.random.key(seed), agent, the_world, trials=trials, agents=agents, progress=progress
        )
    wall = time.perf_counter() - began

    meta = {
        "world": world,
        "options": {**WORLDS[world].options, **options},
        "seed": seed,
        "wall_time_s": round(wall, 3),
        "dtype": str(trajectory.utility.dtype),
    }
    try:
        paths = save_run(trajectory, the_world, out, meta=meta, agent=agent, figures=not no_plots)
    except OSError as exc:
        lines.error(f"{out}: cannot write the results ({exc.strerror or exc})")
        raise typer.Exit(EXIT_FAILED) from None
    except ImportError as exc:
        lines.error(f"figures need matplotlib ({exc}); install it or pass --no-plots")
        raise typer.Exit(EXIT_FAILED) from None
    if quiet:
        return
    summary = json.loads(paths["summary"].read_text(encoding="utf-8"))
    settings = agent_settings(agent)
    lines.say(
        f"{world}: {agents} agent{'s' * (agents != 1)} x {trials} trial{'s' * (trials != 1)} of "
        f"{summary['trial_length']} steps ({settings['inference']['name']}) in {wall:.1f} s"
    )
    lines.say(f"utility per trial: first {_mean_sd(summary, 0)}, last {_mean_sd(summary, trials - 1)}")
    lines.say(f"wrote {out}{os.sep}: {', '.join(p.name for p in paths.values())}")


# --------------------------------------------------------------------- fit and recover


@contextmanager
def _participants_progress(
    show: bool, label: str, lines: _Lines
) -> Iterator[Callable[[int, int], None] | None]:
    """Yield ``progress(done, total)`` for :func:`actinf.fit.runner.fit_dataset` (a rich bar on
    stderr over participants), or None."""
    if not show:
        yield None
        return
    with _progress_bar(label, "participants", lines) as (progress, task):
        start: list[int] = []  # participants done (loaded) at the first call

        def update(done: int, total: int) -> None:
            start[:] = start or [done]
            busy = f"{label} (compiling)" if done == start[0] else label  # until the first chunk ends
            progress.update(task, completed=done, total=total, description=busy)

        yield update


# Options shared by ``actinf fit`` and ``actinf recover``.
_Chunk = Annotated[
    int, typer.Option("--chunk", help="Participants per compiled job (the last is padded).", metavar="N")
]
_Iterations = Annotated[
    int | None,
    typer.Option(
        "--iterations",
        help="L-BFGS iterations (map, laplace), before 2 Newton steps [default: 30].",
        show_default=False,
    ),
]
_Chains = Annotated[
    int | None, typer.Option("--chains", help="NUTS chains [default: 4].", show_default=False)
]
_Warmup = Annotated[
    int | None,
    typer.Option("--warmup", help="NUTS warm-up draws per chain [default: 500].", show_default=False),
]
_Draws = Annotated[
    int | None, typer.Option("--draws", help="NUTS draws per chain [default: 500].", show_default=False)
]
_MaxTreeDepth = Annotated[
    int | None,
    typer.Option(
        "--max-tree-depth",
        help="Largest NUTS tree depth, at most 2^D - 1 leapfrog steps an iteration "
        "after the warm-up [default: 3 for nuts, whose warm-up iterations are single steps; "
        "10 for hierarchical, at least 10 in its warm-up].",
        metavar="D",
        show_default=False,
    ),
]


def _fit_options(
    method: str,
    usage: Callable[[object], typer.Exit],
    *,
    iterations: int | None,
    chains: int | None,
    warmup: int | None,
    draws: int | None,
    seed: int,
    max_tree_depth: int | None = None,
) -> dict[str, int]:
    """The method's options from the command line; ``usage`` errors for ones it does not take."""
    from .fit.runner import METHODS

    if method not in METHODS:
        raise usage(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    sampled = method in ("nuts", "hierarchical")
    given = {
        "--iterations": iterations,
        "--chains": chains,
        "--warmup": warmup,
        "--draws": draws,
        "--max-tree-depth": max_tree_depth,
    }
    for name, value in given.items():
        if value is None:
            continue
        if (name == "--iterations") == sampled:
            takes = "map and laplace" if name == "--iterations" else "nuts and hierarchical"
            raise usage(f"{name} applies to --method {takes}, not {method}")
        if value < 1:
            raise usage(f"{name} must be at least 1, got {value}")
    if not 0 <= seed < 2**32:
        raise usage(f"--seed must be between 0 and 2**32 - 1, got {seed}")
    if sampled:
        options = {
            "chains": chains,
            "warmup": warmup,
            "draws": draws,
            "seed": seed,
            "max_tree_depth": max_tree_depth,
        }
    else:
        options = {"iterations": iterations}
    return {k: v for k, v in options.items() if v is not None}


def _task_or_usage(spec: str, usage: Callable[[object], typer.Exit]) -> Any:
    from .fit.runner import task_from_spec

    try:
        return task_from_spec(spec)
    except ValueError as exc:
        raise usage(exc) from None


def _executor_or_usage(ray: str | None, usage: Callable[[object], typer.Exit]) -> Any:
    import importlib.util

    from .fit.runner import LocalExecutor, RayExecutor

    if ray is None:
        return LocalExecutor()
    if importlib.util.find_spec("ray") is None:
        raise usage("--ray needs Ray, which is not installed: pip install 'actinf[ray]'")
    return RayExecutor(None if ray == "local" else ray)


def _print_estimates(output: Any, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for name in ("parameter", "mean", "sd", "min", "max"):
        table.add_column(name, justify="left" if name == "parameter" else "right")
    names = output.records[0]["parameters"] if output.records else []
    for name in names:
        column = output.estimates[name]
        table.add_row(
            name, *(f"{v:.3g}" for v in (column.mean(), column.std(ddof=1), column.min(), column.max()))
        )
    Console().print(table)


@app.command("fit")
def fit(
    data: Annotated[
        Path,
        typer.Argument(
            help="Behaviour in the long format (.csv, .tsv or .parquet; see docs/fitting.md).",
            metavar="DATA",
            show_default=False,
        ),
    ],
    task: Annotated[
        str,
        typer.Option(
            "--task",
            "-t",
            help="The task: explore-exploit or maze, optionally with parameters fixed "
            "(explore-exploit:learning_rate=0).",
            metavar="TASK",
            show_default=False,
        ),
    ],
    method: Annotated[
        str,
        typer.Option("--method", "-m", help="map, laplace, nuts or hierarchical.", metavar="M"),
    ] = "map",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output folder [default: fits/DATA-METHOD].",
            metavar="DIR",
            show_default=False,
        ),
    ] = None,
    chunk: _Chunk = 25,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Run the chunks on a Ray cluster at ADDRESS ('auto', 'ray://host:10001', or 'local').",
            metavar="ADDRESS",
            show_default=False,
        ),
    ] = None,
    iterations: _Iterations = None,
    chains: _Chains = None,
    warmup: _Warmup = None,
    draws: _Draws = None,
    max_tree_depth: _MaxTreeDepth = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the NUTS sampler.", metavar="S")] = 0,
    compare: Annotated[
        list[str] | None,
        typer.Option(
            "--compare",
            help="Also fit this model and compare it with --task in comparison.csv "
            "(laplace: log evidence; nuts, hierarchical: LOO); repeat for several.",
            metavar="TASK2",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")] = False,
) -> None:
    """Fit an active inference model to behaviour; write one file per participant, estimates.csv, fit.json.

    Participants go in chunks of N (--chunk), each chunk one compiled, vectorised
    job, written to DIR/participants/ as soon as it is done: run the same command
    again after an interruption and it goes on where it stopped. See
    docs/fitting.md. Exit status: 0 done, 1 the data are invalid or the results
    could not be written, 2 bad usage (missing file, unknown task or method, bad
    option, output folder not writable).
    """
    _use_compilation_cache()
    _use_cpu_cores()
    lines = _Lines()

    def usage(message: object) -> typer.Exit:
        lines.error(message)
        return typer.Exit(EXIT_USAGE)

    def failed(message: object) -> typer.Exit:
        lines.error(message)
        return typer.Exit(EXIT_FAILED)

    options = _fit_options(
        method,
        usage,
        iterations=iterations,
        chains=chains,
        warmup=warmup,
        draws=draws,
        seed=seed,
        max_tree_depth=max_tree_depth,
    )
    if chunk < 1:
        raise usage(f"--chunk must be at least 1, got {chunk}")
    if compare and method == "map":
        raise usage("--compare needs a model evidence: use --method laplace, nuts or hierarchical")
    if not data.exists():
        raise usage(f"{data}: no such file")
    if not data.is_file():
        raise usage(f"{data}: not a file")

    import jax

    with jax.enable_x64(True):  # the fits run in double precision
        model = _task_or_usage(task, usage)
        alternatives = [_task_or_usage(spec, usage) for spec in compare or []]
        names = [model.name, *(t.name for t in alternatives)]
        if len(set(names)) != len(names):
            raise usage(f"--compare: the models must differ, got {', '.join(names)}")
        executor = _executor_or_usage(ray, usage)

        from .fit.data import DataError, read_behaviour
        from .fit.runner import fit_dataset

        try:
            ids, behaviour = read_behaviour(data, model)
        except DataError as exc:
            raise failed(f"{data}: {exc}") from None
        except ImportError as exc:
            raise failed(exc) from None
        except OSError as exc:
            raise failed(f"{data}: {exc.strerror or exc}") from None

        out = Path("fits") / f"{data.stem}-{method}" if out is None else out
        _prepare_out_dir(out, lines)
        show = not quiet and sys.stderr.isatty()

        def run_one(the_task: Any, folder: Path, label: str) -> Any:
            with _participants_progress(show, label, lines) as progress:
                return fit_dataset(
                    the_task,
                    ids,
                    behaviour,
                    method=method,
                    out_dir=folder,
                    chunk=chunk,
                    progress=progress,
                    executor=executor,
                    **options,
                )

        outputs = {}
        try:
            outputs[model.name] = run_one(model, out, f"{model.name} ({method})")
            for alternative in alternatives:
                folder = out / "compare" / _safe_name(alternative.name)
                outputs[alternative.name] = run_one(alternative, folder, f"{alternative.name} ({method})")
        except KeyboardInterrupt:
            lines.error(
                f"interrupted; finished participants are saved in {out}: run the same command to resume"
            )
            raise typer.Exit(130) from None
        except ImportError as exc:
            raise failed(exc) from None
        except OSError as exc:
            raise failed(f"{out}: cannot write the results ({exc.strerror or exc})") from None

        comparison = None
        if alternatives:
            try:
                comparison = _compare(outputs, method, out)
            except ImportError as exc:
                raise failed(exc) from None
            except OSError as exc:
                raise failed(f"{out}: cannot write comparison.csv ({exc.strerror or exc})") from None

    if quiet:
        return
    main_output = outputs[model.name]
    loaded = len(ids) - len(main_output.fitted)
    _print_estimates(main_output, f"{model.name}, {method}: estimates over {len(ids)} participants")
    resumed = f" ({loaded} loaded from earlier files)" if loaded else ""
    names = list(main_output.records[0]["parameters"]) if main_output.records else []
    unfinished = int(main_output.estimates[names].isna().any(axis=1).sum())
    if unfinished:
        print(
            f"warning: {unfinished} participant{'s' * (unfinished != 1)} without finite estimates "
            f"(see {out / 'estimates.csv'})",
            file=sys.stderr,
            flush=True,
        )
    lines.say(f"fitted {len(main_output.fitted)} participants{resumed} in {main_output.wall_time_s:.1f} s")
    if comparison is not None:
        from .fit.compare import format_table

        lines.say(format_table(comparison))
    written = ["participants/", "estimates.csv", "fit.json"]
    if method in ("nuts", "hierarchical"):
        written.insert(1, "posterior/")
    if comparison is not None:
        written += ["comparison.csv", "compare/"]
    lines.say(f"wrote {out}{os.sep}: {', '.join(written)}")


def _safe_name(name: str) -> str:
    import re

    return re.sub(r"[^0-9A-Za-z.=_-]+", "_", name).strip(".") or "model"


def _compare(outputs: dict[str, Any], method: str, out: Path) -> Any:
    """Compare the fitted models (Laplace evidence or LOO); write ``comparison.csv``."""
    from .fit import compare as comparing
    from .fit.runner import laplace_result, load_posterior

    if method == "laplace":
        table = comparing.compare_laplace({name: laplace_result(o) for name, o in outputs.items()})
    else:
        table = comparing.compare_loo({name: load_posterior(o.out_dir) for name, o in outputs.items()})
    table.to_csv(out / "comparison.csv")
    return table


@app.command("recover")
def recover(
    task: Annotated[
        str,
        typer.Argument(
            help="The task: explore-exploit or maze (optionally NAME:param=value,...).",
            metavar="TASK",
            show_default=False,
        ),
    ],
    subjects: Annotated[
        int, typer.Option("--subjects", "-s", help="Simulated participants.", metavar="N")
    ] = 50,
    trials: Annotated[int, typer.Option("--trials", "-n", help="Trials per participant.", metavar="T")] = 25,
    method: Annotated[
        str, typer.Option("--method", "-m", help="map, laplace, nuts or hierarchical.", metavar="M")
    ] = "map",
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the simulation (and sampler).", metavar="S")
    ] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Output folder [default: recovery/TASK-METHOD].",
            metavar="DIR",
            show_default=False,
        ),
    ] = None,
    chunk: _Chunk = 25,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray", help="Run the chunks on a Ray cluster at ADDRESS.", metavar="ADDRESS", show_default=False
        ),
    ] = None,
    iterations: _Iterations = None,
    chains: _Chains = None,
    warmup: _Warmup = None,
    draws: _Draws = None,
    max_tree_depth: _MaxTreeDepth = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no table.")] = False,
) -> None:
    """Parameter recovery: simulate participants from the prior, fit them, compare with the truth.

    Writes data.csv (the simulated behaviour), the fit's files, recovery.csv (true and
    recovered values), recovery.json (per parameter r, bias and RMSE) and recovery.png
    (true against recovered). Exit status: 0 done, 1 the results could not be
    written, 2 bad usage.
    """
    _use_compilation_cache()
    _use_cpu_cores()
    lines = _Lines()

    def usage(message: object) -> typer.Exit:
        lines.error(message)
        return typer.Exit(EXIT_USAGE)

    options = _fit_options(
        method,
        usage,
        iterations=iterations,
        chains=chains,
        warmup=warmup,
        draws=draws,
        seed=seed,
        max_tree_depth=max_tree_depth,
    )
    for name, value in (("--subjects", subjects), ("--trials", trials), ("--chunk", chunk)):
        if value < 1:
            raise usage(f"{name} must be at least 1, got {value}")

    import jax

    with jax.enable_x64(True):
        model = _task_or_usage(task, usage)
        executor = _executor_or_usage(ray, usage)
        out = Path("recovery") / f"{_safe_name(model.name)}-{method}" if out is None else out
        _prepare_out_dir(out, lines)

        from .fit.runner import recover as run_recovery

        # --seed seeds the simulation; the runner seeds NUTS with it too
        options.pop("seed", None)
        show = not quiet and sys.stderr.isatty()
        try:
            with _participants_progress(show, f"{model.name} ({method})", lines) as progress:
                result = run_recovery(
                    model,
                    subjects=subjects,
                    trials=trials,
                    method=method,
                    seed=seed,
                    out_dir=out,
                    progress=progress,
                    chunk=chunk,
                    executor=executor,
                    **options,
                )
        except KeyboardInterrupt:
            lines.error(
                f"interrupted; finished participants are saved in {out}: run the same command to resume"
            )
            raise typer.Exit(130) from None
        except ImportError as exc:
            lines.error(exc)
            raise typer.Exit(EXIT_FAILED) from None
        except OSError as exc:
            lines.error(f"{out}: cannot write the results ({exc.strerror or exc})")
            raise typer.Exit(EXIT_FAILED) from None

    if quiet:
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{model.name}, {method}: recovery over {subjects} subjects x {trials} trials")
    table.add_column("parameter")
    for name in ("r", "bias", "RMSE", "r (z)", "bias (z)", "RMSE (z)"):
        table.add_column(name, justify="right")
    for name, row in result.table.iterrows():
        values = (row["r"], row["bias"], row["rmse"], row["r_z"], row["bias_z"], row["rmse_z"])
        table.add_row(str(name), *(f"{v:.3g}" for v in values))
    Console().print(table)
    lines.say("z: the unconstrained scale (log or logit of the parameter)")
    lines.say(
        f"wrote {out}{os.sep}: recovery.csv, recovery.json, recovery.png, data.csv, estimates.csv, fit.json"
    )


# ------------------------------------------------------------------------------- bench


@app.command("bench")
def bench(
    vs: Annotated[
        str | None,
        typer.Option(
            "--vs",
            help="Also run pymdp's agents on the same models, check that they agree, and time them.",
            metavar="pymdp",
            show_default=False,
        ),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="A small subset (maze L = 1 with 1 and 16 agents, 5x5 grid L = 1 with 16), for CI.",
        ),
    ] = False,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Write every number to this JSON file.", metavar="OUT", show_default=False
        ),
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option(
            "--markdown",
            help="Write the table to this markdown file (between its bench markers if it has them).",
            metavar="PATH",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines, no table.")] = False,
) -> None:
    """Time the fixed-point agent on the maze and grid worlds, optionally side by side with pymdp.

    With --vs pymdp each model is built in both libraries from the same arrays, the two
    agents' action probabilities are compared before any timing, and the table gives
    both libraries' agent-steps per second, their ratio and first-call latency. See
    docs/benchmarks.md. Exit status: 0 done, 1 the agents disagree or the results could
    not be written, 2 bad usage (pymdp missing).
    """
    lines = _Lines()
    if vs is not None and vs != "pymdp":
        lines.error(f"--vs must be pymdp, got {vs!r}")
        raise typer.Exit(EXIT_USAGE)
    vs_pymdp = vs == "pymdp"
    import importlib.util

    if vs_pymdp and importlib.util.find_spec("pymdp") is None:
        lines.error("--vs pymdp needs pymdp 1.0: pip install 'actinf[bench]'")
        raise typer.Exit(EXIT_USAGE)
    for path in (json_out, markdown):
        if path is not None and path.parent != Path() and not path.parent.is_dir():
            lines.error(f"{path}: folder {path.parent} does not exist")
            raise typer.Exit(EXIT_USAGE)

    from . import bench as benchmark

    command = "actinf bench" + " --vs pymdp" * vs_pymdp + " --quick" * quick
    command += f" --json {json_out}" if json_out is not None else ""
    command += f" --markdown {markdown}" if markdown is not None else ""
    workloads = benchmark.quick_workloads() if quick else benchmark.full_workloads()
    settings = (
        dict(budget_s=0.2, max_repeats=10, import_repeats=1, peak_repeats=3, cached=False) if quick else {}
    )

    def progress(message: str) -> None:
        if not quiet:
            print(f"bench: {message}", file=sys.stderr, flush=True)

    try:
        result = benchmark.run_benchmark(workloads, vs_pymdp=vs_pymdp, progress=progress, **settings)
    except benchmark.AgreementError as exc:
        lines.error(exc)
        raise typer.Exit(EXIT_FAILED) from None
    result["command"] = command
    report = benchmark.markdown_report(result, command)
    try:
        if json_out is not None:
            json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        if markdown is not None:
            benchmark.write_markdown(markdown, report)
    except OSError as exc:
        lines.error(f"cannot write the results ({exc.strerror or exc})")
        raise typer.Exit(EXIT_FAILED) from None
    if not quiet:
        print(report, end="")


def main() -> None:
    """Entry point of the ``actinf`` console script."""
    app(prog_name="actinf")


if __name__ == "__main__":
    main()

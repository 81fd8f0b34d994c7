"""Behaviour as a table: one row per participant, trial and time step (the long format).

A table of behaviour for a task with ``G`` outcome modalities, ``F`` factors and
trials of ``T`` time steps has these columns (any order; other columns are ignored):

=====================  ==========================================================================
column                 holds
=====================  ==========================================================================
``participant``        the participant's id (any text or number)
``trial``              the trial number, an integer from 1; trials are taken in increasing order
                       (gaps are allowed and ignored)
``time``               the time step within the trial, 1 to ``T``
``<modality>``         one column per outcome modality, named as the task's modality
                       (``hint``, ``reward``, ``behaviour`` for ``explore-exploit``; ``where``,
                       ``reward`` for ``maze``): the outcome seen at that time, as its index
                       (0-based) or its label (``world.labels.outcomes``, e.g. ``win``)
``action_<factor>``    one column per controllable factor (``action_choice`` for
                       ``explore-exploit``, ``action_location`` for ``maze``): the action taken
                       after the outcomes of that time step, moving to the next, as its index
                       (0-based) or label (``world.labels.actions``); empty at time ``T``.
                       Empty before ``T``: a missing response, left out of the likelihood.
                       Factors with a single control (``context``) may be omitted.
=====================  ==========================================================================

A trial of the explore-exploit task (``T = 3``) in which the participant asked
for the hint, was told "left", chose left and won:

.. code-block:: text

   participant,trial,time,hint,reward,behaviour,action_choice
   p01,1,1,no hint,none,start,hint
   p01,1,2,hint: left,none,hint,choose left
   p01,1,3,no hint,win,choose left,

or, with indices, ``p01,1,1,0,0,0,1`` / ``p01,1,2,1,0,1,2`` / ``p01,1,3,0,2,2,``.

Participants with fewer trials than the longest are padded at the end
(``Behaviour.trials`` False). Errors are :class:`DataError` s of one line naming
the column, the row and the value; rows are counted as in a spreadsheet (the
header is row 1, the first data row is row 2), also for a data frame or a
Parquet file.

:func:`read_behaviour` reads CSV (``.csv``, ``.tsv``) and Parquet (``.parquet``,
needs pyarrow) files or a pandas ``DataFrame``; :func:`write_behaviour` writes them.
pandas is optional (``pip install actinf[fit]``) and imported only when used.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .likelihood import Behaviour
from .tasks import Task

if TYPE_CHECKING:
    import pandas

__all__ = ["DataError", "Layout", "example_data", "layout", "read_behaviour", "to_frame", "write_behaviour"]

#: Cell texts read as missing from a CSV file (only these: ``None`` is a label, not a gap).
NA_VALUES = ("", "NA", "NaN", "nan", "N/A", "n/a", "<NA>", "null", "NULL")

_CSV = {".csv": ",", ".tsv": "\t"}
_PARQUET = (".parquet", ".pq")


class DataError(ValueError):
    """A table of behaviour that does not fit the task (one line: column, row, value)."""


def _pandas():
    try:
        import pandas
    except ImportError as error:
        raise ImportError("tables of behaviour need pandas: pip install actinf[fit]") from error
    return pandas


def _column_name(label: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(label).lower()).strip("_")


class Layout(NamedTuple):
    """The columns of a task's table.

    Attributes:
      modalities: the outcome columns, one per modality.
      outcomes: per modality, the outcome labels (index = position).
      actions: the action columns ``action_<factor>``, one per factor.
      controls: per factor, the action labels.
      required: per factor, whether its column is required (more than one control).
      trial_length: ``T``, the time steps of a trial.
    """

    modalities: tuple[str, ...]
    outcomes: tuple[tuple[str, ...], ...]
    actions: tuple[str, ...]
    controls: tuple[tuple[str, ...], ...]
    required: tuple[bool, ...]
    trial_length: int

    @property
    def columns(self) -> tuple[str, ...]:
        """The required columns, in the order :func:`write_behaviour` writes them."""
        acts = tuple(c for c, r in zip(self.actions, self.required, strict=True) if r)
        return ("participant", "trial", "time", *self.modalities, *acts)


def layout(task: Task) -> Layout:
    """The :class:`Layout` of ``task``'s table (column names from its world's labels)."""
    labels = task.world.labels
    model = task.agent.model
    sizes = [int(a.shape[0]) for a in model.likelihood]
    outcomes = tuple(
        tuple(labels.outcomes[g]) if len(labels.outcomes[g]) == n else tuple(str(i) for i in range(n))
        for g, n in enumerate(sizes)
    )
    controls_n = [int(n) for n in model.num_controls]
    controls = tuple(
        tuple(labels.actions[f]) if len(labels.actions[f]) == n else tuple(str(i) for i in range(n))
        for f, n in enumerate(controls_n)
    )
    return Layout(
        modalities=tuple(_column_name(m) for m in labels.modalities),
        outcomes=outcomes,
        actions=tuple(f"action_{_column_name(f)}" for f in labels.factors),
        controls=controls,
        required=tuple(n > 1 for n in controls_n),
        trial_length=int(task.world.trial_length),
    )


# ----------------------------------------------------------------------------- reading


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return repr(int(value)) if abs(value) < 2**53 else repr(value)
    return repr(value)


def _scalar(value: Any) -> Any:
    """A plain Python value (NumPy scalars unwrapped, text stripped)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        value = value.strip()
    return value


class _Bad(Exception):
    """A cell that is not an integer (``unknown`` when it is text that is no number)."""

    def __init__(self, unknown: bool):
        self.unknown = unknown


def _integer(value: Any, labels: Sequence[str] = ()) -> int:
    """The index of a label, or an integer from a number or its text; :class:`_Bad` otherwise."""
    if isinstance(value, str):
        if value in labels:
            return labels.index(value)
        try:
            number = float(value)
        except ValueError:
            raise _Bad(unknown=True) from None
    elif isinstance(value, bool):
        raise _Bad(unknown=False)
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise _Bad(unknown=True) from None
    if not math.isfinite(number) or not number.is_integer():
        raise _Bad(unknown=False)
    return int(number)


def _missing(values: np.ndarray) -> np.ndarray:
    pd = _pandas()
    return np.asarray(pd.isna(pd.Series(values, dtype=object)), bool)


def _codes(values: np.ndarray, column: str, rows: np.ndarray, *, labels=(), what="", size=None):
    """int64 ``[n]`` codes of a column (0 where missing) and its missing mask, or :class:`DataError`."""
    pd = _pandas()
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    parsed = np.zeros(len(uniques) + 1, np.int64)
    for j, value in enumerate(uniques):
        value = _scalar(value)
        row = rows[np.flatnonzero(codes == j)[0]]
        where = f"column {column!r}, row {row}"
        try:
            index = _integer(value, labels)
        except _Bad as bad:
            if bad.unknown and labels:
                known = ", ".join(repr(x) for x in labels)
                raise DataError(
                    f"{where}: unknown {what} label {_show(value)} (the {what}s of {column!r} are "
                    f"{known}, or their indices 0-{len(labels) - 1})"
                ) from None
            raise DataError(f"{where}: value {_show(value)} is not an integer") from None
        if size is not None and not 0 <= index < size:
            raise DataError(
                f"{where}: index {index} is out of range for the model ({column!r} has {size} "
                f"{what}s, indices 0-{size - 1})"
            )
        parsed[j] = index
    return parsed[codes], codes < 0  # code -1 (missing) picks the trailing 0


def _read_table(source) -> pandas.DataFrame:
    pd = _pandas()
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix in _CSV:
        try:
            return pd.read_csv(
                path,
                sep=_CSV[suffix],
                dtype=str,
                keep_default_na=False,
                na_values=list(NA_VALUES),
                skipinitialspace=True,
            )
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: the file is empty (expected a header row)") from None
        except pd.errors.ParserError as error:
            raise DataError(f"{path}: not a valid CSV file ({' '.join(str(error).split())})") from None
    if suffix in _PARQUET:
        try:
            return pd.read_parquet(path)
        except ImportError as error:
            raise ImportError(f"reading Parquet needs pyarrow: pip install pyarrow ({error})") from error
        except (OSError, ValueError) as error:
            if isinstance(error, FileNotFoundError):
                raise
            raise DataError(f"{path}: not a valid Parquet file ({' '.join(str(error).split())})") from None
    raise DataError(f"{path}: unknown file type {path.suffix!r}: use .csv, .tsv or .parquet")


def _id_text(value: Any) -> str:
    return repr(_scalar(value))


def read_behaviour(source, task: Task) -> tuple[list, Behaviour]:
    """Read a table of behaviour in the long format (module docstring) for ``task``.

    Args:
      source: a path (``.csv``, ``.tsv``, ``.parquet``) or a pandas ``DataFrame``.
      task: the :class:`~actinf.fit.tasks.Task` (its labels name the columns).

    Returns:
      ``(ids, behaviour)``: the participant ids in order of first appearance (text
      as written in a CSV file; the column's values for a data frame or Parquet),
      and their :class:`~actinf.fit.likelihood.Behaviour` (NumPy arrays):
      outcomes int32 ``[P, N, G, T]``, actions int32 ``[P, N, F, T-1]`` (-1:
      missing), trials bool ``[P, N]``, with ``N`` the most trials of a participant.

    Raises:
      DataError: a missing column; a missing, non-integer, unknown or out-of-range
        value; a time outside ``1..T``; an action at time ``T``; duplicate rows; a
        trial with missing time steps; a participant with no trials; an empty table.
      FileNotFoundError: no such file.
      ImportError: without pandas (or pyarrow for Parquet).
    """
    return _from_frame(_read_table(source), task)


def _from_frame(frame: pandas.DataFrame, task: Task) -> tuple[list, Behaviour]:
    pd = _pandas()
    lay = layout(task)
    T, G, F = lay.trial_length, len(lay.modalities), len(lay.actions)
    names = {str(c).strip(): c for c in frame.columns}
    needed = lay.columns
    for name in needed:
        if name not in names:
            found = ", ".join(repr(str(c)) for c in frame.columns) or "none"
            raise DataError(
                f"missing column {name!r}: the {task.name} task needs the columns "
                f"{', '.join(needed)} (found {found})"
            )
    n = len(frame)
    if n == 0:
        raise DataError(f"the table has no rows (columns {', '.join(map(str, frame.columns))})")
    rows = np.arange(n) + 2  # spreadsheet rows: the header is row 1

    def column(name: str) -> np.ndarray:
        return np.asarray(frame[names[name]].to_numpy(dtype=object), dtype=object)

    # participants
    pid = np.asarray([_scalar(v) for v in column("participant")], dtype=object)
    pid_missing = _missing(pid) | np.asarray([v == "" for v in pid], bool)
    if pid_missing.any():
        raise DataError(f"column 'participant', row {rows[pid_missing.argmax()]}: missing value")
    pcode, uniques = pd.factorize(pd.Series(pid, dtype=object))
    ids = [_scalar(u) for u in uniques]

    trial, trial_missing = _codes(column("trial"), "trial", rows)
    time, time_missing = _codes(column("time"), "time", rows)
    placeholder = trial_missing & time_missing
    for p in np.unique(pcode[placeholder]):
        if placeholder[pcode == p].all():
            row = rows[np.flatnonzero(pcode == p)[0]]
            raise DataError(f"column 'trial', row {row}: participant {_id_text(ids[p])} has no trials")
    for name, missing in (("trial", trial_missing), ("time", time_missing)):
        if missing.any():
            raise DataError(f"column {name!r}, row {rows[missing.argmax()]}: missing value")
    if (trial < 1).any():
        i = (trial < 1).argmax()
        raise DataError(f"column 'trial', row {rows[i]}: trial {trial[i]} (trial numbers start at 1)")
    outside = (time < 1) | (time > T)
    if outside.any():
        i = outside.argmax()
        raise DataError(
            f"column 'time', row {rows[i]}: time {time[i]} is out of range 1-{T} "
            f"(the {task.name} task's trials have {T} time steps, numbered from 1)"
        )

    outcomes = np.zeros((n, G), np.int64)
    for g, (name, labels) in enumerate(zip(lay.modalities, lay.outcomes, strict=True)):
        values, missing = _codes(column(name), name, rows, labels=labels, what="outcome", size=len(labels))
        if missing.any():
            raise DataError(
                f"column {name!r}, row {rows[missing.argmax()]}: missing value "
                "(every time step needs an outcome)"
            )
        outcomes[:, g] = values
    actions = np.zeros((n, F), np.int64)
    for f, (name, labels) in enumerate(zip(lay.actions, lay.controls, strict=True)):
        if name not in names:  # a single control: always 0
            continue
        values, missing = _codes(column(name), name, rows, labels=labels, what="action", size=len(labels))
        last = (time == T) & ~missing
        if last.any():
            i = last.argmax()
            raise DataError(
                f"column {name!r}, row {rows[i]}: value {_show(_scalar(column(name)[i]))} at the last time "
                f"step ({T}) of a trial; leave it empty (the action at time t leads to time t + 1)"
            )
        actions[:, f] = np.where(missing, -1, values)

    order = np.lexsort((time, trial, pcode))
    key = np.stack([pcode, trial, time], axis=1)[order]
    same = np.all(key[1:] == key[:-1], axis=1)
    if same.any():
        a, b = sorted(order[same.argmax() : same.argmax() + 2])
        raise DataError(
            f"column 'time', row {rows[b]}: time {time[b]} again for participant {_id_text(ids[pcode[b]])}, "
            f"trial {trial[b]} (duplicate of row {rows[a]})"
        )
    # trials: runs of equal (participant, trial) in the sorted order
    pair = key[:, :2]
    starts = np.flatnonzero(np.r_[True, np.any(pair[1:] != pair[:-1], axis=1)])
    lengths = np.diff(np.r_[starts, n])
    if (lengths != T).any():
        s = starts[(lengths != T).argmax()]
        members = order[s : s + lengths[(lengths != T).argmax()]]
        have = sorted(int(t) for t in time[members])
        lacking = [t for t in range(1, T + 1) if t not in have]
        rows_text = ", ".join(str(r) for r in sorted(rows[members]))
        raise DataError(
            f"column 'time', row{'s' * (len(members) > 1)} {rows_text}: participant "
            f"{_id_text(ids[pcode[members[0]]])}, trial {trial[members[0]]} has time"
            f"{'s' * (len(have) > 1)} {', '.join(map(str, have))} but not {', '.join(map(str, lacking))} "
            f"(every trial needs the time steps 1-{T})"
        )

    group_p = pcode[order[starts]]
    first = np.searchsorted(group_p, group_p, side="left")
    rank = np.arange(len(starts)) - first
    P, N = len(ids), int(rank.max()) + 1
    per_trial_outcomes = outcomes[order].reshape(len(starts), T, G).transpose(0, 2, 1)
    per_trial_actions = actions[order].reshape(len(starts), T, F).transpose(0, 2, 1)[..., : T - 1]
    out = np.zeros((P, N, G, T), np.int32)
    act = np.full((P, N, F, T - 1), -1, np.int32)
    real = np.zeros((P, N), bool)
    out[group_p, rank] = per_trial_outcomes
    act[group_p, rank] = per_trial_actions
    real[group_p, rank] = True
    return ids, Behaviour(out, act, real)


# ----------------------------------------------------------------------------- writing


def _check_behaviour(ids: Sequence, behaviour: Behaviour, task: Task, lay: Layout):
    outcomes, actions, trials = (np.asarray(x) for x in behaviour)
    T, G, F = lay.trial_length, len(lay.modalities), len(lay.actions)
    if outcomes.ndim != 4 or outcomes.shape[2:] != (G, T):
        raise ValueError(
            f"behaviour.outcomes must be [P, N, {G}, {T}] for {task.name}, got {list(outcomes.shape)}"
        )
    P, N = outcomes.shape[:2]
    if actions.shape != (P, N, F, T - 1):
        raise ValueError(f"behaviour.actions must be {[P, N, F, T - 1]}, got {list(actions.shape)}")
    if trials.shape != (P, N):
        raise ValueError(f"behaviour.trials must be {[P, N]}, got {list(trials.shape)}")
    if len(ids) != P:
        raise ValueError(f"{len(ids)} participant ids for {P} participants")
    if len({str(i) for i in ids}) != P:
        raise ValueError("participant ids must be distinct")
    for p in range(P):
        if not trials[p].any():
            raise DataError(f"participant {ids[p]!r} has no trials (behaviour.trials[{p}] is all False)")
    return outcomes, actions, trials.astype(bool)


def to_frame(ids: Sequence, behaviour: Behaviour, task: Task, *, labels: bool = False) -> pandas.DataFrame:
    """The long table of ``behaviour`` (``[P, ...]``; module docstring).

    Padded trials (``trials`` False) are left out; the real ones are numbered
    from 1 in order. Factors with a single control get no column.

    Args:
      ids: ``P`` distinct participant ids.
      behaviour: the group's :class:`~actinf.fit.likelihood.Behaviour`.
      task: the task (column names and labels).
      labels: write outcome and action labels instead of indices.
    """
    pd = _pandas()
    lay = layout(task)
    outcomes, actions, trials = _check_behaviour(ids, behaviour, task, lay)
    T = lay.trial_length
    p_idx, n_idx = np.nonzero(trials)
    numbers = np.cumsum(trials, axis=1)[p_idx, n_idx]
    m = len(p_idx)
    data: dict[str, Any] = {
        "participant": np.repeat(np.asarray(list(ids), dtype=object)[p_idx], T),
        "trial": np.repeat(numbers, T).astype(np.int64),
        "time": np.tile(np.arange(1, T + 1), m),
    }
    for g, name in enumerate(lay.modalities):
        values = outcomes[p_idx, n_idx, g].reshape(-1)
        data[name] = np.asarray(lay.outcomes[g], dtype=object)[values] if labels else values.astype(np.int64)
    for f, name in enumerate(lay.actions):
        if not lay.required[f]:
            continue
        padded = np.concatenate([actions[p_idx, n_idx, f], np.full((m, 1), -1)], axis=1).reshape(-1)
        if labels:
            names = np.asarray(lay.controls[f], dtype=object)
            data[name] = pd.array(np.where(padded >= 0, names[np.maximum(padded, 0)], None), dtype="str")
        else:
            data[name] = pd.array(np.where(padded >= 0, padded, None), dtype="Int64")
    return pd.DataFrame(data)


def write_behaviour(
    path: str | os.PathLike, ids: Sequence, behaviour: Behaviour, task: Task, *, labels: bool = False
) -> Path:
    """Write ``behaviour`` as a long table (:func:`to_frame`) to ``.csv``, ``.tsv`` or ``.parquet``.

    Returns:
      the path written.

    Raises:
      DataError: an unknown suffix, or a participant with no trials.
      ValueError: arrays whose shapes do not fit the task, or repeated ids.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _CSV and suffix not in _PARQUET:
        raise DataError(f"{path}: unknown file type {path.suffix!r}: use .csv, .tsv or .parquet")
    frame = to_frame(ids, behaviour, task, labels=labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in _CSV:
        frame.to_csv(path, sep=_CSV[suffix], index=False)
    else:
        try:
            frame.to_parquet(path, index=False)
        except ImportError as error:
            raise ImportError(f"writing Parquet needs pyarrow: pip install pyarrow ({error})") from error
    return path


# ----------------------------------------------------------------------------- example


def example_data(
    path: str | os.PathLike | None = None,
    *,
    task: str = "explore-exploit",
    participants: int = 10,
    trials: int = 25,
    seed: int = 0,
    labels: bool = True,
) -> pandas.DataFrame:
    """Simulated participants in the long format, with their true parameters.

    Participants ``p01``, ``p02``, ... draw their parameters from the task's prior
    (:func:`~actinf.fit.likelihood.sample_prior`) and do ``trials`` trials
    (:func:`~actinf.fit.likelihood.simulate`), in double precision, with the keys
    ``jax.random.split(jax.random.key(seed))``. The columns ``true_<parameter>``
    (natural scale, the same on every row of a participant) are ignored by
    :func:`read_behaviour`. ``examples/data/explore_exploit.csv`` is::

        python -c "from actinf.fit.data import example_data as e; e('examples/data/explore_exploit.csv')"

    Args:
      path: also write the table there (``.csv``, ``.tsv``, ``.parquet``).
      task: the built-in task's name.
      participants: how many.
      trials: trials per participant.
      seed: the seed.
      labels: outcome and action labels rather than indices.
    """
    import jax

    from .likelihood import sample_prior, simulate
    from .tasks import make_task

    with jax.enable_x64(True), jax.numpy_rank_promotion("allow"):
        the_task = make_task(task)
        key_prior, key_run = jax.random.split(jax.random.key(seed))
        z = np.asarray(sample_prior(key_prior, the_task, participants))
        behaviour = simulate(key_run, the_task, z, trials)
        theta = np.asarray(the_task.natural(z))
    width = len(str(participants))
    ids = [f"p{i + 1:0{max(width, 2)}d}" for i in range(participants)]
    frame = to_frame(ids, behaviour, the_task, labels=labels)
    rows_per = len(frame) // participants
    for i, name in enumerate(the_task.names):
        frame[f"true_{name}"] = np.repeat(np.round(theta[:, i], 6), rows_per)
    if path is not None:
        path = Path(path)
        suffix = path.suffix.lower()
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix in _CSV:
            frame.to_csv(path, sep=_CSV[suffix], index=False)
        elif suffix in _PARQUET:
            frame.to_parquet(path, index=False)
        else:
            raise DataError(f"{path}: unknown file type {path.suffix!r}: use .csv, .tsv or .parquet")
    return frame

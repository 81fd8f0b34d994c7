"""The long table of behaviour (actinf.fit.data): round trips, labels, padding, and every error.

No fitting and no simulation here: the behaviours are small hand-made arrays,
so the file runs in a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from actinf.fit.data import DataError, layout, read_behaviour, to_frame, write_behaviour  # noqa: E402
from actinf.fit.likelihood import Behaviour  # noqa: E402
from actinf.fit.tasks import make_task  # noqa: E402

TASK = make_task("explore-exploit")
EXAMPLE = "examples/data/explore_exploit.csv"


def behaviour(participants=2, trials=3, seed=0) -> Behaviour:
    """Random outcomes and actions of the explore-exploit shapes (G = 3, F = 2, T = 3)."""
    rng = np.random.default_rng(seed)
    sizes = np.asarray([3, 3, 4])
    outcomes = (rng.random((participants, trials, 3, 3)) * sizes[None, None, :, None]).astype(np.int32)
    actions = np.zeros((participants, trials, 2, 2), np.int32)
    actions[:, :, 1] = rng.integers(0, 4, (participants, trials, 2))
    return Behaviour(outcomes, actions, np.ones((participants, trials), bool))


def same(a: Behaviour, b: Behaviour) -> None:
    for name, x, y in zip(Behaviour._fields, a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)
        assert np.asarray(x).dtype == np.asarray(y).dtype, name


def base_frame() -> pd.DataFrame:
    """Two participants x 2 trials, indices; its rows are spreadsheet rows 2 to 13."""
    return to_frame(["a", "b"], behaviour(2, 2), TASK)


# ----------------------------------------------------------------------- format


def test_layout_names_the_columns_after_the_task_labels():
    assert layout(TASK).columns == (
        "participant",
        "trial",
        "time",
        "hint",
        "reward",
        "behaviour",
        "action_choice",
    )
    maze = layout(make_task("maze"))
    assert maze.columns == ("participant", "trial", "time", "where", "reward", "action_location")
    assert maze.actions == ("action_location", "action_context") and maze.required == (True, False)


def test_table_rows_are_participant_trial_time_with_the_action_empty_at_the_last_step():
    frame = base_frame()
    assert len(frame) == 2 * 2 * 3
    assert list(frame["trial"][:6]) == [1, 1, 1, 2, 2, 2] and list(frame["time"][:3]) == [1, 2, 3]
    assert frame["action_choice"].isna().tolist() == [False, False, True] * 4


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
@pytest.mark.parametrize("labels", [False, True], ids=["indices", "labels"])
def test_write_then_read_gives_the_same_behaviour(tmp_path, suffix, labels):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    b = behaviour(3, 4, seed=1)
    path = write_behaviour(tmp_path / f"data{suffix}", ["p1", "p2", "p3"], b, TASK, labels=labels)
    ids, back = read_behaviour(path, TASK)
    assert ids == ["p1", "p2", "p3"]
    same(back, b)


def test_labels_and_indices_read_alike_even_mixed_in_a_column():
    b = behaviour(2, 3, seed=2)
    by_index = to_frame(["a", "b"], b, TASK)
    by_label = to_frame(["a", "b"], b, TASK, labels=True)
    mixed = by_index.astype({"reward": object, "action_choice": object})
    mixed.loc[::2, "reward"] = by_label.loc[::2, "reward"]
    mixed.loc[::3, "action_choice"] = by_label.loc[::3, "action_choice"]
    for frame in (by_index, by_label, mixed):
        same(read_behaviour(frame, TASK)[1], b)
    assert (
        "win" in set(by_label["reward"])
        or "lose" in set(by_label["reward"])
        or "none" in set(by_label["reward"])
    )


def test_participants_with_fewer_trials_are_padded_at_the_end():
    b = behaviour(2, 3, seed=3)
    frame = to_frame(["long", "short"], b, TASK)
    frame = frame[~((frame["participant"] == "short") & (frame["trial"] == 3))]
    ids, back = read_behaviour(frame, TASK)
    assert ids == ["long", "short"]
    np.testing.assert_array_equal(back.trials, [[True, True, True], [True, True, False]])
    np.testing.assert_array_equal(back.outcomes[1, :2], b.outcomes[1, :2])
    assert (back.outcomes[1, 2] == 0).all() and (back.actions[1, 2] == -1).all()


def test_rows_may_come_in_any_order_and_trials_with_gaps():
    b = behaviour(2, 3, seed=4)
    frame = to_frame(["a", "b"], b, TASK)
    frame.loc[frame["trial"] == 3, "trial"] = 7  # a gap: trials 1, 2, 7
    shuffled = frame.sample(frac=1.0, random_state=0)
    ids, back = read_behaviour(shuffled, TASK)
    assert sorted(ids) == ["a", "b"]
    order = [ids.index("a"), ids.index("b")]
    same(Behaviour(*(np.asarray(x)[order] for x in back)), b)


def test_missing_actions_before_the_last_step_are_minus_one_and_single_controls_optional():
    frame = base_frame()
    frame.loc[0, "action_choice"] = None
    frame["action_context"] = pd.array([0, 0, None] * 4, dtype="Int64")  # the one control, given
    _, back = read_behaviour(frame, TASK)
    assert back.actions[0, 0, 1, 0] == -1
    assert (back.actions[..., 0, :] == 0).all()  # the context factor's only action


def test_other_columns_are_ignored_and_ids_keep_their_type():
    frame = base_frame()
    frame["participant"] = frame["participant"].map({"a": 7, "b": 11})
    frame["reaction_time"] = 0.5
    ids, _ = read_behaviour(frame, TASK)
    assert ids == [7, 11]


def test_the_example_file_holds_ten_participants_of_25_trials():
    ids, b = read_behaviour(EXAMPLE, TASK)
    assert len(ids) == 10 and b.outcomes.shape == (10, 25, 3, 3) and b.trials.all()
    frame = pd.read_csv(EXAMPLE)
    assert {f"true_{n}" for n in TASK.names} <= set(frame.columns)


# ----------------------------------------------------------------------- errors


def _set(row: int, column: str, value):
    """Edit spreadsheet row ``row`` (header = row 1) of the base frame."""

    def edit(frame):
        frame = frame.astype({column: object})
        frame.loc[row - 2, column] = value
        return frame

    return edit


def _drop(row: int):
    return lambda frame: frame.drop(index=row - 2)


def _no_trials(frame):
    extra = pd.DataFrame({"participant": ["c"]})
    return pd.concat([frame, extra], ignore_index=True)


ERRORS = {
    "missing column": (lambda f: f.drop(columns="reward"), ["missing column 'reward'"]),
    "unknown outcome label": (_set(5, "reward", "wn"), ["column 'reward'", "row 5", "'wn'", "'win'"]),
    "unknown action label": (_set(3, "action_choice", "jump"), ["column 'action_choice'", "row 3", "'jump'"]),
    "outcome index out of range": (_set(6, "hint", 3), ["column 'hint'", "row 6", "index 3", "out of range"]),
    "negative index": (_set(6, "behaviour", -1), ["column 'behaviour'", "row 6", "index -1"]),
    "action index out of range": (
        _set(2, "action_choice", 4),
        ["column 'action_choice'", "row 2", "index 4"],
    ),
    "non-integer outcome": (_set(7, "reward", 1.5), ["column 'reward'", "row 7", "1.5", "not an integer"]),
    "non-integer trial": (_set(4, "trial", "two"), ["column 'trial'", "row 4", "'two'", "not an integer"]),
    "missing outcome": (_set(8, "hint", None), ["column 'hint'", "row 8", "missing value"]),
    "time out of range": (_set(3, "time", 4), ["column 'time'", "row 3", "time 4", "out of range 1-3"]),
    "trial number 0": (_set(2, "trial", 0), ["column 'trial'", "row 2", "trial 0"]),
    "action at the last step": (
        _set(4, "action_choice", 2),
        ["column 'action_choice'", "row 4", "2", "last"],
    ),
    "missing time step": (_drop(6), ["column 'time'", "rows 5, 6", "trial 2", "not 2"]),
    "duplicate row": (_set(5, "trial", 1), ["column 'time'", "row 5", "duplicate of row 2", "'a'"]),
    "participant with no trials": (_no_trials, ["column 'trial'", "row 14", "'c'", "no trials"]),
    "missing participant": (_set(9, "participant", None), ["column 'participant'", "row 9", "missing"]),
}


@pytest.mark.parametrize("case", ERRORS, ids=list(ERRORS))
def test_a_bad_table_is_one_line_naming_column_row_and_value(case):
    edit, fragments = ERRORS[case]
    with pytest.raises(DataError) as info:
        read_behaviour(edit(base_frame()), TASK)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_rows_are_the_csv_file_lines(tmp_path):
    path = tmp_path / "data.csv"
    base_frame().to_csv(path, index=False)
    text = path.read_text().splitlines()
    fields = text[9].split(",")  # file line 10
    fields[4] = "jackpot"  # reward
    text[9] = ",".join(fields)
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError, match=r"column 'reward', row 10: unknown outcome label 'jackpot'"):
        read_behaviour(path, TASK)


def test_a_lower_case_none_label_is_not_read_as_missing(tmp_path):
    path = tmp_path / "data.csv"
    write_behaviour(path, ["a", "b"], behaviour(2, 2), TASK, labels=True)
    assert "none" in path.read_text()
    same(read_behaviour(path, TASK)[1], behaviour(2, 2))


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("empty.csv", "", "empty"),
        ("data.xlsx", "x", "unknown file type '.xlsx'"),
        ("header.csv", "participant,trial,time,hint,reward,behaviour,action_choice\n", "no rows"),
    ],
)
def test_unreadable_files_are_data_errors(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=fragment):
        read_behaviour(path, TASK)


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_behaviour(tmp_path / "nowhere.csv", TASK)


def test_writing_a_participant_with_no_trials_or_wrong_shapes_fails(tmp_path):
    b = behaviour(2, 2)
    empty = b._replace(trials=np.asarray([[True, True], [False, False]]))
    with pytest.raises(DataError, match="participant 'b' has no trials"):
        write_behaviour(tmp_path / "x.csv", ["a", "b"], empty, TASK)
    with pytest.raises(ValueError, match="2 participant ids for 3"):
        to_frame(["a", "b"], behaviour(3, 2), TASK)
    with pytest.raises(ValueError, match="outcomes must be"):
        to_frame(["a", "b"], behaviour(2, 2), make_task("maze"))

"""Tests for gsiirl.io: round trip, atomic writes, and rejection of malformed files with clear errors."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from gsiirl.io import SCHEMA_NAME, SCHEMA_VERSION, Trajectories, load_trajectories, save_trajectories

SIZES = {"num_states": 5, "num_learner_actions": 3, "num_expert_actions": 2}


def make_trajectories(seed=0, n=7, horizon=4):
    rng = np.random.default_rng(seed)
    return Trajectories(states=rng.integers(0, 5, size=(n, horizon)).astype(np.int32),
                        learner_actions=rng.integers(0, 3, size=(n, horizon)).astype(np.int32),
                        expert_actions=rng.integers(0, 2, size=(n, horizon)).astype(np.int32))


def save(path, trajectories=None, **overrides):
    kwargs = {**SIZES, "discount": 0.95, "metadata": {"seed": 3, "note": "ok"}, **overrides}
    return save_trajectories(path, make_trajectories() if trajectories is None else trajectories, **kwargs)


def write_raw(path, header=None, **arrays):
    """Write an .npz by hand (bypassing save_trajectories' checks) to build malformed files."""
    base = make_trajectories()
    contents = {name: getattr(base, name) for name in Trajectories._fields}
    contents.update(arrays)
    contents = {k: v for k, v in contents.items() if v is not None}
    if header is not False:
        full = {"schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "num_trajectories": 7, "horizon": 4,
                **SIZES, "discount": 0.95, "metadata": {}}
        full.update(header or {})
        full = {k: v for k, v in full.items() if v is not None}
        contents["header"] = np.frombuffer(json.dumps(full).encode(), dtype=np.uint8)
    with open(path, "wb") as handle:
        np.savez(handle, **contents)


def test_round_trip(tmp_path):
    trajectories = make_trajectories()
    jax_input = Trajectories(*(jnp.asarray(a) for a in trajectories))  # JAX arrays are accepted too
    path = save(tmp_path / "data.npz", jax_input, metadata={"seed": 3, "tags": ["a", "b"], "nested": {"x": 1.5}})
    loaded, header = load_trajectories(path)
    assert isinstance(loaded, Trajectories)
    for name in Trajectories._fields:
        array = getattr(loaded, name)
        assert array.dtype == jnp.int32 and array.shape == (7, 4)
        np.testing.assert_array_equal(np.asarray(array), getattr(trajectories, name))
    assert header == {"schema": SCHEMA_NAME, "version": SCHEMA_VERSION, "num_trajectories": 7, "horizon": 4,
                      **SIZES, "discount": 0.95, "metadata": {"seed": 3, "tags": ["a", "b"], "nested": {"x": 1.5}}}
    # the file is a plain npz with named arrays and no pickles
    with np.load(path, allow_pickle=False) as raw:
        assert sorted(raw.files) == ["expert_actions", "header", "learner_actions", "states"]


def test_int64_input_is_stored_as_int32_and_save_overwrites_atomically(tmp_path):
    path = tmp_path / "data.npz"
    save(path)
    wide = Trajectories(*(np.asarray(a, dtype=np.int64) for a in make_trajectories(seed=1, n=3, horizon=2)))
    save(path, wide, metadata=None)
    loaded, header = load_trajectories(path)
    assert loaded.states.shape == (3, 2) and header["metadata"] == {}
    np.testing.assert_array_equal(np.asarray(loaded.expert_actions), wide.expert_actions)
    assert sorted(os.listdir(tmp_path)) == ["data.npz"]  # no temp files left behind


def test_failed_save_leaves_existing_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "data.npz"
    save(path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save(path, make_trajectories(seed=5))
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["data.npz"]


@pytest.mark.parametrize("overrides, trajectories, field", [
    ({"num_states": 0}, None, "num_states"),
    ({"num_expert_actions": 1}, None, "expert_actions"),          # index 1 out of range [0, 1)
    ({"discount": 0.0}, None, "discount"),
    ({"discount": 1.5}, None, "discount"),
    ({"metadata": {"bad": object()}}, None, "metadata"),
    ({"metadata": {"x": float("nan")}}, None, "metadata"),
    ({"metadata": [1, 2]}, None, "metadata"),
    ({}, "float", "states"),
    ({}, "shape", "learner_actions"),
    ({}, "negative", "expert_actions"),
    ({}, "1d", "states"),
])
def test_save_rejects_bad_input(tmp_path, overrides, trajectories, field):
    base = make_trajectories()
    bad = {
        None: base,
        "float": base._replace(states=base.states.astype(float)),
        "shape": base._replace(learner_actions=base.learner_actions[:, :3]),
        "negative": base._replace(expert_actions=-base.expert_actions - 1),
        "1d": base._replace(states=base.states[0]),
    }[trajectories]
    with pytest.raises(ValueError, match=field):
        save(tmp_path / "x.npz", bad, **overrides)
    assert not os.listdir(tmp_path)


def test_truncated_garbage_and_empty_files_give_clear_errors(tmp_path):
    good = save(tmp_path / "good.npz")
    data = good.read_bytes()
    cases = {"truncated.npz": data[: len(data) // 2], "garbage.npz": os.urandom(300), "empty.npz": b"",
             "text.npz": b"states,learner_actions\n1,2\n", "flipped.npz": data[:200] + bytes(50) + data[250:]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match="not a readable gsiirl trajectory file"):
            load_trajectories(tmp_path / name)
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        load_trajectories(tmp_path / "single.npy")
    with pytest.raises(FileNotFoundError):
        load_trajectories(tmp_path / "missing.npz")


def test_randomly_damaged_files_never_escape_as_other_exceptions(tmp_path):
    data = bytearray(save(tmp_path / "good.npz").read_bytes())
    rng = np.random.default_rng(7)
    path = tmp_path / "damaged.npz"
    for trial in range(300):
        damaged = bytearray(data)
        if trial % 3 == 0:
            damaged = damaged[: rng.integers(0, len(data))]
        elif trial % 3 == 1:
            for _ in range(rng.integers(1, 4)):
                damaged[rng.integers(0, len(damaged))] = rng.integers(0, 256)
        else:
            start = rng.integers(0, len(damaged))
            del damaged[start: start + rng.integers(1, 40)]
        path.write_bytes(bytes(damaged))
        try:
            loaded, _ = load_trajectories(path)  # harmless damage (e.g. a timestamp) still loads valid data
            np.testing.assert_array_equal(np.asarray(loaded.states), make_trajectories().states)
        except ValueError as error:
            assert str(error).startswith(str(path))


@pytest.mark.parametrize("header, arrays, message", [
    (False, {}, "header: missing"),
    ({"version": 2}, {}, "header.version"),
    ({"schema": "other"}, {}, "header.schema"),
    ({"discount": None}, {}, r"missing key\(s\) \['discount'\]"),
    ({"extra": 1}, {}, "unknown key"),
    ({"discount": 2.0}, {}, "header.discount"),
    ({"num_states": -1}, {}, "header.num_states"),
    ({"horizon": 5}, {}, "states: expected shape"),
    ({"metadata": [1]}, {}, "header.metadata"),
    ({}, {"learner_actions": None}, r"missing array\(s\) \['learner_actions'\]"),
    ({}, {"bonus": np.zeros(2)}, "unknown array"),
    ({}, {"expert_actions": np.zeros((7, 4), dtype=np.int64)}, "expert_actions: expected dtype int32"),
    ({}, {"states": np.zeros((7, 4))}, "states: expected dtype int32"),
    ({}, {"learner_actions": np.zeros((7, 3), dtype=np.int32)}, "learner_actions: expected shape"),
    ({}, {"states": np.full((7, 4), 5, dtype=np.int32)}, r"states: indices must lie in \[0, 5\)"),
    ({"num_learner_actions": 1}, {}, "learner_actions: indices"),
])
def test_load_rejects_schema_violations(tmp_path, header, arrays, message):
    path = tmp_path / "bad.npz"
    write_raw(path, header, **arrays)
    with pytest.raises(ValueError, match=message):
        load_trajectories(path)


def test_load_rejects_non_json_header(tmp_path):
    path = tmp_path / "bad.npz"
    base = make_trajectories()
    np.savez(path, header=np.frombuffer(b"{not json", dtype=np.uint8), **base._asdict())
    with pytest.raises(ValueError, match="header: not valid UTF-8 JSON"):
        load_trajectories(path)
    np.savez(path, header=np.arange(3.0), **base._asdict())
    with pytest.raises(ValueError, match="header: expected a 1-D uint8"):
        load_trajectories(path)
    np.savez(path, header=np.array([{"a": 1}], dtype=object), **base._asdict())  # pickled object
    with pytest.raises(ValueError, match="not a readable gsiirl trajectory file"):
        load_trajectories(path)


def test_atomic_writes_get_ordinary_file_permissions(tmp_path):
    """mkstemp makes 0o600 temp files; a results file must be readable like any file the user writes."""
    from gsiirl.io.atomic import atomic_write_bytes

    previous = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "new.json", b"{}")
        assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644
        (tmp_path / "kept.json").write_bytes(b"")
        os.chmod(tmp_path / "kept.json", 0o640)
        atomic_write_bytes(tmp_path / "kept.json", b"{}")  # replacing a file keeps its permissions
        assert (tmp_path / "kept.json").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(previous)


def test_recorded_gsiirl_version_is_the_imported_codes_even_when_install_metadata_is_stale(monkeypatch):
    """Results files and checkpoints record gsiirl's version from the code that ran: an editable install's
    metadata keeps the version it was installed with (session 43 found 0.6.0's results files saying 0.5.0)."""
    import importlib.metadata
    import tomllib
    from pathlib import Path

    import gsiirl
    from gsiirl.io.versions import checkpoint_versions, package_version

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["version"] == gsiirl.__version__
    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "0.0.1-stale" if name == "gsiirl" else real_version(name))
    assert package_version("gsiirl") == checkpoint_versions()["gsiirl"] == gsiirl.__version__
    assert package_version("jax") == real_version("jax")

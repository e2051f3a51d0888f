"""Reading and writing gsiirl data files (trajectories as a validated ``.npz`` + JSON header)."""

from gsiirl.io.trajectories import (
    SCHEMA_NAME,
    SCHEMA_VERSION,
    Trajectories,
    load_trajectories,
    save_trajectories,
)

__all__ = ["SCHEMA_NAME", "SCHEMA_VERSION", "Trajectories", "load_trajectories", "save_trajectories"]

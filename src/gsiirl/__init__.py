"""gsiirl: general-sum interactive inverse reinforcement learning in JAX.

Quick start::

    import gsiirl
    game = gsiirl.random_tabular_game(seed=0)
    result = gsiirl.fit(game, method="gsiirl", hypergradient="spsa", outer_iters=20, seed=0)
    result.history["learner_return"]
"""

from gsiirl.algorithms.config import FitConfig, FitResult
from gsiirl.algorithms.gsiirl import fit, marl
from gsiirl.algorithms.interaction import Expert, Oracle, RecordedDemonstrations, SimulatedExpert, TableOracle
from gsiirl.algorithms.lower_level import LowerLevelProblem
from gsiirl.games.random import random_tabular_game
from gsiirl.games.tabular import TabularGame
from gsiirl.rewards import LinearReward, MLPReward, one_hot_features, project_to_ball
from gsiirl.solvers.equilibrium import JointPolicy, solve_equilibrium

__version__ = "0.6.0"

__all__ = ["Expert", "FitConfig", "FitResult", "JointPolicy", "LinearReward", "LowerLevelProblem", "MLPReward",
           "Oracle", "RecordedDemonstrations", "SimulatedExpert", "TableOracle", "TabularGame", "fit", "marl",
           "one_hot_features", "plot_histories", "project_to_ball", "random_tabular_game", "solve_equilibrium",
           "__version__"]


def __getattr__(name: str):
    """``gsiirl.plot_histories`` is imported on first use, so ``import gsiirl`` does not load matplotlib."""
    if name == "plot_histories":
        from gsiirl.experiments.history_plots import plot_histories

        return plot_histories
    raise AttributeError(f"module 'gsiirl' has no attribute {name!r}")

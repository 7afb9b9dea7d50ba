"""Optimizer baselines that search: Bayesian optimization (Optuna TPE) and an evolution strategy (CMA-ES).

Table I of the seed compares its hybrid with SGD, RMSProp, Adam, "Bayesian Opt" and "Evolutionary
Strategy". hqf reads the last two as *hyperparameter searches around the same training loop*:

- the searched parameters are the learning rate and the weight decay of the run's optimizer (Adam
  unless the configuration says otherwise), on a log scale: ``log10 lr ∈ [−4, −1.5]``,
  ``log10 weight_decay ∈ [−6, −2]``;
- **same initialization**: every trial trains the same configuration with the same seed, so the same
  initial weights and the same mini-batch order; only ``lr`` and ``weight_decay`` differ;
- **same iteration budget**: every trial runs under exactly the per-run budget of a plain run (its
  ``epochs`` / step limit and stopping rule), and both searches get the same number of trials
  (``trials``, default 6). The search therefore spends up to ``trials ×`` the budget of one run; that
  total is recorded (``search_total_steps``) next to the selected trial's own metrics.
- **selection**: the trial with the best *validation* score (:data:`SELECT`, lower is better) is the
  result; its run directory (metrics, curves, plots) becomes the search's run directory, so its test
  metrics and its iterations to ε are what the tables show.

BO: ``optuna.samplers.TPESampler(seed=seed)`` with ``max(2, trials // 2)`` random start-up trials
(Optuna's default of 10 would make a short search pure random search), ``trials`` sequential trials. ES: ``cma``'s
CMA-ES from ``(lr, wd) = (1e-3, 1e-4)`` with step size 0.5 (in log10 units), population
``max(2, trials // 2)``, until ``trials`` evaluations are spent.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
from collections.abc import Callable
from typing import Any

from hqf.errors import ConfigError, RunFailedError

METHODS = ("bo", "es")
BOUNDS = {"lr": (-4.0, -1.5), "weight_decay": (-6.0, -2.0)}
START = {"lr": -3.0, "weight_decay": -4.0}
#: the validation metric a search minimizes: (metrics.json key, sign) — lower sign·value is better
SELECT = ("val_loss", 1.0)
#: metrics.json key holding the number of optimizer steps a run took
STEPS = "steps"

Trainer = Callable[[dict, pathlib.Path], dict]


def _train(config: dict, directory: pathlib.Path) -> dict:
    from hqf.learn.experiment import RunConfig, run  # noqa: PLC0415 — loads torch, which the planning does not need

    return run(RunConfig.from_dict(config), directory)


def _score(metrics: dict) -> float:
    key, sign = SELECT
    value = metrics.get(key)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.inf
    return sign * value if math.isfinite(value) else math.inf


def run_search(
    config: dict,
    directory: str | pathlib.Path,
    method: str = "bo",
    trials: int | None = None,
    train: Trainer | None = None,
) -> dict:
    """Search ``lr`` and ``weight_decay`` for ``config``; write the best trial as the run directory.

    Returns the selected trial's metrics with ``search_*`` entries added.
    """
    if method not in METHODS:
        raise ConfigError(f"'search' must be one of {METHODS} (got {method!r})")
    trials = 6 if trials is None else int(trials)
    if trials < 2:
        raise ConfigError(f"'trials' must be >= 2 (got {trials})")
    train = train or _train
    directory = pathlib.Path(directory)
    seed = int(config.get("seed", 0))
    history: list[dict[str, Any]] = []

    def evaluate(log_lr: float, log_wd: float) -> float:
        k = len(history)
        params = {"lr": 10.0**log_lr, "weight_decay": 10.0**log_wd}
        trial_dir = directory / "trials" / f"t{k:02d}"
        try:
            metrics = train({**config, **params}, trial_dir)
        except RunFailedError:  # a diverged trial (non-finite loss) is the worst score, not the search's end
            metrics = {}
        score = _score(metrics)
        history.append(
            {
                "trial": k,
                **params,
                "score": score,
                "steps": metrics.get(STEPS),
                "dir": str(trial_dir.relative_to(directory)),
            }
        )
        return score

    if method == "bo":
        import optuna  # noqa: PLC0415 — optional extra (hqf[experiments])

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, trials // 2))
        study = optuna.create_study(sampler=sampler, direction="minimize")
        study.optimize(
            lambda t: evaluate(
                t.suggest_float("log10_lr", *BOUNDS["lr"]), t.suggest_float("log10_wd", *BOUNDS["weight_decay"])
            ),
            n_trials=trials,
        )
    else:
        import cma  # noqa: PLC0415 — optional extra (hqf[experiments])

        lows, highs = zip(*(BOUNDS[k] for k in ("lr", "weight_decay")))
        es = cma.CMAEvolutionStrategy(
            [START["lr"], START["weight_decay"]],
            0.5,
            {"popsize": max(2, trials // 2), "seed": seed + 1, "bounds": [list(lows), list(highs)], "verbose": -9},
        )
        while len(history) < trials:
            candidates = es.ask()[: trials - len(history)]
            scores = [evaluate(*x) for x in candidates]
            if len(candidates) == es.popsize:
                es.tell(candidates, scores)

    best = min(history, key=lambda h: (h["score"], h["trial"]))
    if not (directory / best["dir"] / "metrics.json").is_file():
        raise RunFailedError(str(directory), f"every one of the {trials} search trials failed")
    source = directory / best["dir"]
    for item in source.iterdir():
        if item.name != "metrics.json" and item.is_file():
            shutil.copy2(item, directory / item.name)
    metrics = json.loads((source / "metrics.json").read_text())
    total = sum(h["steps"] for h in history if isinstance(h["steps"], (int, float)))
    metrics |= {
        "search_method": method,
        "search_trials": trials,
        "search_total_steps": total,
        "search_selected_trial": best["trial"],
        "lr": best["lr"],
        "weight_decay": best["weight_decay"],
    }
    (directory / "search.json").write_text(
        json.dumps({"method": method, "select": list(SELECT), "trials": history}, indent=1)
    )
    tmp = directory / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=1))
    os.replace(tmp, directory / "metrics.json")  # last: the run counts as finished only now
    return metrics

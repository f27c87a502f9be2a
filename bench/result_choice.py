"""Which iteration today's stop and result rules (`discaflow.disca.rules.labels_converged`,
`discaflow.disca.rules.result_iteration`) pick from a saved DISCA run, and its scores against the true labels:
`python bench/result_choice.py STATE_DIR STORE`. For runs recorded before a rule existed: the radial
DDBI is computed from the saved labels (as the E-step now records it), the agreement with the labels
of two iterations before likewise, and the run is treated as recorded with today's defaults
(`result_converged`, `cycle_stop`): it ends at the first iteration where today's stop rule says
converged (the saved iterations after it would not have run). Prints only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    from discaflow.disca import DiscaConfig
    from discaflow.disca.checkpoint import completed_iterations, iteration_dir, read_state
    from discaflow.disca.rules import labels_converged, result_iteration
    from discaflow.cluster.mixtures import agreement, ddbi, fit_pca
    from discaflow.io.store import SubtomogramStore
    from discaflow.metrics import clustering_scores
    from discaflow.cluster.radial import store_radial_features

    state_dir, store = Path(sys.argv[1]), sys.argv[2]
    params = json.loads((state_dir / "params.json").read_text())["params"]  # the run's own
    rules = DiscaConfig(agreement_stop=params.get("agreement_stop", 0.999))  # today's stop rule at the run's threshold
    recorded = [read_state(state_dir, i) for i in completed_iterations(state_dir)]
    labels = [np.load(iteration_dir(state_dir, h["iteration"]) / "labels.npy") for h in recorded]
    history = []
    for i, h in enumerate(recorded):
        two_back = h.get("agreement_two_back")
        if two_back is None and i >= 2:
            two_back = agreement(labels[i - 2], labels[i])
        converged, cycle = labels_converged(h["agreement"], two_back, rules, h.get("in_warmup", False))
        history.append({**h, "result_converged": True, "converged": converged, "cycle": cycle})
        if converged:
            break
    with SubtomogramStore(store) as s:
        truth = s.column("label")
        if any(h.get("ddbi_radial") is None for h in history):
            f = store_radial_features(s)
            z = fit_pca(f, min(params["pca_components"], f.shape[1]), params["seed"]).transform(f)
            history = [{**h, "ddbi_radial": ddbi(z, labels[h["iteration"]])} for h in history]
    best, key = result_iteration(history)
    sc = clustering_scores(truth, labels[best["iteration"]])
    last = history[-1]
    how = ("convergence (a cycle: the labels of two iterations before again)" if last["cycle"] else "convergence") \
        if last["converged"] and best is last else "lowest " + key
    print(f"{state_dir}: recorded {len(recorded)} iterations, converged {bool(recorded[-1]['converged'])}; today's rules: "
          f"{len(history)} iterations, converged {bool(last['converged'])}, result iteration {best['iteration']} "
          f"(chosen by {how}): K = {sc['k']} (true {sc['k_true']}), homogeneity {sc['homogeneity']:.3f}, "
          f"accuracy {sc['accuracy']:.3f}; seconds recorded for those iterations "
          f"{sum(h['seconds']['total'] for h in recorded[:len(history) - 1]):.0f} + the last's E-step")


if __name__ == "__main__":
    main()

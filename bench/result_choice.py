"""Which iteration today's result rule (`discaflow.em.result_iteration`) picks from a saved DISCA run,
and its scores against the true labels: `python bench/result_choice.py STATE_DIR STORE`. For runs
recorded before a rule existed: the radial DDBI is computed from the saved labels (as the E-step now
records it) and the run is treated as recorded with `result_converged` (today's default). Prints only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    from discaflow.em import completed_iterations, iteration_dir, radial_ddbi_space, read_state, result_iteration
    from discaflow.gmm import ddbi
    from discaflow.io.store import SubtomogramStore
    from discaflow.metrics import clustering_scores
    from discaflow.radial import store_radial_features

    state_dir, store = Path(sys.argv[1]), sys.argv[2]
    history = [{"result_converged": True, **read_state(state_dir, i)} for i in completed_iterations(state_dir)]
    with SubtomogramStore(store) as s:
        truth = s.column("label")
        if any(h.get("ddbi_radial") is None for h in history):
            params = json.loads((state_dir / "params.json").read_text())["params"]  # the run's own, as the E-step
            z = radial_ddbi_space(store_radial_features(s), params["pca_components"], params["seed"])
            history = [{**h, "ddbi_radial": ddbi(z, np.load(iteration_dir(state_dir, h["iteration"]) / "labels.npy"))}
                       for h in history]
    best, key = result_iteration(history)
    sc = clustering_scores(truth, np.load(iteration_dir(state_dir, best["iteration"]) / "labels.npy"))
    print(f"{state_dir}: converged {bool(history[-1]['converged'])}, result iteration {best['iteration']} "
          f"(chosen by {'convergence' if history[-1]['converged'] and best is history[-1] else 'lowest ' + key}): "
          f"K = {sc['k']} (true {sc['k_true']}), homogeneity {sc['homogeneity']:.3f}, accuracy {sc['accuracy']:.3f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()

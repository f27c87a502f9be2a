# Rule training_figure: K, DDBI and agreement per iteration; t-SNE maps of the features.
from pathlib import Path

from discaflow.rulerun import run_rule



def body():

    from discaflow.io.star import read_star
    from discaflow.io.store import SubtomogramStore
    from discaflow.metrics import true_classes_of_particles
    from discaflow.plots import plot_training_from_state

    truth = None
    with SubtomogramStore(snakemake.input.store) as store:
        if store.has_labels:
            truth = store.column("label")
        elif snakemake.input.truth:
            names = [store.tomogram_names[t] for t in store.column("tomogram")]
            tables = {Path(p).name.removesuffix("_particles.star"): read_star(p) for p in snakemake.input.truth}
            # a pick belongs to a true particle within a quarter box (unbinned pixels)
            radius = snakemake.params.box_vox * store.binning / 4
            truth = true_classes_of_particles(store.column("coords"), names, tables, radius)
    plot_training_from_state(snakemake.params.state_dir, snakemake.input.history, snakemake.output[0], truth)


run_rule(snakemake, body)

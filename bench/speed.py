"""Speed benchmark (`make bench-speed`): YOPO throughput against this machine's measured
matrix-multiply peak, and the Gaussian-mixture BIC sweep against N. Run it on an otherwise idle machine.

1. Peak: TensorFlow matmul of 4096² matrices in float32 and bfloat16 (GFLOP/s, best of 5).
2. YOPO (reference network, 24³): inference and training throughput (subtomograms/s) in float32 and
   mixed_bfloat16, and the achieved GFLOP/s of inference from the network's analytic FLOP count
   (2 × multiply-adds of every Conv3D and Dense layer), as a fraction of the peak in that precision.
3. GMM/BIC sweep (K = 2 … 20, full covariance, 16-D) on N = 2,000, 20,000, 200,000 vectors: seconds,
   and the ratio of time per vector at the largest N to that at the smallest (1.0 = linear); also per
   EM step (scikit-learn stops each fit when it converges, and the number of steps varies with N).
4. Self-supervision: random proper rotations with noise fill (24³, one thread), per second.
5. One EM iteration with the reference network, ours vs the reference design as a mode of our code
   (K ∈ {5, 10, 20}, float32, augmentation materialised up front), on the same 250 simulated
   subtomograms (5 shipped structures × 50): seconds per iteration that trains (features, mixtures,
   head, one epoch over originals and rotated copies) and the ratio.
6. The GPU path, as arithmetic from the measured FLOP count: one EM iteration over the paper's
   198,715 subtomograms (features of all, training on all + one rotated copy) on one modern GPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import structure_path, use_published_data_flow, write_result  # noqa: E402


def yopo_flops(model) -> float:
    """Floating-point operations of one forward pass (2 per multiply-add of Conv3D and Dense layers)."""
    import keras

    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv3D):
            out = layer.output.shape  # (None, d, h, w, c_out)
            k = np.prod(layer.kernel_size)
            total += 2.0 * np.prod(out[1:4]) * out[4] * k * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += 2.0 * layer.input.shape[-1] * layer.units
    return total


def matmul_peak(dtype, n: int = 4096, repeats: int = 5) -> float:
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    tf.linalg.matmul(a, a).numpy()
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        tf.linalg.matmul(a, a).numpy()
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best / 1e9


def yopo_throughput(precision: str, n: int = 512) -> dict:
    """Subtomograms per second through the calls DISCA makes: ``model.predict_batch`` (Keras's compiled
    predict step; until 2026-12-03 this measured eager calls, ~1.6× slower) and ``train_on_batch``
    (until then ``fit``), batches of 64, after two warm-up batches that trace the graphs."""
    import keras

    from discaflow.model import build_classifier, build_feature_model, build_head, predict_batch, set_precision

    set_precision(precision)
    model = build_feature_model(24)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 24, 24, 24, 1), dtype=np.float32)
    for _ in range(2):
        predict_batch(model, x[:64])
    t = time.perf_counter()
    for i in range(0, n, 64):
        predict_batch(model, x[i: i + 64])
    inference = n / (time.perf_counter() - t)
    clf = build_classifier(model, build_head(1024, 5))
    clf.compile(optimizer=keras.optimizers.Nadam(1e-5), loss="categorical_hinge")
    y = np.eye(5, dtype=np.float32)[np.arange(n) % 5]
    for _ in range(2):
        clf.train_on_batch(x[:64], y[:64])
    t = time.perf_counter()
    for i in range(0, n, 64):
        clf.train_on_batch(x[i: i + 64], y[i: i + 64])
    training = n / (time.perf_counter() - t)
    flops = yopo_flops(model)
    return {"inference_per_s": inference, "training_per_s": training, "gflop_per_forward": flops / 1e9,
            "inference_gflops": inference * flops / 1e9}


def gmm_sweep(sizes) -> list[dict]:
    from discaflow.cluster.mixtures import fit_mixtures

    rng = np.random.default_rng(1)
    centres = rng.standard_normal((8, 16)) * 3
    rows = []
    for n in sizes:
        z = centres[rng.integers(0, 8, n)] + rng.standard_normal((n, 16))
        t = time.perf_counter()
        best, fits = fit_mixtures(z, range(2, 21))
        seconds = time.perf_counter() - t
        steps = int(sum(f.mixture.n_iter_ for f in fits.values()))
        rows.append({"n": n, "seconds": seconds, "k": best.k, "em_steps": steps})
        print(f"   N = {n:>7}: {seconds:.1f} s, {steps} EM steps over the 19 fits (K = {best.k})", flush=True)
    return rows


def rotation_rate(n: int = 200) -> float:
    from discaflow.augment import random_rotation_batch

    x = np.random.default_rng(0).standard_normal((n, 24, 24, 24)).astype(np.float32)
    random_rotation_batch(x[:4], np.random.default_rng(1))
    t = time.perf_counter()
    random_rotation_batch(x, np.random.default_rng(2))
    return n / (time.perf_counter() - t)


def em_iteration_ratio(per_class: int = 50) -> dict:
    import tempfile

    from discaflow.disca import Disca
    from discaflow.disca import mstep
    from discaflow.simulate.imaging import Imaging
    from discaflow.simulate.structures import load_structure
    from discaflow.simulate.subtomograms import simulate_subtomograms

    folder = Path(tempfile.mkdtemp())
    names = ("4v4r", "4cr2", "3j9i", "1bxn", "3cf3")
    structures = [load_structure(structure_path(n), 16.0) for n in names]
    store = folder / "set.h5"
    simulate_subtomograms(structures, store, Imaging(16.0, snr=0.1), per_class=per_class, seed=7, progress=False)
    out = {"subtomograms": per_class * len(names)}
    designs = {"discaflow": {},  # our defaults: precision auto (bfloat16 on a CPU), rotations on the fly
               "reference": {"design": "reference", "precision": "float32", "batchnorm_samples": 0}}
    streamed = mstep.Trainer
    for name, design in designs.items():
        mstep.Trainer = streamed
        if name == "reference":
            use_published_data_flow()  # rotated copies materialised up front, one thread
        # 3 iterations: the first two train, the last only clusters (the run ends there)
        em = Disca(max_iterations=3, **design).fit(store, folder / name)
        trained = [h["seconds"]["total"] for h in em.history_[:2]]
        out[name] = {"seconds_per_iteration": float(np.mean(trained)), "iterations": [h["seconds"] for h in em.history_]}
        print(f"   {name}: {out[name]['seconds_per_iteration']:.0f} s per training iteration", flush=True)
    mstep.Trainer = streamed
    out["ratio"] = out["reference"]["seconds_per_iteration"] / out["discaflow"]["seconds_per_iteration"]
    return out


# Dense tensor throughput of current data-centre GPUs (vendor figures, without sparsity), TFLOP/s.
GPUS = {"NVIDIA H100 SXM (bf16/fp16)": 989.0, "NVIDIA A100 (bf16/fp16)": 312.0, "NVIDIA V100 (fp16)": 125.0,
        "NVIDIA V100 (fp32, the reference's precision)": 15.7}
PAPER_N = 198_715


def gpu_arithmetic(gflop_forward: float, efficiency: float, rotations_per_s: float) -> dict:
    """Seconds per EM iteration at the paper's N: forward passes of all + training (forward and
    backward ≈ 3 forward passes) on all and one rotated copy of each, at ``efficiency`` of the peak."""
    pflop = PAPER_N * gflop_forward * (1 + 2 * 3) / 1e6
    rows = {}
    for name, tflops in GPUS.items():
        rows[name] = pflop * 1e3 / (tflops * efficiency)
    return {"n": PAPER_N, "pflop_per_iteration": pflop, "efficiency_assumed": efficiency,
            "seconds_per_iteration": rows, "rotation_seconds_one_thread": PAPER_N / rotations_per_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000, 200_000])
    ap.add_argument("--subtomograms", type=int, default=512, help="for the throughput measurements")
    args = ap.parse_args()
    import tensorflow as tf

    fig = {}
    print("1. matrix-multiply peak (TensorFlow, 4096²) ...", flush=True)
    fig["peak_gflops"] = {"float32": matmul_peak(tf.float32), "bfloat16": matmul_peak(tf.bfloat16)}
    print(f"   float32 {fig['peak_gflops']['float32']:.0f} GFLOP/s, bfloat16 {fig['peak_gflops']['bfloat16']:.0f} GFLOP/s", flush=True)
    print("2. reference YOPO throughput ...", flush=True)
    for precision, peak in (("float32", "float32"), ("mixed_bfloat16", "bfloat16")):
        r = yopo_throughput(precision, args.subtomograms)
        r["fraction_of_peak"] = r["inference_gflops"] / fig["peak_gflops"][peak]
        fig[precision] = r
        print(f"   {precision}: inference {r['inference_per_s']:.1f}/s ({r['inference_gflops']:.0f} GFLOP/s, "
              f"{100 * r['fraction_of_peak']:.0f} % of peak), training {r['training_per_s']:.1f}/s; "
              f"{r['gflop_per_forward']:.1f} GFLOP per forward pass", flush=True)
    print("3. GMM/BIC sweep K = 2..20 vs N ...", flush=True)
    rows = gmm_sweep(args.sizes)
    fig["gmm_sweep"] = rows
    fig["gmm_time_per_vector_ratio"] = (rows[-1]["seconds"] / rows[-1]["n"]) / (rows[0]["seconds"] / rows[0]["n"])
    per_step = [r["seconds"] / r["em_steps"] / r["n"] for r in rows]
    fig["gmm_time_per_vector_and_step_ratio"] = per_step[-1] / per_step[0]
    print(f"   time per vector at N = {rows[-1]['n']} / at N = {rows[0]['n']}: {fig['gmm_time_per_vector_ratio']:.2f}; "
          f"per vector and EM step: {fig['gmm_time_per_vector_and_step_ratio']:.2f} (1.0 = linear)")
    print("4. random rotations with noise fill (24³, one thread) ...", flush=True)
    fig["rotations_per_s_one_thread"] = rotation_rate()
    print(f"   {fig['rotations_per_s_one_thread']:.0f} per second", flush=True)
    print("5. one EM iteration, reference network, ours vs the reference design ...", flush=True)
    fig["em_iteration"] = em_iteration_ratio()
    print(f"   reference design / discaflow: {fig['em_iteration']['ratio']:.2f}× per iteration", flush=True)
    # Measured on this CPU the fraction of peak is ~0.8 (bf16); on GPUs, 3-D convolutions of 24³ boxes
    # reach far less of the tensor peak: assume 30 % (stated in the output, not measured).
    g = gpu_arithmetic(fig["mixed_bfloat16"]["gflop_per_forward"], 0.30, fig["rotations_per_s_one_thread"])
    fig["gpu_arithmetic"] = g
    print(f"6. GPU arithmetic: {g['pflop_per_iteration']:.1f} PFLOP per EM iteration at N = {PAPER_N:,} "
          f"(features of all + training on all and one rotated copy); at {100 * g['efficiency_assumed']:.0f} % of peak:")
    for name, sec in g["seconds_per_iteration"].items():
        print(f"   {name}: {sec / 60:.0f} min per iteration, {20 * sec / 3600:.1f} h for 20 iterations")
    print(f"   rotating {PAPER_N:,} copies on one CPU thread: {g['rotation_seconds_one_thread'] / 60:.0f} min "
          "(worker threads overlap it with training)")
    write_result("speed", fig)


if __name__ == "__main__":
    main()

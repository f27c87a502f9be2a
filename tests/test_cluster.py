"""PCA + GMM/BIC, DDBI and Hungarian matching on synthetic clusters."""

import numpy as np
import pytest

from discaflow.cluster.mixtures import agreement, ddbi, fit_mixtures, match_labels, params_from_labels


def _blobs(k, n=150, d=6, spread=8.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, spread, (k, d))
    labels = np.repeat(np.arange(k), n)
    cov = [np.diag(rng.uniform(0.5, 1.5, d)) for _ in range(k)]
    z = np.concatenate([rng.multivariate_normal(centres[j], cov[j], n) for j in range(k)])
    return z, labels


@pytest.mark.parametrize("k_true", [2, 3, 5, 8])
def test_bic_picks_the_true_k(k_true):
    z, truth = _blobs(k_true, seed=k_true)
    best, fits = fit_mixtures(z, range(2, 11), seed=0)
    assert best.k == k_true
    assert agreement(truth, best.mixture.predict(z)) > 0.98
    assert set(fits) == set(range(2, 11))


def test_warm_start_kept_only_when_it_is_more_likely():
    z, truth = _blobs(4, seed=1)
    best, fits = fit_mixtures(z, [4], previous_labels=truth)
    assert fits[4].loglik >= fits[4].mixture.score(z) * len(z) - 1e-6
    bad = np.random.default_rng(0).integers(0, 4, len(z))  # warm start from random labels
    best_bad, _ = fit_mixtures(z, [4], previous_labels=bad)
    assert best_bad.loglik == pytest.approx(best.loglik, rel=1e-3)


def test_ddbi_lower_for_better_separated_clusters():
    tight, lt = _blobs(4, spread=12.0, seed=2)
    loose, ll = _blobs(4, spread=2.0, seed=2)
    assert ddbi(tight, lt) < ddbi(loose, ll)
    # and lower for the true labels than for shuffled ones
    shuffled = np.random.default_rng(0).permutation(lt)
    assert ddbi(tight, lt) < ddbi(tight, shuffled)


def test_hungarian_matching():
    ref = np.array([0, 0, 1, 1, 2, 2, 2])
    perm = np.array([2, 2, 0, 0, 1, 1, 1])
    assert np.array_equal(match_labels(ref, perm), ref)
    assert agreement(ref, perm) == 1.0
    # more clusters than the reference: the extra one gets a new number
    split = np.array([5, 5, 7, 7, 9, 9, 3])
    out = match_labels(ref, split)
    assert np.array_equal(out[:6], ref[:6]) and out[6] == 3
    # fewer clusters: consecutive numbers, matched ones keep their order
    merged = np.array([1, 1, 1, 1, 0, 0, 0])
    assert agreement(ref, merged) == pytest.approx(5 / 7)
    assert sorted(set(match_labels(ref, merged))) == [0, 1]


def test_params_from_labels_shapes():
    z, labels = _blobs(3, d=4)
    w, m, p = params_from_labels(z, labels)
    assert w.shape == (3,) and m.shape == (3, 4) and p.shape == (3, 4, 4)
    assert np.isclose(w.sum(), 1.0)


def test_split_test_splits_two_populations_and_leaves_one_alone():
    from discaflow.cluster.splitting import split_clusters

    rng = np.random.default_rng(0)
    d = 64
    one = rng.standard_normal((300, d))
    shift = np.zeros(d)
    shift[5] = 6.0  # the two populations differ along one direction only
    two = np.vstack([rng.standard_normal((150, d)), rng.standard_normal((150, d)) + shift])
    feats = np.vstack([one, two])
    labels = np.repeat([0, 1], 300)
    new, rec = split_clusters(feats, labels, dims=4, seed=0)
    assert [r["split"] for r in rec] == [False, True]
    assert new.max() == 2
    # the split follows the two populations
    part = new[300:]
    truth = np.repeat([0, 1], 150)
    assert max(np.mean((part == 2) == truth), np.mean((part == 2) != truth)) > 0.97
    assert (new[:300] == 0).all()
    # a split needs more than min_bic_gain (default 10, "very strong" evidence): two populations of 100
    # 4 s.d. apart in 4 dimensions gain only +2.9, split when any positive gain is enough
    near = np.random.default_rng(0).standard_normal((200, 4))
    near[100:, 0] += 4.0
    _, (r,) = split_clusters(near, np.zeros(200, int), dims=4, seed=0, min_bic_gain=0.0)
    assert 0 < r["bic_gain"] <= 10 and r["split"], r
    _, (r,) = split_clusters(near, np.zeros(200, int), dims=4, seed=0)
    assert not r["split"], r


def test_split_test_fits_a_sample_of_a_large_cluster_and_labels_every_member():
    """A cluster above max_members is tested on a seeded sample of that many; the split it finds
    labels all members; a cluster at or below the cap is fitted whole (the same as no cap)."""
    from discaflow.cluster.splitting import split_clusters

    rng = np.random.default_rng(3)
    d = 12
    shift = np.zeros(d)
    shift[2] = 6.0
    truth = np.repeat([0, 1], 500)
    two = rng.standard_normal((1000, d)) + shift * truth[:, None]
    one = rng.standard_normal((1000, d))
    feats = np.vstack([one, two])
    labels = np.repeat([0, 1], 1000)
    new, rec = split_clusters(feats, labels, dims=4, seed=0, max_members=250)
    assert [r["split"] for r in rec] == [False, True] and [r["tested"] for r in rec] == [250, 250], rec
    assert [r["size"] for r in rec] == [1000, 1000] and sum(rec[1]["parts"]) == 1000
    part = new[1000:] == 2
    assert max(np.mean(part == truth), np.mean(part != truth)) > 0.99
    assert (new[:1000] == 0).all()
    again, _ = split_clusters(feats, labels, dims=4, seed=0, max_members=250)
    assert (again == new).all()  # the sample is seeded
    small = np.r_[0:200, 1000:1200]
    _, capped = split_clusters(feats[small], labels[small], dims=4, seed=0, max_members=250)
    _, whole = split_clusters(feats[small], labels[small], dims=4, seed=0, max_members=None)
    assert [r["tested"] for r in capped] == [200, 200] and capped == whole


def test_fits_give_the_same_result_on_any_number_of_processes():
    """fit_mixtures, split_clusters and merge_clusters on 1 and on 2 processes (mixtures.parallel_map):
    identical labels, BICs and records (each fit seeded and single-threaded either way); bad n_jobs
    is refused."""
    from discaflow.cluster.mixtures import resolve_jobs
    from discaflow.cluster.splitting import merge_clusters, split_clusters

    rng = np.random.default_rng(5)
    centres = rng.normal(0, 4, (5, 10))
    centres[1] = centres[0] + 1.5  # a pair the global fit may merge
    truth = np.repeat(np.arange(5), 120)
    feats = centres[truth] + rng.standard_normal((600, 10))
    runs = {}
    for n_jobs in (1, 2):
        best, fits = fit_mixtures(feats[:, :6], range(2, 8), previous_labels=truth, seed=1, n_jobs=n_jobs)
        merged_in = np.where(truth == 1, 0, truth)
        split, srec = split_clusters(feats, merged_in, dims=8, seed=1, covariance_type="tied", max_parts=3, n_jobs=n_jobs)
        halves = np.where((truth == 2) & (feats[:, 3] > centres[2, 3]), 5, truth)  # class 2 cut in two
        merged, mrec = merge_clusters(feats, halves, dims=8, seed=1, covariance_type="tied", n_jobs=n_jobs)
        runs[n_jobs] = (best.k, {k: f.bic for k, f in fits.items()}, best.mixture.predict(feats[:, :6]), split, srec, merged, mrec)
    one, two = runs[1], runs[2]
    assert one[0] == two[0] and one[1] == two[1] and np.array_equal(one[2], two[2])
    assert np.array_equal(one[3], two[3]) and one[4] == two[4] and np.array_equal(one[5], two[5]) and one[6] == two[6]
    assert any(r["split"] for r in one[4]) and one[6], (one[4], one[6])  # the fits did split and merge something
    assert resolve_jobs(None) == resolve_jobs(1) == 1 and resolve_jobs(-1) >= 1
    with pytest.raises(ValueError, match="n_jobs"):
        resolve_jobs(0)


def test_split_test_cuts_several_parts_at_once_and_no_more_than_allowed():
    """With max_parts > 2 a cluster of four populations is cut into four in one test (the number of
    parts with the lowest BIC), a single Gaussian is still left alone, and a split that would exceed
    max_clusters is declined."""
    from sklearn.metrics import homogeneity_score

    from discaflow.cluster.splitting import split_clusters

    rng = np.random.default_rng(1)
    d = 12
    corners = np.zeros((4, d))
    corners[1, 0] = corners[2, 1] = 7.0
    corners[3, :2] = 7.0
    truth = np.repeat(np.arange(4), 120)
    four = rng.standard_normal((480, d)) + corners[truth]
    one = rng.standard_normal((480, d))
    feats = np.vstack([one, four])
    labels = np.repeat([0, 1], 480)
    new, rec = split_clusters(feats, labels, dims=6, seed=0, covariance_type="tied", max_parts=4)
    assert [r["split"] for r in rec] == [False, True] and rec[1]["parts"] and len(rec[1]["parts"]) == 4, rec
    assert (new[:480] == 0).all() and new.max() == 4
    assert homogeneity_score(truth, new[480:]) > 0.95
    # two parts at a time: the same cluster is cut in two
    two, rec2 = split_clusters(feats, labels, dims=6, seed=0, covariance_type="tied")
    assert rec2[1]["split"] and len(rec2[1]["parts"]) == 2 and two.max() == 2
    # room for only one new cluster: the four-way split is declined
    _, rec3 = split_clusters(feats, labels, dims=6, seed=0, covariance_type="tied", max_parts=4, max_clusters=3)
    assert not rec3[1]["split"], rec3


def test_merge_clusters_joins_what_the_split_test_cannot_tell_apart():
    """Two clusters cut out of one Gaussian population (as an orientation split cuts one class) are
    merged; a third, distinct population stays apart; labels come back consecutive."""
    from discaflow.cluster.splitting import merge_clusters

    rng = np.random.default_rng(3)
    one = rng.standard_normal((200, 6))
    other = rng.standard_normal((100, 6)) + np.r_[8.0, np.zeros(5)]
    feats = np.vstack([one, other])
    labels = np.r_[np.where(one[:, 1] > 0.3, 0, 2), np.full(100, 1)]  # population one cut in two
    merged, records = merge_clusters(feats, labels, dims=6, covariance_type="tied")
    assert [sorted(r["clusters"]) for r in records] == [[0, 2]]
    assert merged.max() == 1 and len(set(merged[:200])) == 1 and set(merged[200:]) == {1}
    again, none = merge_clusters(feats, np.r_[np.zeros(200, int), np.ones(100, int)], dims=6, covariance_type="tied")
    assert none == [] and again.max() == 1
    # the same two halves cut out of one parent cluster by a split are siblings: kept apart, and so is a
    # cluster merged with one of them against the other
    parents = np.r_[np.zeros(200, int), np.ones(100, int)]
    kept, none = merge_clusters(feats, labels, dims=6, covariance_type="tied", parents=parents)
    assert none == [] and np.array_equal(kept, np.r_[np.where(one[:, 1] > 0.3, 0, 2), np.full(100, 1)])
    # halves of different parents are merged as before
    _, records = merge_clusters(feats, labels, dims=6, covariance_type="tied", parents=labels)
    assert [sorted(r["clusters"]) for r in records] == [[0, 2]]


def test_mixture_from_labels_reproduces_separated_labels():
    from discaflow.cluster.mixtures import mixture_from_labels

    rng = np.random.default_rng(1)
    z = np.vstack([rng.standard_normal((100, 3)) + [8 * k, 0, 0] for k in range(3)])
    labels = np.repeat([0, 1, 2], 100)
    gm = mixture_from_labels(z, labels)
    assert np.mean(gm.predict(z) == labels) > 0.99


def test_radial_split_separates_two_sizes_of_one_complex(tmp_path):
    """The radial split test's criterion (radial descriptors, two tied Gaussians) splits a cluster of
    20S and 26S proteasomes (the 26S is the 20S with two caps) and leaves a cluster of 20S alone."""
    from sklearn.metrics import homogeneity_score

    from discaflow.cluster.splitting import split_clusters
    from discaflow.io.store import SubtomogramStore
    from discaflow.cluster.radial import store_radial_features
    from discaflow.simulate.imaging import Imaging
    from discaflow.simulate.structures import load_structure
    from discaflow.simulate.subtomograms import simulate_subtomograms

    from conftest import STRUCTURES

    structures = [load_structure(STRUCTURES / f"{n}.mrc", 16.0) for n in ("3j9i", "4cr2")]
    simulate_subtomograms(structures, tmp_path / "s.h5", Imaging(16.0, snr=0.1), per_class=80, seed=1, progress=False)
    with SubtomogramStore(tmp_path / "s.h5") as s:
        f, truth = store_radial_features(s), s.column("label")
    assert f.shape == (160, 27) and np.allclose(f.mean(0), 0, atol=1e-9)
    labels, records = split_clusters(f, np.zeros(160, int), dims=16, covariance_type="tied")
    assert records[0]["split"] and homogeneity_score(truth, labels) >= 0.9, records
    alone = truth == 0
    labels, records = split_clusters(f[alone], np.zeros(alone.sum(), int), dims=16, covariance_type="tied")
    assert not records[0]["split"] and labels.max() == 0, records


def test_cluster_radial_finds_the_classes_and_does_not_over_split(tmp_path):
    """The classical clustering behind the radial warm-up (design discaflow): four complexes (two of them the 20S
    proteasome with and without caps) at SNR 0.1 give K = 4 with homogeneity ≥ 0.95, two give K = 2
    (not the K = 6–8 of singular small clusters: a fit is kept only if every cluster has more members
    than dimensions)."""
    from sklearn.metrics import homogeneity_score

    from discaflow.io.store import SubtomogramStore
    from discaflow.cluster.radial import cluster_radial, store_radial_features
    from discaflow.simulate.imaging import Imaging
    from discaflow.simulate.structures import load_structure
    from discaflow.simulate.subtomograms import simulate_subtomograms

    from conftest import STRUCTURES

    for names in [("4v4r", "4cr2", "3j9i", "1bxn"), ("4v4r", "1bxn")]:
        structures = [load_structure(STRUCTURES / f"{n}.mrc", 16.0) for n in names]
        path = tmp_path / f"{len(names)}.h5"
        simulate_subtomograms(structures, path, Imaging(16.0, snr=0.1), per_class=40, seed=3, progress=False)
        with SubtomogramStore(path) as s:
            f, truth = store_radial_features(s), s.column("label")
        labels = cluster_radial(f, range(2, 9))
        assert labels.max() + 1 == len(names) and homogeneity_score(truth, labels) >= 0.95, (names, np.bincount(labels))
        assert np.array_equal(labels, cluster_radial(f, range(2, 9)))  # seeded
        # fitted to a sample, every subtomogram assigned: the same classes
        sampled = cluster_radial(f, range(2, 9), max_fit=len(f) * 3 // 4)
        assert sampled.max() + 1 == len(names) and homogeneity_score(truth, sampled) >= 0.95, np.bincount(sampled)
        assert np.array_equal(cluster_radial(f, range(2, 9), max_fit=len(f)), labels)  # no smaller than N: all


def test_assign_by_gaussians_gives_a_cluster_of_about_d_members_its_own_region():
    """Five members in six dimensions: a singular covariance of its own, shrunk towards the pooled one,
    still claims new points drawn where it lies; a large cluster keeps its own."""
    from discaflow.cluster.mixtures import assign_by_gaussians

    rng = np.random.default_rng(0)
    d = 6
    big, small = rng.normal(0, 1, (300, d)), rng.normal(6, 1, (5, d))
    fitted, labels = np.vstack([big, small]), np.repeat([0, 1], [300, 5])
    new = np.vstack([rng.normal(0, 1, (200, d)), rng.normal(6, 1, (200, d))])
    got = assign_by_gaussians(fitted, labels, new)
    assert np.mean(got[:200] == 0) > 0.99 and np.mean(got[200:] == 1) > 0.95
    assert np.array_equal(assign_by_gaussians(fitted, labels, fitted), labels)


def test_fit_sample_is_seeded_and_none_when_all_are_used():
    from discaflow.cluster.mixtures import fit_sample

    assert fit_sample(100, 0) is None and fit_sample(100, 100) is None and fit_sample(100, 500) is None
    s = fit_sample(1000, 50, seed=3)
    assert len(s) == len(set(s)) == 50 and np.all(np.diff(s) > 0) and np.array_equal(s, fit_sample(1000, 50, seed=3))
    assert not np.array_equal(s, fit_sample(1000, 50, seed=4))

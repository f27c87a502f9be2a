"""Clustering without a network: Gaussian mixtures (``mixtures``: PCA, BIC, DDBI, label matching),
split and merge tests (``splitting``) and rotation-invariant radial descriptors (``radial``)."""

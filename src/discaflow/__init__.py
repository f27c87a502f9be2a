"""discaflow: template- and label-free structure discovery in cryo-electron tomograms (DISCA)."""

__version__ = "0.1.0"

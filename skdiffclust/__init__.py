"""skdiffclust: deep clustering estimators with a scikit-learn API."""

from .cluster_ddpm import ClusterDDPM

__version__ = "0.1.0"

__all__ = ["ClusterDDPM", "__version__"]

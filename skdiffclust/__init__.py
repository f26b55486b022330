"""skdiffclust: deep clustering estimators with a scikit-learn API."""

from .cluster_ddpm import ClusterDDPM
from .deep_dpgmm import DeepDPGMMClusterer

__version__ = "0.1.0"

__all__ = ["ClusterDDPM", "DeepDPGMMClusterer", "__version__"]

"""Order of the examples in the gallery: from a first fit to the details."""

from pathlib import Path

EXAMPLE_ORDER = [
    "plot_quickstart.py",
    "plot_compare_kmeans_gmm.py",
    "plot_conditional_generation.py",
    "plot_pipeline_gridsearch.py",
    "plot_model_selection.py",
]


class ExampleOrder:
    """Sort key for sphinx-gallery's ``within_subsection_order``.

    Examples listed in ``EXAMPLE_ORDER`` come first, in that order; any other
    example follows, sorted by file name.
    """

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = Path(filename).name
        if name in EXAMPLE_ORDER:
            return f"{EXAMPLE_ORDER.index(name):03d}"
        return f"999-{name}"

    def __repr__(self):
        return f"<{type(self).__name__}>"

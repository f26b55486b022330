"""Sphinx configuration of the skdiffclust documentation.

Build (gallery executed, warnings are errors) from the repository root with
``bash docs/build.sh`` or::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Set ``SKDIFFCLUST_DOCS_NO_GALLERY=1`` to build the pages without running the
examples (quick check of the text), and ``SKDIFFCLUST_MATHJAX`` to the path or
URL of a local MathJax 3 ``tex-chtml.js`` to read the equations offline.
"""

import os
import re
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "sphinxext"))

import skdiffclust  # noqa: E402

# -- Project -----------------------------------------------------------------
project = "skdiffclust"
author = "the skdiffclust developers"
copyright = "2025-2026, the skdiffclust developers"
version = release = skdiffclust.__version__

# -- General -----------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.md5",
    "auto_examples/*.json",
    "benchmark_results.rst",  # included by benchmarks.rst, not a page of its own
    "sphinxext",
]
root_doc = "index"
default_role = "literal"
toc_object_entries_show_parents = "hide"
nitpicky = False

# -- API reference -----------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

_SHAPE = re.compile(r"shape \(([^()]*)\)")
_TRAILING_UNDERSCORE = re.compile(r"(?<![`\w])([A-Za-z]\w*_)(?![`\w])")


def _quote_attribute_names_in_shapes(app, what, name, obj, options, lines):
    """Quote fitted-attribute names in shapes: ``(n_clusters_,)`` -> ``(`n_clusters_`,)``.

    A word ending with an underscore is a hyperlink reference in
    reStructuredText, so an unquoted ``of shape (n_samples, n_clusters_)`` in a
    numpydoc type line fails the build; scikit-learn writes these names in
    backquotes, and this does the same for docstrings that do not.
    """

    def quote(match):
        return "shape (" + _TRAILING_UNDERSCORE.sub(r"`\1`", match.group(1)) + ")"

    lines[:] = [_SHAPE.sub(quote, line) for line in lines]


def setup(app):
    # Before numpydoc (priority 500) turns the sections into field lists.
    app.connect("autodoc-process-docstring", _quote_attribute_names_in_shapes, priority=400)


# -- Math --------------------------------------------------------------------
if os.environ.get("SKDIFFCLUST_MATHJAX"):
    mathjax_path = os.environ["SKDIFFCLUST_MATHJAX"]

# -- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skdiffclust {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
# The pages without sub-pages need no left sidebar: the text gets the width.
html_sidebars = {
    "index": [],
    "install": [],
    "user_guide": [],
    "api": [],
    "benchmarks": [],
}

# -- Gallery -----------------------------------------------------------------
# The examples train small networks on the CPU: keep torch and BLAS on one
# thread per process unless the caller said otherwise (the machines that
# build the docs are small and shared).
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Matplotlib must not try to open windows while the examples run.
os.environ.setdefault("MPLBACKEND", "agg")
warnings.filterwarnings(
    "ignore",
    category=UserWarning,
    message="Matplotlib is currently using agg, which is a non-GUI backend",
)

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "gallery_order.ExampleOrder",
    "doc_module": ("skdiffclust",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skdiffclust": None},
    "plot_gallery": os.environ.get("SKDIFFCLUST_DOCS_NO_GALLERY", "") in ("", "0"),
    "download_all_examples": False,
    "remove_config_comments": True,
    "capture_repr": ("_repr_html_", "__repr__"),
    "matplotlib_animations": False,
    "image_srcset": ["2x"],
    "show_memory": False,
    "min_reported_time": 0,
}

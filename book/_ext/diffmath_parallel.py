"""Let Sphinx read the book's documents in parallel processes (``jupyter-book build`` with ``-j N``).

Reading a chapter executes its code cells (myst-nb), so a serial read runs every chapter's kernel one
after another; in parallel the chapters execute side by side. Sphinx reads in parallel only when every
loaded extension declares itself safe, and three of ours (as installed) stand in the way although they
keep no per-document state of their own:

- ``sphinx_multitoc_numbering`` (loaded by sphinx-external-toc) replaces the TOC collector's section
  numbering, which Sphinx runs in the main process after the documents are read and merged;
- ``sphinx-mathjax-offline`` only copies MathJax into ``_static`` when the build has finished;
- ``sphinx_proof`` declares itself parallel-safe, keeps its proofs in ``env.proof_list`` (merged by its
  own ``env-merge-info`` handler) and stores nothing in its domain's data, but its domain does not
  implement ``merge_domaindata``, which Sphinx calls after a parallel read: the merge it needs is empty.

This extension records those facts (each only where the installed version lacks the declaration), so
that the build can run with ``-j`` (:func:`diffmath.book.run_jupyter_book`). ``latex:
use_jupyterbook_latex: false`` in ``_config.yml`` keeps the LaTeX-only extension, which does not
declare itself either, out of the HTML build.
"""

#: extensions whose parallel safety is established above, by the name Sphinx loads them under
PARALLEL_SAFE = ("sphinx_multitoc_numbering", "sphinx-mathjax-offline")


def _declare(app) -> None:
    for name in PARALLEL_SAFE:
        ext = app.extensions.get(name)
        if ext is not None:
            if ext.parallel_read_safe is None:
                ext.parallel_read_safe = True
            if ext.parallel_write_safe is None:
                ext.parallel_write_safe = True


def setup(app):
    from sphinx.domains import Domain
    from sphinx_proof.domain import ProofDomain

    if ProofDomain.merge_domaindata is Domain.merge_domaindata:  # not implemented by this sphinx-proof

        def merge_domaindata(self, docnames, otherdata) -> None:
            """Nothing to merge: the proofs live in env.proof_list, merged by sphinx-proof's env-merge-info."""

        ProofDomain.merge_domaindata = merge_domaindata
    app.connect("builder-inited", _declare)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

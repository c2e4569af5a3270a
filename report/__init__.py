"""``saga report``: the seed's figures and tables for any study (thesis chapter 4, appendix B).

``model`` holds a study as plain data, ``source`` reads it from the optimizer and the object store,
``tables``, ``convergence``, ``surrogate`` and ``timing`` compute, ``figures`` draws, ``page``
writes the HTML, and ``build`` puts one report folder together. Only ``source`` talks to services.
"""

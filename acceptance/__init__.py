"""The Phase 5.4 ops rehearsal: ``pytest acceptance/ -m rehearsal [--dataset=NAME,...|MANIFEST]``.

- ``plugin.py``: the pytest plugin (dataset parametrisation, the abort rule, xdist grouping, the
  bundle written by the controller);
- ``conftest.py``: the fixtures shared by the steps;
- ``test_rehearsal.py``: the five steps;
- ``rehearsal.py`` and ``cli_runs.py``: one dataset's runs, in-process and as subprocesses;
- ``report.py``: the summary and the human-readable report.
"""

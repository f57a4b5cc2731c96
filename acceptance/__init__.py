"""The Phase 5.4 ops rehearsal: ``pytest acceptance/ -m rehearsal [--dataset=NAME,...|MANIFEST]``
``[--base-config=PATH] [--drill-threshold=X]``.

- ``plugin.py``: the pytest plugin (options, dataset parametrisation, the abort rule, xdist
  grouping, clearing the bundle); ``session.py``: the controller, which writes the bundle;
- ``steps.py``: the five steps, their abort rule, and what the controller collects of each;
- ``conftest.py``: the fixtures shared by the steps;
- ``test_rehearsal.py``: the five steps;
- ``rehearsal.py`` and ``cli_runs.py``: one dataset's runs, in-process and as subprocesses;
- ``base_config.py``: which base config each dataset is rehearsed on; ``drill.py``: the rollback
  drill's threshold;
- ``diagnosis.py`` and ``remedies.py``: why a step failed, and the remedial action of each cause;
- ``bundle_writer.py``: writing the bundle (the shared run log, clearing a dataset, the
  summary's artefact entries), on the layout of ``harness.bundle``;
- ``report.py``: the summary; ``report_render.py`` and ``key_numbers.py``: the dataset's report;
  ``figures.py``: its figures; ``junit.py``: its JUnit XML.
"""

"""The embedded default data set's builder (``make data``: ``python scripts/build_embedded_data.py``).

It checks every claim with the bundled NLI judge, so it sits above the scorer, apart from the loaders
(:mod:`start.data.embedded`), which read the committed files and import no judge:

* :mod:`start.data.builder.elements` -- the source: elements and their corpus passages from ``mendeleev``'s database;
* :mod:`start.data.builder.questions` -- answer material and question templates;
* :mod:`start.data.builder.build` -- the split, quality gates, claim checks, distractors and the written files.
"""

from start.data.builder.build import BuildConfig, EmbeddedData, build_embedded, source_info, write_embedded

__all__ = ["BuildConfig", "EmbeddedData", "build_embedded", "source_info", "write_embedded"]

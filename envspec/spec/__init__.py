"""Stage 1, spec: the strict model of ``envspec.yml`` and the ``ResolvedTarget`` records every later stage reads."""

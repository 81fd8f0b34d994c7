"""Suite-wide JAX configuration.

Every test runs in double precision (SPM computes in float64 and the reference
tolerances assume it) and with strict rank promotion, as equinox's own tests
do: an implicit broadcast of arrays of different ranks is a bug waiting to
happen, so it raises instead of silently adding axes.
"""

import os

import jax

# the command line keeps compiled programs on disk (actinf.cache); tests count
# compilations and must not write to the home folder
os.environ.setdefault("ACTINF_NO_CACHE", "1")

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


class CompileCounter:
    """Counts XLA backend compilations while active (``with CompileCounter() as c: ...; c.count``)."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self):
        self.count = 0

    def _listener(self, event, duration, **kwargs):
        if event == self.EVENT:
            self.count += 1

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self._listener)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._listener)
        return False

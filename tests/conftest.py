"""Suite-wide JAX configuration.

Every test runs in double precision (SPM computes in float64 and the reference
tolerances assume it) and with strict rank promotion, as equinox's own tests
do: an implicit broadcast of arrays of different ranks is a bug waiting to
happen, so it raises instead of silently adding axes.
"""

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

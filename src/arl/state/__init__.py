"""A run's state on disk: atomic snapshots (:mod:`arl.state.snapshot`), which to keep
(:mod:`arl.state.keepers`) and when to save (:mod:`arl.state.conditions`)."""

import pickle

# What pickle.dumps raises for an object it cannot pickle (a lock, a handle, a lambda, an
# object whose __reduce__ refuses, one nested too deep): an adapter then keeps less state.
NOT_PICKLABLE = (pickle.PicklingError, TypeError, AttributeError, ValueError, NotImplementedError, RecursionError)

"""A run's state on disk: atomic snapshots (:mod:`arl.state.snapshot`), which to keep
(:mod:`arl.state.keepers`) and when to save (:mod:`arl.state.conditions`)."""

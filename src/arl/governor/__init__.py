"""The RunGovernor: a pure state machine (:mod:`.machine`) and the shell that runs it (:mod:`.shell`)."""

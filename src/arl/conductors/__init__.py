"""The processes a run consists of: environment and agent conductors, simulation controllers."""

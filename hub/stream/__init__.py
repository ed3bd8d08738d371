"""The stream runtime: the pipeline, dead letters, the faust app."""

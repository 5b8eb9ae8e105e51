"""Answer-quality evaluation: metrics, the eval runner, reports, the naive baseline, feedback drafts."""

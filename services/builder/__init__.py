"""The builder: turns SIG specs into content-addressed build artifacts."""

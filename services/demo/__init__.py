"""The data-engine demo (`longtail demo`)."""

"""label-store: samples, labelling queues per task, labels, dataset versions and unit-test suites."""

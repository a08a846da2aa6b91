"""The operator's command line, `longtail ...` (`app`): one module per area (labels, train, triggers,
trigger_language, tasks) over the services' gRPC APIs (`client`). It sits on top of the services and
may import any of them; nothing imports it."""

"""Developer tooling: the local infrastructure on loopback (`infra`: Kafka, S3, PostgreSQL, Triton,
Prometheus), the process supervisor that runs the services for the demo and the tests
(`supervisor`), the infrastructure smoke pass (`smoke`) and the protobuf code generator
(`protogen`). It imports the core and the contracts, and starts services by module name only."""

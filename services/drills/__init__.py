"""Fault drills (issue #19): the running loop under the faults a production deployment sees, with
what each fault cost counted from the topics. Top floor: a drill drives the simulator's cars
through real services and the launcher's infrastructure. docs/reliability.md."""

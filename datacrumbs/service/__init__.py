"""``datacrumbs_service``: the scheduler-facing program that starts, stops and runs the
``datacrumbs@<run-id>`` unit of a job (prolog, epilog, and the unit's ExecStart)."""

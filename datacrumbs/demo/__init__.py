"""The demo a newcomer runs first (``make demo`` → ``datacrumbs_demo``).

It walks the whole path of a traced job on one machine — install, signer, probe configurator as
an unprivileged user, tracing daemon, a built-in workload, the trace's summary — and stops
everything it started, also on an error or Ctrl-C. See docs/demo.md.
"""

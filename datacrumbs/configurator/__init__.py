"""The probe configurator: a user's YAML config in, a signed probe file out, run through the
setgid launcher (launcher.c) the signer trusts. See docs/probes.md."""

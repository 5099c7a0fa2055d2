"""The root signer service: it signs probe files for the configurator launcher only, after
checking who asks (peer_credentials) and what is asked (content_checks). See docs/security.md."""

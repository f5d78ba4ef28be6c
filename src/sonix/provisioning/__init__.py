"""Host-side provisioning tools: a fake metadata server that plays EC2, GCE and matchbox
(`metadata_server`, `sonix serve-metadata`) and OpenStack config drive images
(`config_drive`). The machine's side is src/sonix/agents/metadata.py; the sources and their
endpoints are described in docs/metadata-sources.md."""

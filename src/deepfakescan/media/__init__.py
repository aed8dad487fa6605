"""Media intake: sniff the type from the bytes, decode to canonical arrays within limits."""

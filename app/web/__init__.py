"""HTTP plumbing for every page: hashed static URLs, the proxy fix, security headers."""

"""The portal's server-rendered pages (Jinja2): sign-in, dashboard, TLS/SSL interception, endpoints, admin."""
